"""A season's plan: its nights, and what each night's run needs from the season.

A season (frames of several nights) runs at two levels. The season level builds what
crosses nights (the manifest, masters, the reference catalog, each field's star list, the
cross-night summary, export and report) and runs each night as one job: the per-frame
workflow of that night alone, reading only its own slice of the manifest. This module
plans that partition once per manifest, so no later process (a night's run, a SLURM job of
the season) builds a table over every frame of the season.

Examples
--------
>>> import pandas as pd
>>> from fieldphot import config
>>> m = pd.DataFrame({"path": ["a.fits", "b.fits"], "frame": ["a", "b"],
...     "night": ["20240101", "20240102"], "kind": "science", "status": "ok", "reason": "",
...     "binning": "1x1", "setup": "1x1", "readout": "8x8", "mjd_utc_mid": [1.0, 2.0],
...     "ra": 10.0, "dec": 5.0, "object": "", "bias_master": "", "dark_master": "",
...     "flat_master": ""})
>>> p, slices = plan(m, config.with_defaults({"raw_dir": "raw"}))
>>> sorted(p["nights"]), p["nights"]["20240102"]["fields"]
(['20240101', '20240102'], ['20240101/a'])
"""

import hashlib
import math
import sys

import pandas as pd

from . import manifest as mf
from . import steps


def nights_are_jobs(level: str, n_nights: int) -> bool:
    """Whether a run's jobs are nights (config ``season.level``; auto: several nights).

    Examples
    --------
    >>> nights_are_jobs("auto", 1), nights_are_jobs("auto", 3), nights_are_jobs("frames", 3)
    (False, True, False)
    """
    return level == "nights" or (level == "auto" and n_nights > 1)


def plain(row: dict) -> dict:
    """A table row as plain values (NaN -> None), as params and JSON carry them.

    Examples
    --------
    >>> plain({"a": float("nan"), "b": 1})
    {'a': None, 'b': 1}
    """
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def plan(manifest: pd.DataFrame, config: dict) -> tuple[dict, dict[str, pd.DataFrame]]:
    """The season's plan and each night's slice of the science table.

    Parameters
    ----------
    manifest : DataFrame
        The manifest (:func:`fieldphot.manifest.build_manifest`).
    config : dict
        The validated config (what :func:`fieldphot.steps.science_table` reads of it).

    Returns
    -------
    plan : dict
        ``nights``: per night its science ``frames`` (count), the ``masters`` and the
        star-list ``fields`` its frames use; ``fields``: per field its reference frames'
        rows in time order; ``masters``: per master (its relative path) its ``night``,
        ``kind``, ``setup``, input frames, the masters it is calibrated with and its input
        frames' manifest ``rows``.
    slices : dict
        Per night, its science frames with their ``anchor``, ``field`` and ``reference``.
    """
    sci = steps.science_table(manifest, config)
    slices = {str(n): rows for n, rows in sci.groupby(sci["night"].astype(str), sort=True)}
    nights = {}
    for night, rows in slices.items():
        used = {m for k in ("bias", "dark", "flat") for m in rows[f"{k}_master"] if m}
        nights[night] = {
            "frames": len(rows),
            "masters": sorted(used),
            "fields": sorted(set(rows["field"])),
        }
    refs = sci[sci["reference"]].sort_values("mjd_utc_mid", kind="stable")
    refs = refs.drop(columns=list(steps.WIRING_COLUMNS))
    fields = {
        f: [plain(r) for r in rows.to_dict("records")]
        for f, rows in refs.groupby(sci.loc[refs.index, "field"])
    }
    masters = {}
    for info in mf.masters_table(manifest).to_dict("records"):
        rows = manifest[manifest["path"].isin(info["inputs"])]
        masters[info["path"]] = {
            **{k: info[k] for k in ("night", "kind", "setup")},
            "inputs": list(info["inputs"]),
            **{f"{k}_master": info[f"{k}_master"] for k in ("bias", "dark", "flat")},
            "rows": [plain(r) for r in rows.to_dict("records")],
        }
    return {"nights": nights, "fields": fields, "masters": masters}, slices


def slice_digest(rows: pd.DataFrame) -> str:
    """A digest of a night's slice: the same rows give the same digest, so a slice is
    rewritten only when they change.

    Examples
    --------
    >>> a = pd.DataFrame({"frame": ["a", "b"]})
    >>> slice_digest(a) == slice_digest(a.copy()), slice_digest(a) == slice_digest(a[:1])
    (True, False)
    """
    hashed = pd.util.hash_pandas_object(rows.astype(str), index=False).to_numpy()
    return hashlib.sha256(hashed).hexdigest()


def night_config(config: dict, night: str) -> dict:
    """The config of ``night``'s own run: the season's, scoped to that night.

    Examples
    --------
    >>> night_config({"night": None, "season": {"nights": ["20240101"]}}, "20240102")
    {'night': '20240102', 'season': {'nights': []}}
    """
    return {**config, "night": night, "season": {**config["season"], "nights": []}}


def night_command(snakefile, config_path, workdir, cores: int) -> list[str]:
    """The nested ``snakemake`` of one night's run (``config_path`` from
    :func:`night_config`): every core it is given, going on past a failed frame, redoing
    what a killed run left incomplete, and without the lock (the season run holds the
    folder's lock; the nights write disjoint files).

    Examples
    --------
    >>> night_command("Snakefile", "n.yaml", "w", 2)[3:7]
    ['-s', 'Snakefile', '--directory', 'w']
    """
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(snakefile),
        "--directory",
        str(workdir),
        "--configfile",
        str(config_path),
        "--cores",
        str(cores),
        "--keep-going",
        "--rerun-incomplete",
        "--nolock",
        "--workflow-profile",
        "none",
    ]
