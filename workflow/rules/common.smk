# Shared helpers: output paths, the manifest (a checkpoint) and input functions.
import json
import math
import os
import shlex
import sys
from functools import lru_cache

import pandas as pd
from snakemake.settings.types import DeploymentMethod

from fieldphot import layout, worker
from fieldphot import manifest as mf
from fieldphot import starlist as sl
from fieldphot.runner import raw_files

RESULTS = config["results_dir"]
#: The raw folder's frames, walked once per Snakemake start (the manifest's inputs and state).
RAW_FILES = raw_files(config["raw_dir"])
SCRIPTS = os.path.join(workflow.basedir, "scripts")
_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
def _interpreter():
    """This Python, by one name whichever it was started as (``python`` or ``python3`` of
    the same environment): the steps' commands, and so Snakemake's record of their code,
    do not change with it."""
    here = sys.executable
    for name in ("python3", "python"):
        other = os.path.join(os.path.dirname(here), name)
        if os.path.exists(other) and os.path.samefile(other, here):
            return other
    return here


_PYTHON = _interpreter()


def step(name):
    """The shell command of per-frame step ``name``: scripts/step.py runs it in the run's warm
    worker when there is one (fieldphot.worker), with the job's named inputs and the rule's
    params as JSON. Under --use-conda it is the environment's own python."""
    python = "python" if _CONDA else shlex.quote(_PYTHON)
    script = shlex.quote(os.path.join(SCRIPTS, "step.py"))
    return f"{python} {script} {name} {{log:q}} {{threads}} {{params.inputs:q}} {{output:q}}"


#: The command that runs this night, for the report's rerun hints.
RUN_COMMAND = shlex.join(
    [
        "fieldphot",
        "run",
        *map(os.path.abspath, list(workflow.overwrite_configfiles)[-1:] or workflow.configfiles[-1:]),
        "--workdir",
        os.getcwd(),
    ]
)
#: Local runs (not SLURM jobs, not conda environments) start the worker.
_WORKER = []


onstart:
    if workflow.local_exec and not _CONDA:
        os.makedirs("logs", exist_ok=True)
        _WORKER.append(worker.start(os.path.join("logs", "worker.log")))


onsuccess:
    worker.stop(_WORKER.pop() if _WORKER else None)


onerror:
    worker.stop(_WORKER.pop() if _WORKER else None)


wildcard_constraints:
    night=r"[0-9]{8}",
    frame=r"[A-Za-z0-9._+-]+",
    kind=r"bias|dark|flat|skydark",
    setup=r"[A-Za-z0-9._+-]+",


def out(product, **wildcards):
    """Path of a data product under the results folder (wildcards left open if not given)."""
    pattern = layout.PATTERNS[product]
    return os.path.join(RESULTS, pattern.format(**wildcards) if wildcards else pattern)


#: The export step's files (none when there is nothing to export).
EXPORTS = [
    out("export", name=n)
    for n in layout.export_names(
        config["export"]["formats"], config["export"]["catalog"], bool(config["targets"])
    )
]


@lru_cache(maxsize=4)
def _read_manifest(path, mtime):
    return pd.read_parquet(path)


def manifest():
    """The manifest table, once the manifest checkpoint has run."""
    return _read_manifest(*_manifest_version())


def _manifest_version():
    """The manifest checkpoint's path and mtime: the key of every table cached from it."""
    path = checkpoints.manifest.get().output[0]
    return path, os.path.getmtime(path)


def as_json(value):
    """A config slice or manifest row as the JSON text a step command reads."""
    return json.dumps(value)


def named_inputs(wildcards, input):
    """The job's inputs by name, as JSON, for the step command (see step())."""
    return json.dumps(dict(input.items()))


def _plain(row):
    """A manifest row as a dict of plain values (NaN -> None) for params."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def science_frames():
    return _science(manifest())


def _science(m):
    return mf.science_frames(m, config["exclude_frames"])


@lru_cache(maxsize=4)
def _anchors(path, mtime):
    sci = _science(_read_manifest(path, mtime))
    anchors = mf.pointing_anchors(sci, config["solve"]["same_pointing_arcmin"])
    return dict(zip(zip(sci["night"], sci["frame"]), anchors))


def solve_inputs(wildcards):
    """The frame's products, and the astrometry of the first frame of its pointing."""
    night, frame = wildcards.night, wildcards.frame
    inputs = {
        "calibrated": out("calibrated", night=night, frame=frame),
        "sources": out("sources", night=night, frame=frame),
        "refcat": out("refcat"),
    }
    anchor = _anchors(*_manifest_version()).get((night, frame))
    if anchor and anchor != frame:
        inputs["neighbour"] = out("astrometry", night=night, frame=anchor)
    return inputs


@lru_cache(maxsize=4)
def _fields(path, mtime):
    """Each science frame's field (``night/frame``) and each field's reference frames."""
    sci = _science(_read_manifest(path, mtime)).sort_values("mjd_utc_mid", kind="stable")
    f = sl.fields(sci, config["starlist"]["frames"], config["solve"]["same_pointing_arcmin"])
    field_of = dict(zip(zip(sci["night"], sci["frame"]), f["field"]))
    references = {field: [] for field in f["field"]}
    for row, field in zip(sci[f["reference"]].to_dict("records"), f["field"][f["reference"]]):
        references[field].append(_plain(row))
    return field_of, references


def frame_starlist(wildcards):
    """The star list of the frame's field (the photometer's)."""
    field = _fields(*_manifest_version())[0][(wildcards.night, wildcards.frame)]
    night, frame = field.split("/")
    return out("starlist", night=night, frame=frame)


def starlist_rows(wildcards):
    """The manifest rows of the field's reference frames, in time order."""
    return _fields(*_manifest_version())[1].get(f"{wildcards.night}/{wildcards.frame}", [])


def starlist_inputs(wildcards):
    """The reference catalog, and the reference frames' raw files and masters."""
    rows = starlist_rows(wildcards)
    masters = {r[f"{k}_master"] for r in rows for k in ("bias", "dark", "flat")} - {"", None}
    return {
        "refcat": out("refcat"),
        "raw": [r["path"] for r in rows],
        "masters": [os.path.join(RESULTS, m) for m in sorted(masters)],
    }


@lru_cache(maxsize=4)
def _rows(path, mtime):
    """Every manifest row as plain values, by (night, frame): one lookup per job, not a scan."""
    rows = {}
    for row in _read_manifest(path, mtime).to_dict("records"):
        rows.setdefault((row["night"], row["frame"]), _plain(row))
    return rows


def frame_row(wildcards):
    """The frame's manifest row, as plain values."""
    row = _rows(*_manifest_version()).get((wildcards.night, wildcards.frame))
    if row is None:
        raise ValueError(f"no science frame {wildcards.night}/{wildcards.frame} in the manifest")
    return row


def frame_row_json(wildcards):
    """The frame's manifest row as JSON (calibrate's params)."""
    return as_json(frame_row(wildcards))


def calibrate_inputs(wildcards):
    row = frame_row(wildcards)
    inputs = {"raw": row["path"]}
    for kind in ("bias", "dark", "flat"):
        if row[f"{kind}_master"]:
            inputs[kind] = os.path.join(RESULTS, row[f"{kind}_master"])
    return inputs


def master_info(wildcards):
    t = mf.masters_table(manifest())
    sel = t[(t["night"] == wildcards.night) & (t["kind"] == wildcards.kind)
            & (t["setup"] == wildcards.setup)]
    if sel.empty:
        raise ValueError(f"no raw {wildcards.kind} frames for {wildcards.night}/{wildcards.setup}")
    return sel.iloc[0]


def master_inputs(wildcards):
    info = master_info(wildcards)
    inputs = {"frames": list(info["inputs"])}
    for kind in ("bias", "dark", "flat"):
        if info[f"{kind}_master"]:
            inputs[kind] = os.path.join(RESULTS, info[f"{kind}_master"])
    return inputs


def master_rows(wildcards):
    m = manifest()
    rows = m[m["path"].isin(master_info(wildcards)["inputs"])]
    return [_plain(r) for r in rows.to_dict("records")]


def refcat_input(wildcards):
    """The local catalog file, or the manifest (the fields to query) when there is none."""
    return config["reference_catalog"]["path"] or out("manifest")


def all_catalogs(wildcards):
    return per_frame("catalogs")


def night_catalogs(wildcards):
    """The catalogs of one night's science frames."""
    sci = science_frames()
    frames = sci.loc[sci["night"].astype(str) == wildcards.night, "frame"]
    return [out("catalogs", night=wildcards.night, frame=f) for f in frames]


def all_nights(wildcards):
    """Every night's part of the long light-curve table."""
    nights = sorted(science_frames()["night"].astype(str).unique())
    return [out("night_lightcurves", night=n) for n in nights]


#: The forced targets' light-curve files (ECSV time series, plot, AAVSO report).
TARGET_FILES = [
    os.path.join(RESULTS, p) for p in layout.target_files(t["name"] for t in config["targets"])
]


def per_frame(*products):
    """Paths of the given per-frame products for every science frame."""
    frames = science_frames()[["night", "frame"]].itertuples(index=False)
    return [out(p, night=n, frame=f) for n, f in frames for p in products]


def frame_images(wildcards):
    """Every frame's diagnostic image, with ``debug: true``."""
    return per_frame("frame_image") if config["debug"] else []


def all_products(wildcards):
    """Every data product: a deleted one is rebuilt, with exactly what depends on it."""
    return per_frame(*layout.PER_FRAME)
