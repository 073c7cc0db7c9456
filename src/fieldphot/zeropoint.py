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


def instrumental_mag(flux, flux_err, exptime: float) -> tuple[np.ndarray, np.ndarray]:
    """``-2.5 log10(flux / exptime)`` and its error; NaN where the flux is not positive."""
    flux = np.asarray(flux, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        good = flux > 0
        mag = np.where(good, -2.5 * np.log10(np.where(good, flux, 1.0) / exptime), np.nan)
        err = np.where(good, 2.5 / np.log(10) * np.asarray(flux_err, float) / flux, np.nan)
    return mag, err


def fit_zeropoint(
    inst_mag,
    inst_err,
    cat_mag,
    cat_err,
    clip_sigma: float = 3.0,
    min_stars: int = 5,
    max_iter: int = 10,
) -> dict:
    """Weighted mean of ``cat_mag - inst_mag`` with iterative sigma clipping.

    Weights are ``1 / (inst_err^2 + cat_err^2)``. Clipping uses the normalized residuals
    scaled by their robust spread, so a frame whose errors are underestimated still
    loses only real outliers. The error is the weighted-mean error, inflated by
    ``sqrt(reduced chi^2)`` when the scatter exceeds the errors.

    Returns
    -------
    dict
        ``zp, zp_err, n_used, n_input, rms, chi2_red, status`` (``ok`` or
        ``few_stars``) and ``used`` (boolean array over the inputs).
    """
    inst_mag, inst_err, cat_mag, cat_err = (
        np.asarray(v, float) for v in (inst_mag, inst_err, cat_mag, cat_err)
    )
    d = cat_mag - inst_mag
    s = np.sqrt(inst_err**2 + np.nan_to_num(cat_err, nan=0.0) ** 2)
    used = np.isfinite(d) & np.isfinite(s) & (s > 0)
    result = {
        "zp": np.nan,
        "zp_err": np.nan,
        "n_used": 0,
        "n_input": int(np.isfinite(d).sum()),
        "rms": np.nan,
        "chi2_red": np.nan,
        "status": "few_stars",
        "used": used,
    }
    if used.sum() < min_stars:
        result["used"] = np.zeros(len(d), bool)
        return result
    for _ in range(max_iter):
        w = 1.0 / s[used] ** 2
        zp = np.sum(w * d[used]) / np.sum(w)
        chi = (d - zp) / s
        spread = max(1.0, 1.4826 * np.median(np.abs(chi[used] - np.median(chi[used]))))
        new = np.isfinite(chi) & (np.abs(chi) < clip_sigma * spread)
        if new.sum() < min_stars or (new == used).all():
            break
        used = new
    w = 1.0 / s[used] ** 2
    zp = np.sum(w * d[used]) / np.sum(w)
    n = int(used.sum())
    chi2_red = float(np.sum(w * (d[used] - zp) ** 2) / max(n - 1, 1))
    err = np.sqrt(1.0 / np.sum(w)) * np.sqrt(max(chi2_red, 1.0))
    result.update(
        zp=float(zp),
        zp_err=float(err),
        n_used=n,
        rms=float(np.std(d[used])),
        chi2_red=chi2_red,
        status="ok" if n >= min_stars else "few_stars",
        used=used,
    )
    return result
