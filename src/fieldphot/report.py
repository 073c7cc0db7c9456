"""The report's own pages: per-frame diagnostics against time, the frames that failed or
were flagged (with what to run), and the targets' light curves.

``snakemake --report`` collects them with the rms-magnitude diagram
(:func:`fieldphot.lightcurves.rms_figure`); the functions here take tables and return
figures or HTML, and the workflow's ``report_pages`` rule writes them.

Examples
--------
>>> import pandas as pd
>>> frames = pd.DataFrame({"frame": ["a", "b"], "mjd_utc_mid": [60000.1, 60000.2],
...     "status": ["ok", "no_wcs"], "zp": [24.5, None], "fwhm": [3.1, 3.3], "sky": [100, 120],
...     "maglim": [20.1, None], "astrometry_rms_arcsec": [0.1, None], "n_zp_stars": [50, 0]})
>>> len(diagnostics_figure(frames).axes)
6
"""

import html
from pathlib import Path

import numpy as np
import pandas as pd

from . import io, layout
from . import manifest as mf

#: The per-frame diagnostics drawn against time: column of lightcurves/frames.parquet, label.
DIAGNOSTICS = [
    ("zp", "zeropoint (mag)"),
    ("fwhm", "FWHM (px)"),
    ("sky", "sky (e-/px)"),
    ("maglim", "limiting magnitude"),
    ("astrometry_rms_arcsec", "astrometric rms (arcsec)"),
    ("n_zp_stars", "calibration stars used"),
]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def diagnostics_figure(frames: pd.DataFrame):
    """Six panels against time (hours from the first frame): each :data:`DIAGNOSTICS`
    column, frames a stage flagged drawn as red crosses where they have a value."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(DIAGNOSTICS), 1, figsize=(7, 11), sharex=True, dpi=100)
    t0 = np.nanmin(frames["mjd_utc_mid"]) if len(frames) else 0.0
    hours = (frames["mjd_utc_mid"] - t0) * 24.0
    ok = (frames["status"] == "ok").to_numpy()
    for ax, (col, label) in zip(axes, DIAGNOSTICS, strict=True):
        y = pd.to_numeric(frames.get(col, pd.Series(np.nan, frames.index)), errors="coerce")
        ax.plot(hours[ok], y[ok], ".", ms=5, color="C0", label="ok")
        if (~ok).any():
            ax.plot(hours[~ok], y[~ok], "x", ms=6, color="C3", label="flagged")
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
    axes[3].invert_yaxis()  # fainter limit is better: up
    axes[0].legend(fontsize=7, loc="best")
    axes[-1].set_xlabel(f"hours since MJD {t0:.5f} (mid-exposure, UTC)")
    fig.suptitle(f"{len(frames)} frames, {int(ok.sum())} ok")
    fig.tight_layout()
    return fig


def frame_figure(sci, sources, matched, targets, title=""):
    """A calibrated frame (1-99.5 percentile stretch) with its detected sources (circles),
    the detections matched to the reference catalog by the astrometric fit (squares) and
    the forced targets (labelled); all tables have pixel ``x``, ``y`` (0-based).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> xy = pd.DataFrame({"x": [10.0], "y": [12.0]})
    >>> fig = frame_figure(np.ones((32, 32)), xy, xy, xy.assign(target="T"), "f")
    >>> [len(ax.get_children()) > 0 for ax in fig.axes]
    [True]
    """
    plt = _pyplot()
    ny, nx = np.shape(sci)
    fig, ax = plt.subplots(figsize=(7, 7 * ny / nx), dpi=110)
    lo, hi = np.nanpercentile(sci, [1.0, 99.5])
    ax.imshow(sci, origin="lower", cmap="gray_r", vmin=lo, vmax=hi, interpolation="nearest")
    ax.plot(sources["x"], sources["y"], "o", mfc="none", mec="C0", ms=7, mew=0.7, label="detected")
    ax.plot(matched["x"], matched["y"], "s", mfc="none", mec="C2", ms=10, mew=0.8, label="matched")
    for t in targets.itertuples():
        ax.plot(t.x, t.y, "+", color="C3", ms=16, mew=1.2)
        ax.annotate(
            str(t.target),
            (t.x, t.y),
            xytext=(6, 6),
            textcoords="offset points",
            color="C3",
            fontsize=8,
        )
    ax.set_xlim(-0.5, nx - 0.5)
    ax.set_ylim(-0.5, ny - 0.5)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def rerun_hint(status: str, catalog: str, run_cmd: str) -> str:
    """What to run for a frame with ``status`` (see :func:`frame_status`).

    Examples
    --------
    >>> rerun_hint("missing", "results/catalogs/n/f.parquet", "fieldphot run night.yaml")
    'fieldphot run night.yaml'
    >>> rerun_hint("bad", "", "fieldphot run night.yaml")
    'fix or remove the raw file'
    """
    if status == "bad":
        return "fix or remove the raw file"
    if status == "missing":
        return run_cmd
    return f"{run_cmd} --forcerun=calibrate {catalog}"


def problems_html(status: pd.DataFrame, catalogs: list[str], run_cmd: str) -> str:
    """A self-contained HTML page: one row per failed or flagged frame (``status`` from
    :func:`frame_status`, ``catalogs`` its frames' catalog paths) with the
    reason and the command that reruns it."""
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (r.night, r.frame, r.status, r.reason, rerun_hint(r.status, c, run_cmd))
        )
        + "</tr>"
        for r, c in zip(status.itertuples(), catalogs, strict=True)
    )
    body = (
        "<p>Every frame gave a calibrated catalog.</p>"
        if status.empty
        else "<table><tr><th>night</th><th>frame</th><th>status</th><th>reason</th>"
        f"<th>to rerun</th></tr>{rows}</table>"
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Failed and flagged frames"
        "</title><style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:3px 6px;"
        "text-align:left}table{border-collapse:collapse}td:last-child{font-family:monospace}"
        f"</style></head><body><h1>Failed and flagged frames ({len(status)})</h1>{body}"
        "</body></html>"
    )


def _target_panel(ax, t: pd.DataFrame, name: str, column: str) -> None:
    """One target's light curve: ``column`` against BJD_TDB where it was detected, the
    limiting magnitude where it was not."""
    det = t["detected"].astype(bool) if "detected" in t else pd.Series(True, t.index)
    det &= np.isfinite(t[column])
    err = t["mag_ens_err"] if column != "mag" and "mag_ens_err" in t else t["mag_err"]
    x0 = np.floor(np.nanmin(t["bjd_tdb"]))
    ax.errorbar(t["bjd_tdb"][det] - x0, t[column][det], err[det], fmt=".", label="detected")
    lim = ~det & np.isfinite(t["mag_lim"]) if "mag_lim" in t else np.zeros(len(t), bool)
    if lim.any():
        ax.plot(t["bjd_tdb"][lim] - x0, t["mag_lim"][lim], "v", color="C3", label="limit")
    ax.invert_yaxis()
    ax.set_title(f"{name} ({column})", fontsize=9)
    ax.set_ylabel("mag")
    ax.set_xlabel(f"BJD_TDB - {x0:.0f}")
    ax.legend(fontsize=7)


def target_figure(t: pd.DataFrame, column: str = "mag_ens"):
    """One target's light curve (:func:`_target_panel`) in a figure of its own."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3))
    _target_panel(ax, t, str(t["target"].iloc[0]) if len(t) else "", column)
    fig.tight_layout()
    return fig


def targets_figure(lc: pd.DataFrame, column: str = "mag_ens"):
    """One panel per forced target (:func:`_target_panel`)."""
    plt = _pyplot()
    tg = lc[lc.get("target", pd.Series("", lc.index)).fillna("").astype(str) != ""]
    names = sorted(tg["target"].astype(str).unique()) if len(tg) else []
    fig, axes = plt.subplots(max(len(names), 1), 1, figsize=(7, 2.6 * max(len(names), 1)))
    axes = np.atleast_1d(axes)
    if not names:
        axes[0].text(0.5, 0.5, "no targets in the config", ha="center", va="center")
        axes[0].set_axis_off()
    for ax, name in zip(axes, names, strict=False):
        _target_panel(ax, tg[tg["target"].astype(str) == name], name, column)
    fig.tight_layout()
    return fig


def failed_nights(results, excluded=()) -> list[str]:
    """Nights with science frames of which none gave a calibrated catalog."""
    m, _ = io.read_table(Path(results) / layout.path("manifest"))
    excluded = mf.excluded_frames(excluded)
    sci = m[(m["kind"] == "science") & (m["status"] == "ok") & ~m["frame"].isin(excluded)]
    failed = frame_status(results, excluded)
    n_failed = failed[failed["status"] != "bad"].groupby("night").size()
    n_sci = sci.groupby("night").size()
    return sorted(n for n, k in n_sci.items() if n_failed.get(n, 0) >= k)


def frame_status(results, excluded=()) -> pd.DataFrame:
    """Every raw file and science frame that did not give a calibrated catalog: ``night``,
    ``frame``, ``path``, ``status`` (``bad`` raw file, ``missing`` — its job failed or has
    not run —, or the frame's science status) and ``reason``. Frames in ``excluded`` are
    left out."""
    results = Path(results)
    m, _ = io.read_table(results / layout.path("manifest"))
    rows = [
        {"night": r.night, "frame": r.frame, "path": r.path, "status": "bad", "reason": r.reason}
        for r in m[m["status"] != "ok"].itertuples()
    ]
    excluded = mf.excluded_frames(excluded)
    sci = m[(m["kind"] == "science") & (m["status"] == "ok") & ~m["frame"].isin(excluded)]
    for r in sci.itertuples():
        cat = results / layout.path("catalogs", night=r.night, frame=r.frame)
        if not cat.exists():
            status, reason = "missing", "no catalog: its job failed or has not run"
        else:
            meta = io.read_table(cat, columns=[])[1]
            status, reason = meta.get("status", "?"), meta.get("reason", "")
        if status != "ok":
            rows.append(
                {
                    "night": r.night,
                    "frame": r.frame,
                    "path": r.path,
                    "status": status,
                    "reason": reason,
                }
            )
    return pd.DataFrame(rows, columns=["night", "frame", "path", "status", "reason"])
