"""Photometric zeropoint: weighted, sigma-clipped fit of catalog minus instrumental mags.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(2)
>>> cat = rng.uniform(12, 17, 60)
>>> inst = cat - 25.0 + rng.normal(0, 0.01, 60)
>>> inst[:3] += 0.5  # three outliers (variables, blends)
>>> zp = fit_zeropoint(inst, np.full(60, 0.01), cat, np.full(60, 0.005))
>>> round(zp["zp"], 2), zp["n_used"], zp["status"]
(25.0, 57, 'ok')
"""

import numpy as np
import pandas as pd

from .flags import Flag, any_set


def instrumental_mag(flux, flux_err, exptime: float) -> tuple[np.ndarray, np.ndarray]:
    """``-2.5 log10(flux / exptime)`` and its error; NaN where the flux is not positive."""
    flux = np.asarray(flux, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        good = flux > 0
        mag = np.where(good, -2.5 * np.log10(np.where(good, flux, 1.0) / exptime), np.nan)
        err = np.where(good, 2.5 / np.log(10) * np.asarray(flux_err, float) / flux, np.nan)
    return mag, err


def _design(n: int, color, color_term, uv, spatial_order: int) -> tuple[np.ndarray, list]:
    """Columns of the zeropoint model: 1, colour (when fitted), u^p v^q (1 <= p+q <= order)."""
    cols, names = [np.ones(n)], ["zp"]
    if color_term == "fit":
        cols.append(np.asarray(color, float))
        names.append("color_term")
    if spatial_order > 0:
        u, v = (np.asarray(a, float) for a in uv)
        for deg in range(1, spatial_order + 1):
            for q in range(deg + 1):
                cols.append(u ** (deg - q) * v**q)
                names.append(f"u{deg - q}v{q}")
    return np.column_stack(cols), names


def fit_zeropoint(
    inst_mag,
    inst_err,
    cat_mag,
    cat_err,
    color=None,
    color_term=None,
    uv=None,
    spatial_order: int = 0,
    clip_sigma: float = 3.0,
    min_stars: int = 5,
    max_iter: int = 10,
) -> dict:
    """Weighted, sigma-clipped fit of ``cat_mag - inst_mag``.

    The model is ``zp + c * color + sum a_pq u^p v^q``: a colour term ``c`` fitted
    (``color_term="fit"``), fixed (a number) or absent (None), and an optional
    polynomial in normalized frame coordinates ``uv`` (each in -1..1) of
    ``spatial_order``. Weights are ``1 / (inst_err^2 + cat_err^2)``. Clipping uses the
    normalized residuals scaled by their robust spread, so a frame whose errors are
    underestimated still loses only real outliers. Parameter errors come from the
    weighted least-squares covariance, inflated by ``sqrt(reduced chi^2)`` when the
    scatter exceeds the errors.

    Returns
    -------
    dict
        ``zp, zp_err, color_term, color_term_err, spatial`` (coefficients by name),
        ``cov`` (parameter covariance), ``names``, ``n_used, n_input, rms, chi2_red,
        color_min, color_max, color_median, spatial_order, status`` (``ok`` or
        ``few_stars``) and
        ``used`` (boolean array over the inputs).
    """
    inst_mag, inst_err, cat_mag, cat_err = (
        np.asarray(v, float) for v in (inst_mag, inst_err, cat_mag, cat_err)
    )
    n_all = len(inst_mag)
    color = np.full(n_all, np.nan) if color is None else np.asarray(color, float)
    fixed = float(color_term) if color_term not in (None, "fit") else 0.0
    d = cat_mag - inst_mag - fixed * np.nan_to_num(color)
    s = np.sqrt(inst_err**2 + np.nan_to_num(cat_err, nan=0.0) ** 2)
    # A colour term, fitted or fixed, needs the star's colour.
    has_color = np.isfinite(color) if color_term not in (None, 0) else np.ones(n_all, bool)
    used = np.isfinite(d) & np.isfinite(s) & (s > 0) & has_color
    A, names = _design(n_all, np.nan_to_num(color), color_term, uv, spatial_order)
    result = {
        "zp": np.nan,
        "zp_err": np.nan,
        "color_term": fixed if color_term != "fit" else np.nan,
        "color_term_err": 0.0 if color_term != "fit" else np.nan,
        "color_term_mode": "fit" if color_term == "fit" else ("fixed" if color_term else "none"),
        "spatial": {},
        "spatial_order": int(spatial_order),
        "names": names,
        "cov": None,
        "n_used": 0,
        "n_input": int(np.isfinite(d).sum()),
        "rms": np.nan,
        "chi2_red": np.nan,
        "color_min": np.nan,
        "color_max": np.nan,
        "color_median": np.nan,
        "status": "few_stars",
        "used": used,
    }
    need = max(min_stars, len(names) + 1)
    if used.sum() < need:
        result["used"] = np.zeros(n_all, bool)
        return result

    def solve(sel):
        w = 1.0 / s[sel] ** 2
        aw = A[sel] * w[:, None]
        cov = np.linalg.pinv(A[sel].T @ aw)
        return cov @ (aw.T @ d[sel]), cov

    for _ in range(max_iter):
        p, _ = solve(used)
        chi = (d - A @ p) / s
        spread = max(1.0, 1.4826 * np.median(np.abs(chi[used] - np.median(chi[used]))))
        new = np.isfinite(chi) & (np.abs(chi) < clip_sigma * spread) & has_color
        if new.sum() < need or (new == used).all():
            break
        used = new
    p, cov = solve(used)
    n = int(used.sum())
    resid = d[used] - A[used] @ p
    chi2_red = float(np.sum(resid**2 / s[used] ** 2) / max(n - len(p), 1))
    cov = cov * max(chi2_red, 1.0)
    err = np.sqrt(np.diag(cov))
    c_used = color[used][np.isfinite(color[used])]
    result.update(
        zp=float(p[0]),
        zp_err=float(err[0]),
        spatial={k: float(v) for k, v in zip(names, p, strict=True) if k.startswith("u")},
        cov=cov.tolist(),
        n_used=n,
        rms=float(np.std(resid)),
        chi2_red=chi2_red,
        color_min=float(c_used.min()) if len(c_used) else np.nan,
        color_max=float(c_used.max()) if len(c_used) else np.nan,
        color_median=float(np.median(c_used)) if len(c_used) else np.nan,
        status="ok",
        used=used,
    )
    if color_term == "fit":
        result.update(color_term=float(p[1]), color_term_err=float(err[1]))
    result["params"] = p.tolist()
    return result


def apply_zeropoint(fit: dict, inst_mag, inst_err, color=None, uv=None, color_spread=0.0):
    """Calibrated magnitudes and errors from a :func:`fit_zeropoint` result.

    The error adds the instrumental error and the fit's full parameter covariance at each
    star's colour and position. A star without a colour gets the calibration stars'
    median colour, and ``color_term * color_spread`` more error.

    Examples
    --------
    >>> import numpy as np
    >>> fit = fit_zeropoint(np.zeros(9), np.full(9, 0.01), np.full(9, 25.0), np.zeros(9))
    >>> mag, err = apply_zeropoint(fit, [-10.0], [0.01])
    >>> float(mag[0]), round(float(err[0]), 4)
    (15.0, 0.0105)
    >>> # a catalog without colours: honest errors, not NaN
    >>> apply_zeropoint(fit, [-10.0], [0.01], [np.nan], color_spread=np.nan)[1].round(4).tolist()
    [0.0105]
    """
    inst_mag, inst_err = np.asarray(inst_mag, float), np.asarray(inst_err, float)
    n = len(inst_mag)
    if fit["status"] != "ok":
        return np.full(n, np.nan), np.full(n, np.nan)
    c = np.full(n, np.nan) if color is None else np.asarray(color, float)
    missing = ~np.isfinite(c)
    c = np.where(missing, np.nan_to_num(fit["color_median"]), c)
    mode = "fit" if fit["color_term_mode"] == "fit" else None
    uv = uv if uv is not None else (np.zeros(n), np.zeros(n))
    A, _ = _design(n, c, mode, uv, fit["spatial_order"])
    p, cov = np.asarray(fit["params"]), np.asarray(fit["cov"])
    fixed = fit["color_term"] if fit["color_term_mode"] == "fixed" else 0.0
    mag = inst_mag + A @ p + fixed * c
    var = inst_err**2 + np.einsum("ij,jk,ik->i", A, cov, A)
    spread = np.nan_to_num(fit["color_term"]) * np.nan_to_num(color_spread)
    var += np.where(missing, spread**2, 0.0)
    return mag, np.sqrt(var)


def fit_extinction(airmass, zp, zp_err) -> dict:
    """Extinction coefficient k (mag/airmass) and the zeropoint above the atmosphere from
    a night's frame zeropoints: ``zp = zp0 - k * airmass`` by weighted least squares.

    Examples
    --------
    >>> x = np.linspace(1.0, 2.0, 10)
    >>> f = fit_extinction(x, 25.0 - 0.2 * x, np.full(10, 0.01))
    >>> round(f["k"], 3), round(f["zp0"], 3)
    (0.2, 25.0)
    """
    x, y, e = (np.asarray(v, float) for v in (airmass, zp, zp_err))
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(e) & (e > 0)
    if ok.sum() < 3 or np.ptp(x[ok]) < 0.05:
        return {"k": np.nan, "k_err": np.nan, "zp0": np.nan, "zp0_err": np.nan, "n": int(ok.sum())}
    A = np.column_stack([np.ones(ok.sum()), -x[ok]])
    w = 1.0 / e[ok] ** 2
    cov = np.linalg.inv(A.T @ (A * w[:, None]))
    p = cov @ (A.T @ (w * y[ok]))
    chi2 = float(np.sum(w * (y[ok] - A @ p) ** 2) / max(ok.sum() - 2, 1))
    err = np.sqrt(np.diag(cov) * max(chi2, 1.0))
    return {
        "k": float(p[1]),
        "k_err": float(err[1]),
        "zp0": float(p[0]),
        "zp0_err": float(err[0]),
        "n": int(ok.sum()),
    }


def catalog_magnitudes(
    t: pd.DataFrame, cfg: dict, shape=(0, 0), exptime: float = 1.0, clean_stars: int = 30
) -> tuple[pd.DataFrame, dict]:
    """Zeropoint fit on clean stars (unflagged, the least ``contamination`` by neighbours
    first, at least ``clean_stars`` of them when there are), then calibrated magnitudes for
    every row and, where a row has a ``flux_lim`` (forced targets), the limiting magnitude
    ``mag_lim``."""
    cat_err = t["mag_cat_err"].to_numpy(float)
    sel = (
        (t["flags"].to_numpy() == 0)
        & (t["snr"].to_numpy() >= cfg["min_snr"])
        & np.isfinite(t["mag_cat"].to_numpy(float))
        & ~(cat_err > cfg["max_catalog_err"])
    )
    # The cleanest stars first: beside a neighbour fitted with it (psf modes) a star is
    # measured, not flagged, but keeps a little of the light the fit shares (its
    # neighbours' 1-30 % moved a crowded night's zeropoint by 6-13 mmag); relaxed until
    # there are ``clean_stars``.
    cont = t["contamination"].to_numpy(float) if "contamination" in t else np.zeros(len(t))
    for limit in (0.01, 0.1, 0.3, np.inf):
        if np.sum(sel & ~(cont > limit)) >= clean_stars:
            break
    sel &= ~(cont > limit)
    ny, nx = shape
    uv = (
        2 * t["x"].to_numpy(float) / max(nx - 1, 1) - 1,
        2 * t["y"].to_numpy(float) / max(ny - 1, 1) - 1,
    )
    fit = fit_zeropoint(
        t["mag_inst"][sel],
        t["mag_inst_err"][sel],
        t["mag_cat"][sel],
        cat_err[sel],
        color=t["color"][sel],
        color_term=cfg["color_term"],
        uv=(uv[0][sel], uv[1][sel]),
        spatial_order=cfg["spatial_order"] if nx and ny else 0,
        clip_sigma=cfg["clip_sigma"],
        min_stars=cfg["min_stars"],
    )
    used = np.zeros(len(t), bool)
    used[np.flatnonzero(sel)] = fit.pop("used")
    color = t["color"].to_numpy(float)
    spread = float(np.nanstd(color[used])) if used.any() else 0.0
    out = t.copy()
    out["mag"], out["mag_err"] = apply_zeropoint(
        fit, t["mag_inst"], t["mag_inst_err"], color, uv, spread
    )
    lim = t["flux_lim"].to_numpy(float) if "flux_lim" in t else np.full(len(t), np.nan)
    lim_inst, _ = instrumental_mag(lim, np.zeros(len(t)), exptime)
    out["mag_lim"] = apply_zeropoint(fit, lim_inst, np.zeros(len(t)), color, uv, spread)[0]
    out["zp"], out["zp_err"], out["used_in_zp"] = fit["zp"], fit["zp_err"], used
    if fit["status"] != "ok":
        out["flags"] = (out["flags"] | int(Flag.NO_ZEROPOINT)).astype(np.int32)
        fit["reason"] = failure_reason(t, cfg, fit["n_used"])
    return out, fit


def failure_reason(t: pd.DataFrame, cfg: dict, n_used: int) -> str:
    """Why a frame has too few calibration stars, by the cause a user can act on: no
    catalog, catalog stars saturated, cleaned or masked, or too faint.

    Examples
    --------
    >>> t = pd.DataFrame({"mag_cat": [9.0, 9.5, np.nan], "snr": [900.0, 800, 50],
    ...                   "flags": [int(Flag.SATURATED)] * 2 + [0]})
    >>> failure_reason(t, {"min_stars": 5, "min_snr": 20.0}, 0)
    '0 calibration stars (< 5): the 2 catalog stars measured are saturated (2)'
    """
    need = cfg["min_stars"]
    head = f"{n_used} calibration stars (< {need})"
    cat = np.isfinite(t["mag_cat"].to_numpy(float))
    if not cat.any():
        return f"{head}: no catalog star in the frame (no reference catalog for the field)"
    flags = t["flags"].to_numpy()[cat]
    causes = [
        (name, int(any_set(flags, bit).sum()))
        for name, bit in (
            ("saturated", Flag.SATURATED | Flag.NONLINEAR),
            ("hit by cosmic rays", Flag.COSMIC_RAY),
            ("on bad pixels or masked", Flag.BAD_PIXEL | Flag.MASKED),
            ("blended", Flag.BLENDED),
            ("at the edge", Flag.EDGE),
        )
    ]
    faint = int(((t["snr"].to_numpy(float)[cat] < cfg["min_snr"]) & (flags == 0)).sum())
    causes.append((f"below S/N {cfg['min_snr']:g}", faint))
    listed = ", ".join(f"{name} ({n})" for name, n in causes if n)
    return (
        f"{head}: the {int(cat.sum())} catalog stars measured are {listed or 'rejected by the fit'}"
    )


def night_extinction(frame_table: pd.DataFrame) -> list[dict]:
    """Per night and filter, the extinction coefficient and the zeropoint above the
    atmosphere fitted to the calibrated frames' zeropoints against airmass
    (:func:`fit_extinction`; NaN where the airmass barely changes)."""
    need = {"status", "night", "filter", "airmass", "zp", "zp_err"}
    if not need <= set(frame_table.columns):
        return []
    ok = frame_table[frame_table["status"] == "ok"]
    return [
        {
            "night": str(n),
            "filter": str(f),
            **fit_extinction(g["airmass"], g["zp"], g["zp_err"]),
        }
        for (n, f), g in ok.groupby(["night", "filter"])
    ]
