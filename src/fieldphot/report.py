"""The report's own pages: per-frame diagnostics against time, the frames that failed or
were flagged (with what to run), the targets' relative flux (with a transit fit where the
config gives an ephemeris) and the field with the comparison stars' and targets'
apertures; and the page ``fieldphot report`` assembles them into without Snakemake.

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
8
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
    ("transparency", "transparency (mag lost)"),
    ("airmass", "airmass"),
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
    """Panels against time (hours from the first frame): each :data:`DIAGNOSTICS`
    column, frames that were not measured drawn as red crosses where they have a value. The
    transparency is each frame's light lost against the night's clearest frame: its
    zeropoint below the best (none without a catalog)."""
    plt = _pyplot()
    frames = frames.assign(transparency=_transparency(frames))
    fig, axes = plt.subplots(len(DIAGNOSTICS), 1, figsize=(7, 13), sharex=True, dpi=100)
    t0 = np.nanmin(frames["mjd_utc_mid"]) if len(frames) else 0.0
    hours = (frames["mjd_utc_mid"] - t0) * 24.0
    ok = measured(frames).to_numpy()
    for ax, (col, label) in zip(axes, DIAGNOSTICS, strict=True):
        y = pd.to_numeric(frames.get(col, pd.Series(np.nan, frames.index)), errors="coerce")
        ax.plot(hours[ok], y[ok], ".", ms=5, color="C0", label="measured")
        if (~ok).any():
            ax.plot(hours[~ok], y[~ok], "x", ms=6, color="C3", label="failed")
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
    for ax, (col, _) in zip(axes, DIAGNOSTICS, strict=True):
        if col in ("maglim", "transparency"):
            ax.invert_yaxis()  # fainter limit and less light lost are better: up
    axes[0].legend(fontsize=7, loc="best")
    axes[-1].set_xlabel(f"hours since MJD {t0:.5f} (mid-exposure, UTC)")
    fig.suptitle(f"{len(frames)} frames, {int(ok.sum())} measured")
    fig.tight_layout()
    return fig


def measured(frames: pd.DataFrame) -> pd.Series:
    """Frames that were measured: calibrated, or without a zeropoint (``few_stars``: no
    catalog, or too few catalog stars)."""
    return frames["status"].isin(["ok", "few_stars"])


def _transparency(frames: pd.DataFrame) -> pd.Series:
    """Magnitudes of light lost per frame against the night's clearest, from the
    zeropoints (per second of exposure); NaN without them."""
    zp = pd.to_numeric(frames.get("zp", pd.Series(np.nan, frames.index)), errors="coerce")
    if not np.isfinite(zp).any():
        return pd.Series(np.nan, frames.index)
    return zp.max() - zp


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


def field_figure(sci, stars: pd.DataFrame, title: str = ""):
    """A calibrated frame (1-99.5 percentile stretch) with the apertures (radius ``r_ap``
    at ``x``, ``y``) of the night's comparison stars (green) and forced targets (red,
    labelled by ``target``); ``stars`` has a ``kind`` column of ``comparison`` or
    ``target``.

    Examples
    --------
    >>> st = pd.DataFrame({"x": [10.0, 20.0], "y": [12.0, 5.0], "r_ap": 3.0,
    ...                    "kind": ["comparison", "target"], "target": ["", "T"]})
    >>> len(field_figure(np.ones((32, 32)), st, "f").axes)
    1
    """
    from matplotlib.patches import Circle

    plt = _pyplot()
    ny, nx = np.shape(sci)
    fig, ax = plt.subplots(figsize=(8, 8 * ny / nx), dpi=110)
    lo, hi = np.nanpercentile(sci, [1.0, 99.5])
    ax.imshow(sci, origin="lower", cmap="gray_r", vmin=lo, vmax=hi, interpolation="nearest")
    for r in stars.itertuples():
        color = "C3" if r.kind == "target" else "C2"
        ax.add_patch(Circle((r.x, r.y), r.r_ap, fill=False, color=color, lw=0.9))
        if r.kind == "target":
            ax.annotate(str(r.target), (r.x, r.y), xytext=(8, 8), textcoords="offset points",
                        color=color, fontsize=8)  # fmt: skip
    n_comp = int((stars["kind"] == "comparison").sum()) if len(stars) else 0
    ax.set_title(f"{title}: {n_comp} comparison stars (green), targets (red)", fontsize=9)
    ax.set_xlim(-0.5, nx - 0.5)
    ax.set_ylim(-0.5, ny - 0.5)
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


def relative_flux(t: pd.DataFrame, column: str = "mag_ens"):
    """A target's detected, unflagged-enough points as time (BJD_TDB), flux relative to
    its median and the flux's error.

    Examples
    --------
    >>> t = pd.DataFrame({"bjd_tdb": [1.0, 2.0, 3.0], "mag_ens": [10.0, 10.01, 9.99],
    ...                   "mag_ens_err": 0.01, "detected": True})
    >>> relative_flux(t)[1].round(4).tolist()
    [1.0, 0.9908, 1.0093]
    """
    det = t["detected"].astype(bool) if "detected" in t else pd.Series(True, t.index)
    err_col = "mag_ens_err" if column != "mag" and "mag_ens_err" in t else "mag_err"
    ok = det & np.isfinite(t[column]) & np.isfinite(t[err_col]) & (t[err_col] > 0)
    m, e = t[column][ok].to_numpy(float), t[err_col][ok].to_numpy(float)
    f = 10 ** (-0.4 * (m - np.median(m))) if len(m) else m
    return t["bjd_tdb"][ok].to_numpy(float), f, f * e * np.log(10) / 2.5


def binned(t, f, e, width_d: float):
    """Inverse-variance weighted means of ``f`` in bins of ``width_d`` days (bins with a
    point), with their errors.

    Examples
    --------
    >>> binned(np.array([0.0, 0.001, 0.02]), np.array([1.0, 3.0, 2.0]), np.ones(3), 0.01)
    (array([0.0005, 0.02  ]), array([2., 2.]), array([0.70710678, 1.        ]))
    """
    k = np.floor((t - t.min()) / width_d).astype(int) if len(t) else np.zeros(0, int)
    w = 1.0 / e**2
    keys, inv = np.unique(k, return_inverse=True)
    sw = np.bincount(inv, w)
    return (
        np.bincount(inv, w * t) / sw,
        np.bincount(inv, w * f) / sw,
        1.0 / np.sqrt(sw),
    )


def comparisons_figure(lc: pd.DataFrame, column: str = "mag_ens", n: int = 12):
    """The ensemble's comparison stars (``comparison`` rows of the long table): the ``n``
    with the smallest median errors, each one's relative flux in 10-minute bins, offset
    for clarity and labelled with its id and rms; a star drifting or jumping here is one
    to leave out (``lightcurves.comparison_ids`` chooses them by hand).

    Examples
    --------
    >>> lc = pd.DataFrame({"id": [1, 1, 2, 2], "bjd_tdb": [1.0, 1.1, 1.0, 1.1],
    ...     "mag_ens": [10.0, 10.01, 11.0, 11.0], "mag_ens_err": 0.01, "comparison": True})
    >>> len(comparisons_figure(lc).axes[0].lines) > 0
    True
    """
    plt = _pyplot()
    comp = lc[lc["comparison"].astype(bool)] if "comparison" in lc else lc.iloc[:0]
    err_col = "mag_ens_err" if column != "mag" else "mag_err"
    order = comp.groupby("id")[err_col].median().sort_values().index[:n]
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.45 * max(len(order), 1)))
    if not len(order):
        ax.text(0.5, 0.5, "no comparison stars", ha="center", va="center")
        ax.set_axis_off()
        return fig
    x0 = np.floor(np.nanmin(comp["bjd_tdb"]))
    for k, star in enumerate(order):
        x, f, e = relative_flux(comp[comp["id"] == star], column)
        if not len(x):
            continue
        bt, bf, be = binned(x, f, e, 10 / 1440)
        offset = -0.02 * k
        ax.errorbar(bt - x0, bf + offset, be, fmt=".-", ms=3, lw=0.6)
        ax.annotate(
            f"{star}  rms {1000 * np.std(f):.1f} ppt",
            (bt[-1] - x0, bf[-1] + offset),
            xytext=(4, 0),
            textcoords="offset points",
            fontsize=7,
            va="center",
        )
    ax.set_title(f"{len(order)} comparison stars, 10-minute bins (offset by 0.02)", fontsize=9)
    ax.set_xlabel(f"BJD_TDB - {x0:.0f}")
    ax.set_ylabel("relative flux")
    fig.tight_layout()
    return fig


def target_fit(t: pd.DataFrame, target: dict, column: str = "mag_ens") -> dict | None:
    """The transit fit (:func:`fieldphot.transit.fit`) of a target whose config gives an
    ephemeris (``t0_bjd``, ``duration_h``, optional ``period_d``, ``limb_darkening``), at
    its transit nearest the night; None without an ephemeris or with under 10 points."""
    from . import transit

    if target.get("t0_bjd") is None or not target.get("duration_h"):
        return None
    x, f, e = relative_flux(t, column)
    if len(x) < 10:
        return None
    t0, period = float(target["t0_bjd"]), target.get("period_d")
    if period:
        t0 += np.round((np.median(x) - t0) / period) * period
    u = target.get("limb_darkening") or transit.LIMB_DARKENING
    return transit.fit(x, f, e, t0=t0, duration_d=target["duration_h"] / 24, period_d=period, u=u)


def _flux_panel(ax, ax_res, t: pd.DataFrame, name: str, column: str, fit) -> None:
    """Relative flux against BJD_TDB with 10-minute bins, and with a transit fit, its
    model, depth and mid-time and the residuals below."""
    x, f, e = relative_flux(t, column)
    if not len(x):
        ax.text(0.5, 0.5, f"{name}: no detection", ha="center", va="center")
        return
    x0 = np.floor(x.min())
    ax.errorbar(x - x0, f, e, fmt=".", color="0.6", ms=3, lw=0.5, label="points")
    bt, bf, be = binned(x, f, e, 10 / 1440)
    ax.errorbar(bt - x0, bf, be, fmt="o", color="k", ms=4, label="10-min bins")
    title = f"{name}: relative flux ({column})"
    if fit is not None:
        fine = np.linspace(x.min(), x.max(), 1000)
        ax.plot(fine - x0, fit["model"](fine), "-", color="C3", label="transit fit")
        title += (
            f"; depth {100 * fit['depth']:.2f} ± {100 * fit['depth_err']:.2f} %, "
            f"mid-time {fit['t0']:.5f} ± {fit['t0_err'] * 1440:.1f} min"
        )
        res = f - fit["model"](x)
        ax_res.errorbar(x - x0, 1000 * res, 1000 * e, fmt=".", color="0.6", ms=3, lw=0.5)
        rb = binned(x, res, e, 10 / 1440)
        ax_res.errorbar(rb[0] - x0, 1000 * rb[1], 1000 * rb[2], fmt="o", color="k", ms=4)
        ax_res.axhline(0, color="C3")
        ax_res.set_ylabel("residual (ppt)", fontsize=8)
    ax.set_title(title, fontsize=8)
    ax.set_ylabel("relative flux")
    ax.legend(fontsize=7)
    (ax_res if fit is not None else ax).set_xlabel(f"BJD_TDB - {x0:.0f}")


def targets_figure(lc: pd.DataFrame, column: str = "mag_ens", targets=()):
    """One panel per forced target: its relative flux with 10-minute bins and, for a
    target whose config gives an ephemeris, the transit fit with its depth and mid-time
    and the residuals (:func:`target_fit`). Returns the figure and the fits by name."""
    plt = _pyplot()
    tg = lc[lc.get("target", pd.Series("", lc.index)).fillna("").astype(str) != ""]
    names = sorted(tg["target"].astype(str).unique()) if len(tg) else []
    config = {str(t.get("name")): t for t in targets}
    fits = {
        n: target_fit(tg[tg["target"].astype(str) == n], config.get(n, {}), column) for n in names
    }
    heights = [r for n in names for r in ((3, 1.2) if fits[n] is not None else (3, 0.001))]
    fig, axes = plt.subplots(
        max(2 * len(names), 1),
        1,
        figsize=(8, 1.2 + sum(heights) * 0.9),
        gridspec_kw={"height_ratios": heights} if names else None,
        squeeze=False,
    )
    axes = axes[:, 0]
    if not names:
        axes[0].text(0.5, 0.5, "no targets in the config", ha="center", va="center")
        axes[0].set_axis_off()
    for k, name in enumerate(names):
        ax, ax_res = axes[2 * k], axes[2 * k + 1]
        _flux_panel(ax, ax_res, tg[tg["target"].astype(str) == name], name, column, fits[name])
        if fits[name] is None:
            ax_res.set_axis_off()
    fig.tight_layout()
    return fig, {n: f for n, f in fits.items() if f is not None}


def night_summary(frames: pd.DataFrame) -> str:
    """One paragraph of HTML: frames calibrated, measured without a zeropoint (no
    catalog, too few catalog stars) and failed, and the measured frames' seeing, sky,
    airmass and zeropoint ranges.

    Examples
    --------
    >>> f = pd.DataFrame({"status": ["ok", "ok", "no_wcs"], "fwhm": [2.5, 3.5, 4.0],
    ...                   "sky": [100.0, 120.0, 300.0], "airmass": [1.1, 1.3, 1.5],
    ...                   "zp": [24.5, 24.4, None]})
    >>> print(night_summary(f))  # doctest: +NORMALIZE_WHITESPACE
    <p>3 frames: 2 calibrated, 0 measured without a zeropoint, 1 failed. FWHM 2.50-3.50 px
    (median 3.00);
    sky 100-120 e-/px; airmass 1.10-1.30; zeropoint 24.40-24.50 mag.</p>
    """
    ok = frames[measured(frames)]
    n_zp = int((frames["status"] == "ok").sum())
    parts = [
        f"{len(frames)} frames: {n_zp} calibrated, {len(ok) - n_zp} measured without a "
        f"zeropoint, {len(frames) - len(ok)} failed."
    ]
    ranges = []
    for col, label, fmt, unit in (
        ("fwhm", "FWHM", ".2f", " px"),
        ("sky", "sky", ".0f", " e-/px"),
        ("airmass", "airmass", ".2f", ""),
        ("zp", "zeropoint", ".2f", " mag"),
    ):
        v = pd.to_numeric(ok.get(col, pd.Series(dtype=float)), errors="coerce").dropna()
        if len(v):
            text = f"{label} {v.min():{fmt}}-{v.max():{fmt}}{unit}"
            ranges.append(text + (f" (median {v.median():{fmt}})" if col == "fwhm" else ""))
    return "<p>" + " ".join(parts + ["; ".join(ranges) + "."] if ranges else parts) + "</p>"


def landing_rst(summary: str, images=()) -> str:
    """The front page of Snakemake's report (its global description, reStructuredText):
    the night's summary (:func:`night_summary`), ``images`` (``<img>`` tags, e.g. from
    :func:`png_tag`) and links to the report's categories of pages.

    Examples
    --------
    >>> page = landing_rst("<p>3 frames: 2 calibrated</p>", ["<img src='a.png'>"])
    >>> print(page.splitlines()[0])
    The night
    >>> "   <p>3 frames: 2 calibrated</p>" in page.splitlines() and "Frames_" in page
    True
    """
    # Snakemake shows the description in a 32rem column beside the rule graph, centred
    # vertically (a tall page's top out of reach): widened so that the diagnostics are
    # readable, and from the top (the style lives only while the front page is shown).
    style = ".prose.max-w-lg{max-width:60rem}.h-screen.items-center{align-items:flex-start}"
    body = [f"<style>{style}</style>", summary, *images]
    return "\n".join(
        [
            "The night",
            "=========",
            "",
            ".. raw:: html",
            "",
            # docutils refuses lines over 10,000 characters; browsers drop the line
            # breaks inside a data: URL.
            *(
                f"   {line[i : i + 1000]}"
                for part in body
                for line in part.splitlines()
                for i in range(0, max(len(line), 1), 1000)
            ),
            "",
            "Frames_: the per-frame diagnostics and the failed or flagged frames with what to "
            "do. `Light curves`_: the targets (transit fits), the comparison stars, the field "
            "and every star's rms against magnitude. Statistics_: the run's jobs.",
            "",
        ]
    )


def html_page(title: str, sections) -> str:
    """A self-contained HTML page: ``sections`` are (heading, HTML) pairs; PNG files are
    embedded with :func:`png_tag`."""
    body = "".join(f"<h2>{html.escape(h)}</h2>\n{content}\n" for h, content in sections)
    style = (
        "body{font-family:sans-serif;max-width:1000px;margin:auto;padding:1em}"
        "img{max-width:100%}table{border-collapse:collapse;font-size:90%}"
        "td,th{border:1px solid #ccc;padding:2px 6px}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>\n{body}</body></html>"
    )


def png_tag(path) -> str:
    """An ``<img>`` holding the PNG file's bytes (base64)."""
    import base64

    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f"<img src='data:image/png;base64,{data}' alt='{html.escape(Path(path).name)}'>"


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
