"""Light curves: per-frame catalogs transposed into star x frame matrices, ensemble
differential photometry and detrending per night, per-star summaries across nights.

Every star of the master list (the reference catalog's stars and the forced targets:
the photometer measures each at its fixed sky position on every frame) gets a point on
every frame of its night: a measurement, or a gap flagged ``NO_DATA`` (outside the
frame, or the frame failed).

Examples
--------
>>> import pandas as pd
>>> from fieldphot.flags import describe
>>> frames = pd.DataFrame({"frame": ["a", "b"], "filter": ["V", "V"], "bjd_tdb": [1.0, 1.1]})
>>> g = Grid([7, 9], frames)
>>> g.add(0, pd.DataFrame({"id": [7], "mag_inst": [-5.0], "flags": [0]}))
>>> g.point["mag_inst"].tolist(), describe(int(g.flags[1, 0]))
([[-5.0, nan], [nan, nan]], 'NO_DATA')
"""

import numpy as np
import pandas as pd

from . import detrend, ensemble, linearity, timeutil, variability
from .flags import Flag

#: Measurements with any of these flags are left out of fits and statistics. A frame
#: without a zeropoint (no catalog, or too few catalog stars) still has instrumental
#: magnitudes: its points are in the ensemble light curves.
BAD_FOR_SUMMARY = (
    Flag.SATURATED
    | Flag.NONLINEAR
    | Flag.EDGE
    | Flag.NEGATIVE_FLUX
    | Flag.NO_WCS
    | Flag.COSMIC_RAY
    | Flag.NO_DATA
)

#: Ensemble orders an ``auto`` night chooses from.
ORDERS = (0, 1, 2)
#: Per-point columns gathered from the per-frame catalogs (float32 where the precision
#: allows: a 2,000 x 10,000 night stays within memory).
POINT_COLUMNS = {
    "x": np.float32,
    "y": np.float32,
    "sky": np.float32,
    "snr": np.float32,
    "peak": np.float32,
    "mag_inst": np.float64,
    "mag_inst_err": np.float32,
    "mag": np.float64,
    "mag_err": np.float32,
    "mag_lim": np.float32,
}
#: Per-star columns (taken from the first frame the star is on).
STAR_COLUMNS = ("target", "ra", "dec", "mag_cat", "color")
#: Per-frame columns of the long table.
FRAME_COLUMNS = (
    "night",
    "frame",
    "filter",
    "mjd_utc_mid",
    "bjd_tdb",
    "exptime",
    "airmass",
    "fwhm",
)
#: What the catalogs must hold for a grid.
CATALOG_COLUMNS = ["id", *STAR_COLUMNS, *POINT_COLUMNS, "flags", "detected"]


class Grid:
    """A night's star x frame matrices, filled one catalog at a time.

    Parameters
    ----------
    ids : sequence
        Star ids (the master list), one row each.
    frames : DataFrame
        One row per frame, in time order (:data:`FRAME_COLUMNS`, ``naxis1``/``naxis2``).
    """

    def __init__(self, ids, frames: pd.DataFrame):
        self.ids = pd.Index(ids)
        self.frames = frames.reset_index(drop=True)
        shape = (len(self.ids), len(self.frames))
        self.point = {c: np.full(shape, np.nan, t) for c, t in POINT_COLUMNS.items()}
        self.flags = np.full(shape, int(Flag.NO_DATA), np.int32)
        self.detected = np.zeros(shape, bool)
        self.star = pd.DataFrame(
            {
                c: [""] * shape[0] if c == "target" else np.full(shape[0], np.nan)
                for c in STAR_COLUMNS
            }
        )
        self._seen = np.zeros(shape[0], bool)

    def add(self, f: int, table: pd.DataFrame) -> None:
        """Put one frame's catalog (column ``f``) into the matrices."""
        rows = self.ids.get_indexer(table["id"])
        ok = rows >= 0
        rows, table = rows[ok], table[ok]
        for c in POINT_COLUMNS:
            if c in table:
                self.point[c][rows, f] = table[c].to_numpy(float)
        self.flags[rows, f] = table["flags"].to_numpy(np.int32)
        self.detected[rows, f] = table["detected"].to_numpy(bool) if "detected" in table else True
        new = ~self._seen[rows]
        for c in STAR_COLUMNS:
            if c in table:
                self.star.loc[rows[new], c] = table[c].to_numpy()[new]
        self._seen[rows] = True


def _uv(grid: Grid):
    """Positions scaled to -1..1 across each frame."""
    nx = grid.frames.get("naxis1", pd.Series(np.nan, grid.frames.index)).to_numpy(float)
    ny = grid.frames.get("naxis2", pd.Series(np.nan, grid.frames.index)).to_numpy(float)
    x, y = grid.point["x"], grid.point["y"]
    nx = np.where(np.isfinite(nx), nx, np.nanmax(x, axis=0, initial=1) + 1)
    ny = np.where(np.isfinite(ny), ny, np.nanmax(y, axis=0, initial=1) + 1)
    return 2 * x / np.maximum(nx - 1, 1) - 1, 2 * y / np.maximum(ny - 1, 1) - 1


def protected(grid: Grid, protect) -> np.ndarray:
    """(n_star, n_frame) bool: points inside a protected window of ``protect`` (list of
    ``{target or id, t0_bjd, duration_h, period_d}``), for the star each names."""
    mask = np.zeros(grid.flags.shape, bool)
    t = grid.frames["bjd_tdb"].to_numpy(float)
    for p in protect or ():
        if p.get("target"):  # the forced target and the catalog star at its position
            rows = np.flatnonzero(near_targets(grid.star, only=str(p["target"])))
        else:
            rows = grid.ids.get_indexer([p["id"]])
            rows = rows[rows >= 0]
        window = detrend.protect_mask(t, p["t0_bjd"], p["duration_h"] / 24, p.get("period_d"))
        mask[rows] |= window
    return mask


def target_windows(targets) -> list[dict]:
    """Detrending ``protect`` windows of the targets that carry an ephemeris (``t0_bjd``,
    ``duration_h``, optional ``period_d``): 1.2 times the transit's duration.

    >>> target_windows([{"name": "W12", "t0_bjd": 2460384.6, "duration_h": 2.5}, {"name": "x"}])
    [{'target': 'W12', 't0_bjd': 2460384.6, 'duration_h': 3.0, 'period_d': None}]
    """
    return [
        {
            "target": t["name"],
            "t0_bjd": t["t0_bjd"],
            "duration_h": 1.2 * t["duration_h"],
            "period_d": t.get("period_d"),
        }
        for t in targets or ()
        if t.get("t0_bjd") is not None and t.get("duration_h")
    ]


def near_targets(stars: pd.DataFrame, radius_arcsec: float = 5.0, only=None) -> np.ndarray:
    """Which stars are targets or lie within ``radius_arcsec`` of one (a target that is
    also a catalog star), of every target or the one named ``only``: never comparison
    stars, so a target is never its own comparison.

    Examples
    --------
    >>> stars = pd.DataFrame({"target": ["", "WASP-12", "", ""],
    ...                       "ra": [10.0, 10.0, 10.0005, 10.1], "dec": [5.0, 5.0, 5.0, 5.0]})
    >>> near_targets(stars).tolist()
    [True, True, True, False]
    """
    names = stars["target"].astype(str).to_numpy()
    is_target = (names != "") if only is None else (names == only)
    out = is_target.copy()
    ra, dec = np.radians(stars["ra"].to_numpy(float)), np.radians(stars["dec"].to_numpy(float))
    for i in np.flatnonzero(is_target):
        cos = np.sin(dec) * np.sin(dec[i]) + np.cos(dec) * np.cos(dec[i]) * np.cos(ra - ra[i])
        sep = np.degrees(np.arccos(np.clip(cos, -1, 1))) * 3600
        out |= np.nan_to_num(sep, nan=np.inf) <= radius_arcsec
    return out


def differential(grid: Grid, cfg: dict) -> dict:
    """Ensemble differential photometry and optional detrending of one night, field by
    field and filter by filter (:func:`fieldphot.ensemble.fit`, :mod:`fieldphot.detrend`).

    Points whose highest pixel reaches the non-linearity level (``nonlinear_fraction``
    of the frame's saturation level; ``auto``: measured per field and filter by
    :func:`fieldphot.linearity.onset`, then the ensemble is fitted again) are flagged
    ``NONLINEAR`` in ``grid.flags``.

    Returns matrices ``mag_ens``, ``mag_ens_err`` (on the calibrated scale: each star's
    ensemble light curve shifted to its median calibrated magnitude), ``mag_detrended``
    (with detrending configured), and per star ``comparison`` and per frame
    ``ensemble_rms``, ``ensemble_n``, ``poor`` (:func:`poor_frames`),
    ``nonlinear_fraction`` (NaN: no level) and ``ensemble_order`` (``auto``: of
    :data:`ORDERS`, the one that leaves the comparison stars the least scatter,
    :func:`fieldphot.ensemble.best_order`).
    """
    n_star, n_frame = grid.flags.shape
    res = {
        "mag_ens": np.full((n_star, n_frame), np.nan),
        "mag_ens_err": np.full((n_star, n_frame), np.nan, np.float32),
        "comparison": np.zeros(n_star, bool),
        "ensemble_rms": np.full(n_frame, np.nan),
        "ensemble_n": np.zeros(n_frame, int),
        "poor": np.zeros(n_frame, bool),
        "nonlinear_fraction": np.full(n_frame, np.nan),
        "ensemble_order": np.zeros(n_frame, int),
    }
    det = cfg["detrend"]
    detrending = bool(det["epd"]) or det["tfa_templates"] > 0
    if detrending:
        res["mag_detrended"] = np.full((n_star, n_frame), np.nan)
    fraction = _peak_fraction(grid)
    level = cfg["nonlinear_fraction"]
    if level not in (None, "auto"):
        res["nonlinear_fraction"][:] = level
        grid.flags |= np.where(fraction >= level, int(Flag.NONLINEAR), 0).astype(np.int32)
    u, v = _uv(grid)
    never_sat = ~((grid.flags & int(Flag.SATURATED)) != 0).any(axis=1)
    snr = ensemble.nanmedian(np.where(_clean(grid.flags), grid.point["snr"], np.nan), axis=1)
    steady = ~near_targets(grid.star) & (np.nan_to_num(snr) >= cfg["comparison_min_snr"])
    candidates = steady & never_sat
    if cfg["comparison_ids"]:  # chosen by hand (a target is still never its own)
        chosen = grid.ids.astype(str).isin([str(i) for i in cfg["comparison_ids"]])
        candidates = np.asarray(chosen) & ~near_targets(grid.star)
    shield = protected(grid, det["protect"])

    def ensemble_fit(cols, order):
        return ensemble.fit(
            grid.point["mag_inst"][:, cols],
            grid.point["mag_inst_err"][:, cols],
            _clean(grid.flags[:, cols]),
            grid.star["color"].to_numpy(float),
            u[:, cols],
            v[:, cols],
            order=order,
            candidates=candidates,
            variable_factor=cfg["variable_factor"],
        )

    def chosen_fit(cols):
        if cfg["ensemble_order"] != "auto":
            return ensemble_fit(cols, cfg["ensemble_order"]), cfg["ensemble_order"]
        fits = [ensemble_fit(cols, k) for k in ORDERS]
        k = ensemble.best_order(
            fits, grid.point["mag_inst_err"][:, cols], _clean(grid.flags[:, cols])
        )
        return fits[k], ORDERS[k]

    # One ensemble per filter and field (pointing): a night that moved to another field
    # has other stars there, and coverage is judged within each.
    by = ["filter", "field"] if "field" in grid.frames else ["filter"]
    for _, cols in grid.frames.groupby(by, sort=False, dropna=False).indices.items():
        cols = np.sort(cols)
        fit, order = chosen_fit(cols)
        if level == "auto":
            pull = (fit["mag"] - fit["ref"][:, None]) / fit["err"]
            points = steady[:, None] & _clean(grid.flags[:, cols])
            found = linearity.onset(fraction[:, cols][points], pull[points])
            if found is not None:
                above = fraction[:, cols] >= found
                grid.flags[:, cols] |= np.where(above, int(Flag.NONLINEAR), 0).astype(np.int32)
                res["nonlinear_fraction"][cols] = found
                fit, order = chosen_fit(cols)
        res["ensemble_order"][cols] = order
        usable = (grid.flags[:, cols] & int(BAD_FOR_SUMMARY)) == 0
        cal = grid.point["mag"][:, cols] - fit["mag"]
        level_cal = ensemble.nanmedian(np.where(usable, cal, np.nan), axis=1)
        level_cal = np.where(
            np.isfinite(level_cal), level_cal, np.nan_to_num(ensemble.nanmedian(level_cal))
        )
        mag_ens = fit["mag"] + level_cal[:, None]
        res["mag_ens"][:, cols] = mag_ens
        res["mag_ens_err"][:, cols] = fit["err"]
        res["comparison"] |= fit["comparison"]
        res["ensemble_rms"][cols], res["ensemble_n"][cols] = fit["rms"], fit["n_used"]
        res["poor"][cols] = poor_frames(fit["rms"], fit["n_used"], cfg["poor_frame_factor"])
        if detrending:
            res["mag_detrended"][:, cols] = _detrend(
                grid,
                cols,
                mag_ens,
                usable & np.isfinite(mag_ens),
                shield[:, cols],
                fit["comparison"] & ~shield.any(axis=1),
                det,
            )
    return res


def _clean(flags) -> np.ndarray:
    """Unflagged points (a frame without a zeropoint still has instrumental magnitudes)."""
    return (flags & ~int(Flag.NO_ZEROPOINT)) == 0


def _peak_fraction(grid: Grid) -> np.ndarray:
    """(n_star, n_frame): each point's highest pixel over its frame's saturation level
    (NaN where either is unknown)."""
    sat = grid.frames.get("saturation_e", pd.Series(np.nan, grid.frames.index))
    sat = pd.to_numeric(sat, errors="coerce").to_numpy(float)
    sat = np.where(np.isfinite(sat) & (sat > 0), sat, np.nan)
    return grid.point["peak"] / sat[None, :]


def poor_frames(rms, n_used, factor: float = 3.0) -> np.ndarray:
    """Frames whose ensemble fit scatters ``factor`` times the median frame's, or that
    kept under half the median number of comparison stars: clouds, twilight, a bright
    moon. Their points are flagged ``POOR_FRAME`` (kept, but out of the statistics).

    Examples
    --------
    >>> poor_frames(np.array([0.01, 0.012, 0.011, 0.05]), np.array([40, 41, 39, 40])).tolist()
    [False, False, False, True]
    """
    rms, n_used = np.asarray(rms, float), np.asarray(n_used, float)
    fitted = np.isfinite(rms) & (n_used > 0)
    if fitted.sum() < 3:
        return np.zeros(len(rms), bool)
    med_rms, med_n = np.median(rms[fitted]), np.median(n_used[fitted])
    return fitted & ((rms > factor * med_rms) | (n_used < 0.5 * med_n))


def _detrend(grid, cols, mag, usable, shield, quiet, det) -> np.ndarray:
    """EPD, then TFA on what EPD leaves, fitted outside each star's protected windows."""
    fit_on = usable & ~shield
    w = np.where(fit_on, 1.0, 0.0)
    mean = np.sum(w * np.nan_to_num(mag), axis=1) / np.maximum(w.sum(axis=1), 1)
    resid = mag - mean[:, None]
    trend = np.zeros_like(resid)
    if det["epd"]:
        per_frame = {c: grid.frames[c].to_numpy(float)[cols] for c in ("airmass", "fwhm")}
        regs = [
            np.broadcast_to(per_frame[r], resid.shape) if r in per_frame else grid.point[r][:, cols]
            for r in det["epd"]
        ]
        trend += np.nan_to_num(detrend.epd(resid, fit_on, regs))
    if det["tfa_templates"] > 0:
        after = resid - trend
        tpl = detrend.tfa_templates(after, fit_on, quiet, det["tfa_templates"])
        trend += np.nan_to_num(detrend.tfa(after, fit_on, tpl, exact=shield.any(axis=1)))
    return mag - trend


def long_chunks(grid: Grid, diff: dict, chunk: int = 1000):
    """The long table (one row per star and frame, sorted by star then time), a block of
    ``chunk`` stars at a time, so a large night is written without holding it all. A
    night without stars (every frame failed) gives one empty block: an empty table."""
    n_star, n_frame = grid.flags.shape
    frames = grid.frames
    cats = {c: pd.Categorical(frames[c].astype(str)) for c in ("night", "frame", "filter")}
    mjd = frames["mjd_utc_mid"].to_numpy(float)
    has_mjd = np.isfinite(mjd)
    frame_bjd = frames["bjd_tdb"].to_numpy(float)
    pointing = frames.reindex(columns=["ra", "dec"]).to_numpy(float)
    # The frame's BJD holds the delay toward its header pointing (right or not) and the
    # site's offset; a star's own delay replaces the pointing's. Without a frame BJD, the
    # star's geocentric BJD (the site's offset is at most 21 ms).
    relative = has_mjd & np.isfinite(frame_bjd) & np.isfinite(pointing).all(axis=1)
    base = np.where(relative, frame_bjd, np.nan)
    if relative.any():
        base[relative] -= np.diagonal(
            timeutil.barycentric_delay_days(mjd[relative], *pointing[relative].T)
        )
    geo = has_mjd & ~relative
    if geo.any():
        base[geo] = timeutil.tdb_jd(mjd[geo])
    point_cols = [c for c in ("mag_ens", "mag_ens_err", "mag_detrended") if c in diff]
    for s in range(0, max(n_star, 1), chunk):
        rows = np.arange(s, min(s + chunk, n_star))
        rep = np.repeat(rows, n_frame)
        fr = np.tile(np.arange(n_frame), len(rows))
        df = {"id": grid.ids.to_numpy()[rep]}
        df["target"] = pd.Categorical(grid.star["target"].astype(str).to_numpy()[rep])
        for c in FRAME_COLUMNS:
            df[c] = cats[c][fr] if c in cats else frames[c].to_numpy(float)[fr]
        # Each star's BJD_TDB from its own position (a degree off the pointing is 7 s).
        radec = grid.star[["ra", "dec"]].to_numpy(float)[rows]
        known = np.isfinite(radec).all(axis=1)
        bjd = np.full((len(rows), n_frame), np.nan)
        if has_mjd.any() and known.any():
            sub = bjd[known]
            sub[:, has_mjd] = base[has_mjd] + timeutil.barycentric_delay_days(
                mjd[has_mjd], *radec[known].T
            )
            bjd[known] = sub
        df["bjd_tdb"] = np.where(np.isfinite(bjd), bjd, df["bjd_tdb"].reshape(bjd.shape)).ravel()
        for c in POINT_COLUMNS:
            df[c] = grid.point[c][rows].ravel()
        for c in point_cols:
            df[c] = diff[c][rows].ravel()
        poor = np.where(diff["poor"], int(Flag.POOR_FRAME), 0).astype(np.int32)
        df["flags"] = (grid.flags[rows] | poor[None, :]).ravel()
        df["detected"] = grid.detected[rows].ravel()
        for c in ("ra", "dec", "mag_cat", "color"):
            df[c] = grid.star[c].to_numpy(float)[rep]
        df["comparison"] = diff["comparison"][rep]
        yield pd.DataFrame(df)


def light_curve_column(columns) -> str:
    """The magnitude the summary describes: detrended where there is one, else ensemble."""
    return "mag_detrended" if "mag_detrended" in columns else "mag_ens"


def summarize(
    lc: pd.DataFrame,
    column: str = "mag_ens",
    bad_bits: int = BAD_FOR_SUMMARY,
    periodograms: bool = True,
    bls: bool = True,
    max_frequencies: int = 10000,
    min_period: float = 0.01,
) -> pd.DataFrame:
    """Per star and filter, statistics of the good points of ``column``.

    Returns one row per star and filter: ``n_points`` (good), ``n_flagged``, ``mean_mag``
    (inverse-variance weighted), ``median_mag``, ``rms`` (standard deviation), ``mad_std``
    (1.4826 MAD), ``expected`` (median reported error: the noise model), ``chi2_red``
    (about the weighted mean), ``n_blended`` (good points flagged ``BLENDED``),
    ``blended`` (over half of them), ``variability_rank`` (1 for the highest ``chi2_red``
    among the stars with 3 good points or more that are not ``blended``; missing for
    the others), and with ``periodograms`` the indices and best periods of
    :func:`fieldphot.variability.statistics`.

    Examples
    --------
    >>> lc = pd.DataFrame({"id": [1, 1, 1], "filter": "V", "bjd_tdb": [1.0, 2.0, 3.0],
    ...     "mag_ens": [10.0, 10.02, 9.98], "mag_ens_err": [0.02] * 3, "flags": [0] * 3})
    >>> s = summarize(lc)
    >>> int(s.loc[0, "n_points"]), float(s.loc[0, "mean_mag"]), round(float(s.loc[0, "rms"]), 4)
    (3, 10.0, 0.02)
    """
    err_col = "mag_err" if column == "mag" else "mag_ens_err"
    # One integer key per star and filter: every statistic is a segment reduction over
    # the rows sorted by key and time (no string columns, no copies of the whole table).
    id_codes, ids = pd.factorize(lc["id"])
    f_codes, filters = pd.factorize(lc["filter"] if "filter" in lc else pd.Series("", lc.index))
    nf = max(len(filters), 1)
    key_all = id_codes.astype(np.int64) * nf + f_codes
    flags = lc["flags"].to_numpy(dtype=np.int64)
    good = ((flags & int(bad_bits)) == 0) & np.isfinite(lc[column].to_numpy(dtype=float))
    blend = (flags & int(Flag.BLENDED)) != 0
    t, m, e = (lc[c].to_numpy(float)[good] for c in ("bjd_tdb", column, err_col))
    key = key_all[good]
    order = np.lexsort((t, key))
    key = key[order]  # one array at a time: the peak holds one extra column, not four
    t = t[order]
    m = m[order]
    e = e[order]
    del order
    uk, start, n = np.unique(key, return_index=True, return_counts=True)
    w = 1.0 / e**2
    mean = np.add.reduceat(w * m, start) / np.add.reduceat(w, start) if len(uk) else np.array([])
    plain = np.add.reduceat(m, start) / n if len(uk) else np.array([])
    dof = np.maximum(n - 1, 1)
    by_key = pd.Series(m).groupby(key)
    median = by_key.median().to_numpy()
    out = pd.DataFrame(
        {
            "id": ids[uk // nf] if len(uk) else pd.Series(dtype="int64"),
            "filter": np.asarray(filters, dtype=object)[uk % nf] if len(uk) else [],
            "n_points": n,
            "mean_mag": mean,
            "median_mag": median,
            "rms": np.sqrt(np.add.reduceat((m - np.repeat(plain, n)) ** 2, start) / dof)
            if len(uk)
            else [],
            "expected": pd.Series(e).groupby(key).median().to_numpy(),
            "mad_std": 1.4826
            * pd.Series(np.abs(m - np.repeat(median, n))).groupby(key).median().to_numpy(),
            "chi2_red": np.add.reduceat((m - np.repeat(mean, n)) ** 2 * w, start) / dof
            if len(uk)
            else [],
            "n_flagged": np.bincount(key_all[~good], minlength=len(ids) * nf)[uk]
            if len(ids)
            else [],
            "n_blended": np.bincount(key_all[good & blend], minlength=len(ids) * nf)[uk]
            if len(ids)
            else [],
        }
    )
    out.loc[out["n_points"] < 2, "rms"] = np.nan
    # A neighbour's light moving in and out of the aperture with the seeing makes a
    # constant star scatter: blends are named, and ranked last as variables.
    out["blended"] = out["n_blended"] > 0.5 * out["n_points"]
    rankable = ~out["blended"] & (out["n_points"] >= 3) & np.isfinite(out["chi2_red"])
    out["variability_rank"] = (
        out["chi2_red"].where(rankable).rank(ascending=False, method="first").astype("Int64")
    )
    if periodograms and len(out):
        segments = (np.split(a, start[1:]) for a in (t, m, e))
        stats = [
            variability.statistics(
                a, b, c, min_period=min_period, max_frequencies=max_frequencies, bls=bls
            )
            for a, b, c in zip(*segments, strict=True)
        ]
        out = out.join(pd.DataFrame(stats, index=out.index))
    return out


def rms_figure(summary: pd.DataFrame, title: str = ""):
    """The rms-magnitude diagram with the noise model (median reported error) drawn over it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    s = summary[summary["n_points"] >= 3].sort_values("mean_mag")
    ax.semilogy(s["mean_mag"], s["rms"], ".", ms=4, label="measured rms")
    if len(s):
        edges = np.arange(np.floor(s["mean_mag"].min()), s["mean_mag"].max() + 0.5, 0.5)
        binned = s.groupby(pd.cut(s["mean_mag"], edges), observed=True)
        ax.semilogy(
            binned["mean_mag"].median(),
            binned["expected"].median(),
            "-",
            lw=1.5,
            color="C3",
            label="expected (noise model, binned median)",
        )
    ax.set_xlabel("mean magnitude")
    ax.set_ylabel("rms (mag)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig
