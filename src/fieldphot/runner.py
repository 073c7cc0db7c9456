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
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from . import config as cfgmod
from . import layout, stages, steps
from . import manifest as mf


def raw_files(raw_dir) -> list[Path]:
    """Every readable FITS-looking file below ``raw_dir``, sorted
    (:func:`fieldphot.manifest.scan_raw`)."""
    return mf.scan_raw(raw_dir)[0]


def frame_params(cfg: dict) -> dict:
    """Each per-frame step's params (:func:`fieldphot.steps.frame_params`) from ``cfg``
    (with defaults)."""
    return {name: steps.frame_params(name, cfg) for name in steps.FRAME}


def process_frame(row: dict, results: str, params: dict) -> str:
    """Calibrate -> extract -> solve -> photometer -> zeropoint for one science frame
    (``params``: :func:`frame_params`); a step that fails on the frame flags it with the
    reason and the night goes on, as in the workflow."""
    steps.run_frame(row, results, params, step=stages.run_frame_step)
    return steps.frame_output("zeropoint", row, results)


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
        pointing=cfg["pointing"],
    )
    stages.reference_catalog(
        r / layout.path("manifest"),
        r / layout.path("refcat"),
        steps.reads("reference_catalog", cfg),
        steps.transport(cfg),
    )
    return m


def build_master(m: pd.DataFrame, mrow, results, cfg: dict) -> None:
    """One master of :func:`fieldphot.manifest.masters_table` (``mrow``) from manifest ``m``."""
    r = Path(results)
    bias, dark, flat = layout.masters(mrow, r)
    rows = m[m["path"].isin(mrow["inputs"])].to_dict("records")
    out = r / mrow["path"]
    stages.master(
        mrow["kind"], rows, out, bias=bias, dark=dark, flat=flat, **steps.master_params(cfg)
    )


def build_starlist(field: str, rows: pd.DataFrame, results, cfg: dict) -> None:
    """The star list of ``field`` from its reference frames among ``rows`` (manifest rows
    with ``reference``, :func:`fieldphot.starlist.fields`)."""
    r = Path(results)
    night, frame = field.split("/")
    ref = rows[rows["reference"]].sort_values("mjd_utc_mid", kind="stable")
    stages.starlist(
        r / layout.path("refcat"),
        ref.drop(columns=list(steps.WIRING_COLUMNS), errors="ignore").to_dict("records"),
        r / layout.path("starlist", night=night, frame=frame),
        **steps.starlist_params(cfg),
    )


def prepare_frames(cfg: dict, results) -> pd.DataFrame:
    """Everything before the per-frame steps (manifest, reference catalog, masters, star
    lists); returns the science frames to measure, each with its ``anchor`` (the first
    frame of its pointing) and ``field`` (``cfg`` with defaults)."""
    r = Path(results)
    m = prepare(cfg, r)
    for _, mrow in mf.masters_table(m).iterrows():
        build_master(m, mrow, r, cfg)
    sci = steps.science_table(m, cfg)
    for field, rows in sci.groupby("field"):
        build_starlist(field, rows, r, cfg)
    return sci


def _one_openmp_thread() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"


def run_night(config: dict, results, processes: int = 1) -> dict:
    """Run every stage; return the paths of the catalogs and light-curve products."""
    cfgmod.check(config, Path(results).parent)
    cfg = cfgmod.with_defaults(config)
    r = Path(results)
    sci = prepare_frames(cfg, r)
    params = frame_params(cfg)
    # Each pointing's first frame before the others: its solution is their hint.
    first = (sci["anchor"] == sci["frame"]).to_numpy()
    waves = [sci[first].to_dict("records"), sci[~first].to_dict("records")]
    if processes > 1:
        # spawn, not fork: a forked child of a process that already ran OpenMP code
        # (astroscrappy) can deadlock in the OpenMP runtime. One OpenMP thread each: the
        # processes share the cores, and threads waiting on a busy core spin.
        with ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_one_openmp_thread,
        ) as pool:
            cats = [
                c
                for rows in waves
                for c in pool.map(process_frame, rows, [str(r)] * len(rows), [params] * len(rows))
            ]
    else:
        cats = [process_frame(row, str(r), params) for rows in waves for row in rows]
    nights = []
    for night, rows in sci.groupby("night"):
        nights.append(r / layout.path("night_lightcurves", night=night))
        night_cats = [r / layout.path("catalogs", night=night, frame=f) for f in rows["frame"]]
        lc_cfg = steps.reads("night_lightcurves", cfg)
        stages.night_light_curves(night_cats, nights[-1], lc_cfg, cfg["targets"])
    names = [t["name"] for t in cfg["targets"]]
    stages.light_curves(
        nights, r / "lightcurves", steps.reads("lightcurves", cfg), names, steps.moving_targets(cfg)
    )
    stages.export(cats, r / "export", steps.reads("export", cfg), bool(cfg["targets"]))
    return {
        "catalogs": cats,
        "lightcurves": [str(p) for p in nights],
        "summary": str(r / layout.path("summary")),
    }
