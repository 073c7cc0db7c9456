"""Run a night through every stage in a plain Python loop, without Snakemake.

Same stage functions, same file layout as the workflow: used by the tests (fast, in
process) and by ``benchmarks/throughput.py`` as the baseline the workflow is measured
against.

Examples
--------
>>> import os, tempfile
>>> from fieldphot import synthetic
>>> d = tempfile.mkdtemp()
>>> night = synthetic.simulate_night(d, synthetic.SimConfig(nx=256, ny=256, n_science=2,
...     n_bias=3, n_dark=3, n_flat=3, seed=7))
>>> import yaml; cfg = yaml.safe_load(open(night.config))
>>> res = run_night(cfg, d + "/results")
>>> len(res["catalogs"]), os.path.exists(res["summary"])
(2, True)
"""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import pandas as pd

from . import config as cfgmod
from . import layout, stages
from . import manifest as mf
from . import starlist as sl


def raw_files(raw_dir) -> list[Path]:
    """Every readable FITS-looking file below ``raw_dir``, sorted
    (:func:`fieldphot.manifest.scan_raw`)."""
    return mf.scan_raw(raw_dir)[0]


def frame_steps(row: dict, results: str, cfg: dict) -> dict:
    """The per-frame stages of one science frame, in order, each a call with its files
    (calibrate, extract, solve, photometer, zeropoint); :func:`process_frame` runs them,
    ``benchmarks/large_frame.py`` one per process. The photometer measures the star list
    of the frame's ``field`` (``night/frame``, :func:`fieldphot.starlist.fields`; its own
    when the row has none)."""
    r = Path(results)
    p = {k: r / layout.path(k, night=row["night"], frame=row["frame"]) for k in layout.PER_FRAME}
    refcat = r / layout.path("refcat")
    master = layout.masters(row, r)
    field_night, field_frame = row.get("field", f"{row['night']}/{row['frame']}").split("/")
    anchor = row.get("anchor", row["frame"])
    neighbour = (
        r / layout.path("astrometry", night=row["night"], frame=anchor)
        if anchor != row["frame"]
        else None
    )
    return {
        "calibrate": partial(
            stages.calibrate, row["path"], row, *master, p["calibrated"], cfg["calibration"]
        ),
        "extract": partial(stages.extract, p["calibrated"], p["sources"], cfg["extract"]),
        "solve": partial(
            stages.solve,
            p["calibrated"],
            p["sources"],
            refcat,
            p["astrometry"],
            cfg["solve"],
            neighbour,
        ),
        "photometer": partial(
            stages.photometer,
            p["calibrated"],
            p["astrometry"],
            r / layout.path("starlist", night=field_night, frame=field_frame),
            p["photometry"],
            cfg["photometry"],
            cfg["targets"],
            p["sources"],
        ),
        "zeropoint": partial(stages.zeropoint, p["photometry"], p["catalogs"], cfg["zeropoint"]),
    }


def process_frame(row: dict, results: str, cfg: dict) -> str:
    """Calibrate -> extract -> solve -> photometer -> zeropoint for one science frame."""
    for step in frame_steps(row, results, cfg).values():
        step()
    return str(Path(results) / layout.path("catalogs", night=row["night"], frame=row["frame"]))


def prepare(cfg: dict, results) -> pd.DataFrame:
    """The manifest and the reference catalog of a night (``cfg`` with defaults)."""
    r = Path(results)
    m = stages.manifest(
        raw_files(cfg["raw_dir"]),
        r / layout.path("manifest"),
        cfg["instrument"],
        cfg["observatory"] or None,
        cfg["calibration"]["sky_dark_min_frames"],
        cfg["raw_dir"],
    )
    stages.reference_catalog(
        r / layout.path("manifest"), r / layout.path("refcat"), cfg["reference_catalog"]
    )
    return m


def build_master(m: pd.DataFrame, mrow, results, cfg: dict) -> None:
    """One master of :func:`fieldphot.manifest.masters_table` (``mrow``) from manifest ``m``."""
    r = Path(results)
    bias, dark, flat = layout.masters(mrow, r)
    rows = m[m["path"].isin(mrow["inputs"])].to_dict("records")
    stages.master(mrow["kind"], rows, bias, dark, r / mrow["path"], cfg["calibration"], flat)


def build_starlist(field: str, rows: pd.DataFrame, results, cfg: dict) -> None:
    """The star list of ``field`` from its reference frames among ``rows`` (manifest rows
    with ``reference``, :func:`fieldphot.starlist.fields`)."""
    r = Path(results)
    night, frame = field.split("/")
    ref = rows[rows["reference"]].sort_values("mjd_utc_mid", kind="stable")
    stages.starlist(
        r / layout.path("refcat"),
        ref.drop(columns=["field", "reference", "anchor"], errors="ignore").to_dict("records"),
        r / layout.path("starlist", night=night, frame=frame),
        {k: cfg[k] for k in ("calibration", "extract", "solve", "starlist")},
        cfg["targets"],
    )


def prepare_frames(cfg: dict, results) -> pd.DataFrame:
    """Everything before the per-frame steps (manifest, reference catalog, masters, star
    lists); returns the science frames to measure, each with its ``anchor`` (the first
    frame of its pointing) and ``field`` (``cfg`` with defaults)."""
    r = Path(results)
    m = prepare(cfg, r)
    for _, mrow in mf.masters_table(m).iterrows():
        build_master(m, mrow, r, cfg)
    sci = mf.science_frames(m, cfg["exclude_frames"])
    tol = cfg["solve"]["same_pointing_arcmin"]
    sci = sci.assign(anchor=mf.pointing_anchors(sci, tol))
    sci = sci.join(sl.fields(sci, cfg["starlist"]["frames"], tol))
    for field, rows in sci.groupby("field"):
        build_starlist(field, rows, r, cfg)
    return sci


def run_night(config: dict, results, processes: int = 1) -> dict:
    """Run every stage; return the paths of the catalogs and light-curve products."""
    cfgmod.check(config, Path(results).parent)
    cfg = cfgmod.with_defaults(config)
    r = Path(results)
    sci = prepare_frames(cfg, r)
    # Each pointing's first frame before the others: its solution is their hint.
    first = (sci["anchor"] == sci["frame"]).to_numpy()
    waves = [sci[first].to_dict("records"), sci[~first].to_dict("records")]
    if processes > 1:
        # spawn, not fork: a forked child of a process that already ran OpenMP code
        # (astroscrappy) can deadlock in the OpenMP runtime.
        with ProcessPoolExecutor(
            processes, mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            cats = [
                c
                for rows in waves
                for c in pool.map(process_frame, rows, [str(r)] * len(rows), [cfg] * len(rows))
            ]
    else:
        cats = [process_frame(row, str(r), cfg) for rows in waves for row in rows]
    nights = []
    for night, rows in sci.groupby("night"):
        nights.append(r / layout.path("night_lightcurves", night=night))
        night_cats = [r / layout.path("catalogs", night=night, frame=f) for f in rows["frame"]]
        stages.night_light_curves(night_cats, nights[-1], cfg["lightcurves"], cfg["targets"])
    stages.light_curves(nights, r / "lightcurves", cfg["lightcurves"], cfg["targets"])
    stages.export(cats, r / "export", cfg["export"], bool(cfg["targets"]))
    return {
        "catalogs": cats,
        "lightcurves": [str(p) for p in nights],
        "summary": str(r / layout.path("summary")),
    }
