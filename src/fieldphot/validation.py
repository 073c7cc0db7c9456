"""Measure a processed simulated night against the simulator's truth.

One implementation of every accuracy number, shared by the tests (which assert on them) and
``benchmarks/accuracy.py`` (which prints them).

Examples
--------
>>> import numpy as np
>>> t = np.linspace(0, 0.2, 50)
>>> f = 1 + 0.05 * np.sin(2 * np.pi * t / 0.05)
>>> round(sine_amplitude(t, f, np.full(50, 1e-3), 0.0, 0.05), 4)
0.05
"""

from pathlib import Path

import numpy as np
import pandas as pd

from . import io, measure, wcsmodel
from .flags import Flag
from .photometry import moffat_alpha
from .synthetic import _stamp, transit_model


class Truth:
    """The truth written by :func:`fieldphot.synthetic.simulate_night`."""

    def __init__(self, root):
        import json

        root = Path(root)
        self.stars = io.read_table(root / "truth" / "stars.parquet")[0].set_index("id")
        self.frames = io.read_table(root / "truth" / "frames.parquet")[0].set_index("frame")
        self.fluxes = io.read_table(root / "truth" / "fluxes.parquet")[0]
        self.params = json.loads((root / "truth" / "params.json").read_text())

    def frame(self, frame: str) -> pd.DataFrame:
        return self.fluxes[self.fluxes["frame"] == frame].set_index("id")


def _per_frame(results: Path, product: str):
    for path in sorted(Path(results).glob(f"{product}/*/*.parquet")):
        yield path.stem, *io.read_table(path)


def astrometry_rms(results, truth: Truth) -> pd.Series:
    """Per frame: rms (px) of fitted-WCS positions of the used matched stars minus the truth."""
    out = {}
    for frame, matched, meta in _per_frame(results, "astrometry"):
        if meta.get("status") != "ok":
            out[frame] = np.nan
            continue
        m = matched[matched["used"]]
        t = truth.frame(frame).loc[m["id"]]
        out[frame] = float(
            np.sqrt(
                np.mean(
                    (m["x_fit"].to_numpy() - t["x"].to_numpy()) ** 2
                    + (m["y_fit"].to_numpy() - t["y"].to_numpy()) ** 2
                )
            )
        )
    return pd.Series(out, name="astrometry_rms_px")


def zeropoint_offsets(results, truth: Truth) -> pd.Series:
    """Per frame: fitted zeropoint minus the true one (mag)."""
    out = {
        frame: meta.get("zeropoint", {}).get("zp", np.nan) - truth.frames.loc[frame, "zp"]
        for frame, _, meta in _per_frame(results, "catalogs")
    }
    return pd.Series(out, name="zp_minus_truth")


def error_pulls(results, truth: Truth, min_snr: float = 5.0) -> np.ndarray:
    """(measured - true magnitude) / reported error of every clean, unsaturated catalog star
    above ``min_snr`` on every frame: a standard normal when the errors are honest."""
    pulls = []
    for frame, cat, meta in _per_frame(results, "catalogs"):
        if meta.get("status") != "ok":
            continue
        catalogued = np.isfinite(cat["mag_cat"])  # not the targets, not the deep sources
        c = cat[catalogued & (cat["flags"] == 0) & (cat["snr"] > min_snr)]
        t = truth.frame(frame).loc[c["id"]]
        keep = ~t["saturated"].to_numpy()
        d = c["mag"].to_numpy() - t["mag_true"].to_numpy()
        pulls.append((d / c["mag_err"].to_numpy())[keep])
    return np.concatenate(pulls) if pulls else np.zeros(0)


def crowding_accuracy(results, truth: Truth, min_snr: float = 50.0) -> dict:
    """Calibrated magnitudes against the truth for crowded stars (a neighbour within 2 FWHM
    at most 2 mag brighter than the star) and isolated ones (none within 4 FWHM), above
    ``min_snr``, unsaturated and clear of the edge and cosmic rays: per group ``n``, the
    ``median`` of measured minus true (mag), its robust ``scatter`` (1.4826 MAD) and the
    robust scatter of the pulls (``pull_sd``)."""
    from scipy.spatial import cKDTree

    rows = []
    for frame, cat, meta in _per_frame(results, "catalogs"):
        if meta.get("status") != "ok":
            continue
        t = truth.frame(frame)
        xy, mag = t[["x", "y"]].to_numpy(), t["mag_true"].to_numpy()
        fwhm = truth.frames.loc[frame, "fwhm"]
        tree = cKDTree(xy)
        near = tree.query_ball_point(xy, 2 * fwhm)
        crowded = [any(j != i and mag[j] >= mag[i] - 2.0 for j in nb) for i, nb in enumerate(near)]
        isolated = tree.query_ball_point(xy, 4 * fwhm, return_length=True) == 1
        t = t.assign(crowded=crowded, isolated=isolated)
        c = cat[np.isfinite(cat["mag_cat"]) & (cat["snr"] > min_snr)]
        c = c[(c["flags"] & int(Flag.SATURATED | Flag.EDGE | Flag.COSMIC_RAY)) == 0]
        rows.append(c.join(t[["mag_true", "crowded", "isolated", "saturated"]], on="id"))
    c = pd.concat(rows) if rows else pd.DataFrame()
    out = {}
    for group in ("crowded", "isolated"):
        s = c[c[group].astype(bool) & ~c["saturated"].astype(bool)] if len(c) else c
        d = (s["mag"] - s["mag_true"]).to_numpy() if len(s) else np.zeros(0)
        pull = d / s["mag_err"].to_numpy() if len(s) else d
        out[group] = {
            "n": int(len(d)),
            "median": float(np.median(d)) if len(d) else np.nan,
            "scatter": _robust_sd(d),
            "pull_sd": _robust_sd(pull),
        }
    return out


def _robust_sd(v) -> float:
    """1.4826 times the median absolute deviation (NaN for no values)."""
    return float(1.4826 * np.median(np.abs(v - np.median(v)))) if len(v) else np.nan


def completeness(
    results, truth: Truth, frame: str, n: int = 400, seed: int = 7, snr: float = 5.0
) -> dict:
    """Inject ``n`` fake stars (the frame's true PSF) within +-1.2 mag of the frame's
    limiting magnitude, away from detected sources, a few at a time; measure them by
    forced photometry; return the recovered fraction (S/N >= ``snr``) per 0.3 mag bin and
    the magnitude of 50 % recovery ``m50`` beside the reported ``maglim``."""
    results = Path(results)
    sci, err, mask, _ = io.read_calibrated(next(results.glob(f"calibrated/*/{frame}.fits")))
    _, meta = io.read_table(next(results.glob(f"photometry/*/{frame}.parquet")))
    _, cmeta = io.read_table(next(results.glob(f"catalogs/*/{frame}.parquet")))
    src, _ = io.read_table(next(results.glob(f"sources/*/{frame}.parquet")))
    ref, _ = io.read_table(results / "refcat.parquet")
    zp, maglim = cmeta["zeropoint"]["zp"], cmeta["zeropoint"]["maglim"]
    exptime, wcs = meta["frame"]["exptime"], wcsmodel.wcs_from_string(meta["wcs"])
    beta = truth.params["sim"]["moffat_beta"]
    alpha = moffat_alpha(float(truth.frames.loc[frame, "fwhm"]), beta)
    rng = np.random.default_rng(seed)
    mags = rng.uniform(maglim - 1.2, maglim + 1.2, n)
    known = src[["x", "y"]].to_numpy()
    ny, nx = sci.shape
    recovered = []
    for chunk in np.array_split(np.arange(n), max(n // 50, 1)):  # no self-crowding
        xy = []
        while len(xy) < len(chunk):
            p = rng.uniform(30, [nx - 30, ny - 30])
            clear = np.hypot(*(known - p).T).min() > 12 if len(known) else True
            if clear and all(np.hypot(*(p - q)) > 30 for q in xy):
                xy.append(p)
        model = np.zeros_like(sci)
        for (x, y), m in zip(xy, mags[chunk], strict=True):
            x0, y0, st = _stamp(x, y, alpha, beta, 20)
            flux = 10 ** (-0.4 * (m - zp)) * exptime
            model[y0 : y0 + st.shape[0], x0 : x0 + st.shape[1]] += flux * st
        ra, dec = wcs.pixel_to_world_values(*np.array(xy).T)
        fakes = [
            {"name": str(i), "ra": a, "dec": d} for i, a, d in zip(chunk, ra, dec, strict=True)
        ]
        t, _ = measure.measure_frame(
            sci + rng.poisson(model),
            np.sqrt(err**2 + model),
            mask,
            wcs,
            ref,
            meta["photometry"]["fwhm"],
            meta["frame"],
            meta["config"],
            fakes,
            (src["x"].to_numpy(), src["y"].to_numpy()),
        )
        recovered += list(t.loc[t["target"] != "", "snr"].to_numpy() >= snr)
    recovered = np.array(recovered)
    edges = np.arange(maglim - 1.2, maglim + 1.21, 0.3)
    centre = (edges[:-1] + edges[1:]) / 2
    frac = np.array(
        [
            recovered[(mags >= a) & (mags < b)].mean()
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
    )
    m50 = float(np.interp(0.5, frac[::-1], centre[::-1]))
    return {"centre": centre, "fraction": frac, "m50": m50, "maglim": float(maglim)}


def deep_stars(results, truth: Truth, match_arcsec: float = 1.0) -> dict:
    """The star lists' deep sources against the truth: each matched to the nearest true
    star (within ``match_arcsec``), the fraction that are real uncatalogued stars
    (``purity``), the fraction of true uncatalogued stars found per 0.25 mag
    (``fraction``; stars inside the first reference frame, 10 px from its edges), its 50 %
    point ``m50``, the same for the detections on that frame alone (``m50_frame``), and
    on every frame the ``pulls`` (measured - true magnitude) / error of the unflagged
    measurements of real deep stars (``frames_per_star``: catalog rows each has)."""
    from astropy.coordinates import SkyCoord

    results = Path(results)
    catalog_limit = truth.params["sim"]["mag_max"]
    lists = [io.read_table(p) for p in sorted(results.glob("starlist/*/*.parquet"))]
    deep = pd.concat([t[t["mag"].isna()] for t, _ in lists], ignore_index=True)
    stars = truth.stars.reset_index()
    true = SkyCoord(stars["ra"].to_numpy(), stars["dec"].to_numpy(), unit="deg")
    found = SkyCoord(deep["ra"].to_numpy(), deep["dec"].to_numpy(), unit="deg")
    idx, sep, _ = found.match_to_catalog_sky(true)
    deep["true_id"] = np.where(sep.arcsec < match_arcsec, stars["id"].to_numpy()[idx], -1)
    deep["true_mag"] = np.where(deep["true_id"] > 0, stars["mag"].to_numpy()[idx], np.nan)
    purity = float(np.mean(deep["true_mag"] > catalog_limit)) if len(deep) else np.nan

    first = Path(lists[0][1]["starlist"]["frames"][0]).stem
    inside = truth.frame(first)
    ny, nx = truth.params["sim"]["ny"], truth.params["sim"]["nx"]
    inside = inside[inside["x"].between(10, nx - 11) & inside["y"].between(10, ny - 11)]
    faint = stars.set_index("id").loc[inside.index]
    faint = faint[faint["mag"] > catalog_limit]
    src, _ = io.read_table(next(results.glob(f"sources/*/{first}.parquet")))
    _, ast = io.read_table(next(results.glob(f"astrometry/*/{first}.parquet")), columns=[])
    wcs = wcsmodel.wcs_from_string(ast["wcs"])
    single = wcs.pixel_to_world(src["x"].to_numpy(), src["y"].to_numpy())
    edges = np.arange(catalog_limit, faint["mag"].max() + 0.25, 0.25)
    centre = edges[:-1] + 0.125
    pos = SkyCoord(faint["ra"].to_numpy(), faint["dec"].to_numpy(), unit="deg")

    def recovered(cat):
        if len(cat) == 0:
            return np.zeros(len(centre))
        hit = pos.match_to_catalog_sky(cat)[1].arcsec < match_arcsec
        b = np.digitize(faint["mag"].to_numpy(), edges) - 1
        return np.array(
            [hit[b == i].mean() if (b == i).any() else np.nan for i in range(len(centre))]
        )

    frac, frac_frame = recovered(found), recovered(single)
    real = deep[deep["true_mag"] > catalog_limit].set_index("id")["true_id"]
    pulls, rows = [], []
    for frame, cat, _ in _per_frame(results, "catalogs"):
        c = cat[cat["id"].isin(real.index)]
        rows.append(c["id"].to_numpy())
        c = c[c["flags"] == 0]
        t = truth.frame(frame).loc[real[c["id"]].to_numpy()]
        pulls.append((c["mag"].to_numpy() - t["mag_true"].to_numpy()) / c["mag_err"].to_numpy())
    ids, n = np.unique(np.concatenate(rows), return_counts=True)

    def m50(f):
        ok = np.isfinite(f)
        return float(np.interp(0.5, f[ok][::-1], centre[ok][::-1]))

    return {
        "deep": deep,
        "purity": purity,
        "centre": centre,
        "fraction": frac,
        "fraction_frame": frac_frame,
        "m50": m50(frac),
        "m50_frame": m50(frac_frame),
        "pulls": np.concatenate(pulls),
        "frames_per_star": pd.Series(n, index=ids).reindex(real.index, fill_value=0),
    }


def light_curves(results, columns=None) -> pd.DataFrame:
    """The long light-curve table of every night under ``results``."""
    nights = sorted((Path(results) / "lightcurves" / "nights").glob("*.parquet"))
    return io.read_tables(nights, columns)


def star_pulls(lc: pd.DataFrame, min_frames: int = 8) -> pd.DataFrame:
    """Per star of a long light-curve table (``id, mag_ens, mag_ens_err, flags, snr``,
    more columns are aggregated by their maximum): the rms of its pulls (each unflagged
    point's offset from the star's weighted mean over the point's own error, scaled for
    the mean's one degree of freedom), its points ``n`` and median ``snr``. For constant
    stars it is 1 when the errors are honest, whatever the exposure times mixed; stars
    on fewer than ``min_frames`` frames are left out. A night without a catalog has
    every point ``NO_ZEROPOINT``: that bit is ignored.

    >>> lc = pd.DataFrame({"id": [1] * 4, "mag_ens": [10.0, 10.02, 9.98, 10.0],
    ...                    "mag_ens_err": 0.02, "flags": 0, "snr": 50.0})
    >>> star_pulls(lc, min_frames=4)["pull_rms"].round(3).tolist()
    [0.816]
    """
    lc = lc[((lc["flags"] & ~int(Flag.NO_ZEROPOINT)) == 0) & (lc["mag_ens_err"] > 0)]
    w = 1.0 / lc["mag_ens_err"] ** 2
    mean = (lc["mag_ens"] * w).groupby(lc["id"]).sum() / w.groupby(lc["id"]).sum()
    pull2 = ((lc["mag_ens"] - lc["id"].map(mean)) / lc["mag_ens_err"]) ** 2
    extra = {c: (c, "max") for c in lc.columns if c not in ("id", "mag_ens", "mag_ens_err")}
    extra.pop("flags")
    st = (
        lc.assign(pull2=pull2)
        .groupby("id")
        .agg(n=("pull2", "size"), p2=("pull2", "sum"), **extra, snr_median=("snr", "median"))
    )
    st["snr"] = st.pop("snr_median")
    st["pull_rms"] = np.sqrt(st.pop("p2") / (st["n"] - 1).clip(lower=1))
    return st[st["n"] >= min_frames]


def constant_star_noise(
    results, truth: Truth, min_snr: float = 50.0, filter_name=None
) -> pd.DataFrame:
    """Constant, never-saturated stars with S/N > ``min_snr`` on at least 80 % of the frames:
    the light-curve summary's rms and noise model (``expected``: median error of the
    ensemble magnitudes) and the CCD equation's prediction (median ``mag_inst_err``); of
    filter (a colour frame's channel) ``filter_name`` alone when given."""
    lc = light_curves(results, ["id", "frame", "filter", "snr", "mag_inst_err", "flags"])
    s, _ = io.read_table(Path(results) / "lightcurves" / "summary.parquet")
    if filter_name is not None:
        lc, s = lc[lc["filter"] == filter_name], s[s["filter"] == filter_name]
    ever_sat = truth.fluxes.groupby("id")["saturated"].any()
    n = lc["frame"].nunique()
    snr = lc[lc["flags"] == 0].groupby("id")["snr"].median()
    keep = (
        (s["id"].map(truth.stars["kind"]) == "constant")
        & ~s["id"].map(ever_sat).fillna(True).astype(bool)
        & (s["n_points"] >= 0.8 * n)
        & (s["id"].map(snr) > min_snr)
    )
    s = s[keep].copy()
    s["predicted"] = s["id"].map(lc.groupby("id")["mag_inst_err"].median())
    return s[["id", "mean_mag", "n_points", "rms", "predicted", "expected"]]


def flux_curve(results, star_id: int, column: str = "mag_ens", filter_name=None):
    """Time (BJD_TDB), relative flux and its error of one star's unflagged points (in
    filter, or a colour frame's channel, ``filter_name`` alone when given)."""
    lc = light_curves(results, ["id", "bjd_tdb", "filter", column, "mag_ens_err", "flags"])
    s = lc[(lc["id"] == star_id) & (lc["flags"] == 0) & np.isfinite(lc[column])]
    s = s if filter_name is None else s[s["filter"] == filter_name]
    flux = 10 ** (-0.4 * (s[column].to_numpy() - s[column].median()))
    return s["bjd_tdb"].to_numpy(), flux, flux * s["mag_ens_err"].to_numpy() / 1.0857


def transit_depth(t, flux, err, t0, duration, ingress) -> float:
    """Depth from a weighted linear fit of the trapezoid shape (known ephemeris)."""
    return _trapezoid(t, flux, err, t0, duration, ingress)[0]


def _trapezoid(t, flux, err, t0, duration, ingress):
    """Depth, chi-square and depth error (chi-square scaled) of a trapezoid at ``t0``."""
    shape = 1 - transit_model(t, t0, 1.0, duration, ingress)
    design = np.column_stack([np.ones_like(t), -shape]) / err[:, None]
    (a, ad), *_ = np.linalg.lstsq(design, flux / err, rcond=None)
    chi2 = float(np.sum((flux / err - design @ [a, ad]) ** 2))
    cov = np.linalg.inv(design.T @ design) * max(chi2 / max(len(t) - 2, 1), 1.0)
    return float(ad / a), chi2, float(np.sqrt(cov[1, 1]) / a)


def transit_fit(t, flux, err, t0_guess, duration, ingress) -> tuple[float, float, float]:
    """Mid-time, depth and depth error of a trapezoid of known shape: the mid-time
    minimizing chi-square on a 3-second grid within half a duration of ``t0_guess``, the
    depth linear at each."""
    grid = t0_guess + np.arange(-duration / 2, duration / 2, 3 / 86400)
    chi2 = [_trapezoid(t, flux, err, g, duration, ingress)[1] for g in grid]
    t0 = float(grid[int(np.argmin(chi2))])
    depth, _, depth_err = _trapezoid(t, flux, err, t0, duration, ingress)
    return t0, depth, depth_err


def sine_amplitude(t, flux, err, t0, period) -> float:
    """Fractional semi-amplitude from a weighted linear sine fit (known period)."""
    ph = 2 * np.pi * (np.asarray(t) - t0) / period
    design = np.column_stack([np.ones_like(ph), np.sin(ph), np.cos(ph)]) / err[:, None]
    (a, b, c), *_ = np.linalg.lstsq(design, flux / err, rcond=None)
    return float(np.hypot(b, c) / a)


def report(results, truth_root) -> dict:
    """Every accuracy number of a processed simulated night."""
    truth = Truth(truth_root)
    astro = astrometry_rms(results, truth)
    zp = zeropoint_offsets(results, truth)
    noise = constant_star_noise(results, truth)
    tr, var = truth.params["transit"], truth.params["variable"]
    t, f, e = flux_curve(results, tr["id"])
    depth = transit_depth(t, f, e, tr["t0_bjd"], tr["duration_d"], tr["ingress_d"])
    t, f, e = flux_curve(results, var["id"])
    amp = sine_amplitude(t, f, e, var["t0_bjd"], var["period_d"])
    deep = deep_stars(results, truth)
    pulls = deep["pulls"]
    return {
        "frames": int(len(zp)),
        "astrometry_rms_px_max": float(astro.max()),
        "astrometry_rms_px_median": float(astro.median()),
        "zp_minus_truth_max_abs": float(zp.abs().max()),
        "zp_minus_truth_mean": float(zp.mean()),
        "constant_stars_snr50": int(len(noise)),
        "scatter_over_ccd_prediction_median": float((noise["rms"] / noise["predicted"]).median()),
        "reported_over_scatter_median": float((noise["expected"] / noise["rms"]).median()),
        "transit_depth": depth,
        "transit_depth_true": tr["depth"],
        "variable_amplitude": amp,
        "variable_amplitude_true": var["amplitude"],
        "deep_sources": int(len(deep["deep"])),
        "deep_purity": deep["purity"],
        "deep_m50_stack": deep["m50"],
        "deep_m50_one_frame": deep["m50_frame"],
        "deep_pull_median": float(np.median(pulls)) if len(pulls) else np.nan,
        "deep_pull_robust_std": float(1.4826 * np.median(np.abs(pulls - np.median(pulls))))
        if len(pulls)
        else np.nan,
    }


def star_field_rms(wcs, sources: pd.DataFrame, ref: pd.DataFrame) -> float:
    """Rms (px) of WCS-predicted vs true positions of every real star of a
    :func:`fieldphot.synthetic.star_field` frame."""
    real = sources[sources["id"] > 0]
    sky = ref.set_index("id").loc[real["id"]]
    x, y = wcs.world_to_pixel_values(sky["ra"].to_numpy(), sky["dec"].to_numpy())
    return float(np.sqrt(np.mean((x - real["x_true"]) ** 2 + (y - real["y_true"]) ** 2)))
