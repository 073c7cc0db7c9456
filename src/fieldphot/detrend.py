"""Detrending of light curves: external-parameter decorrelation and the trend filtering
algorithm, with known signals protected.

Both work on residual light curves (magnitude minus the star's mean, one row per star) and
return the trend to subtract. EPD (Bakos et al. 2010) fits each star's residuals linearly
against external parameters (airmass, FWHM, sky, position); TFA (Kovács, Bakos & Noyes
2005) fits them as a linear combination of template light curves, the residuals of quiet
stars across the field, so systematics that many stars share are removed whatever their
cause. A star's points inside a protected window (:func:`protect_mask`: a transit's
ephemeris) are left out of its fit, and the trend fitted outside is subtracted inside, so
the signal itself is not fitted away.

Examples
--------
>>> import numpy as np
>>> t = np.linspace(0, 0.2, 100)
>>> airmass = 1 + 2 * t
>>> resid = np.vstack([0.05 * (airmass - airmass.mean())] * 3)   # 3 stars, an airmass trend
>>> trend = epd(resid, np.ones_like(resid, bool), [np.broadcast_to(airmass, resid.shape)])
>>> float(np.abs(resid - trend).max()) < 1e-12
True
"""

import numpy as np


def protect_mask(t, t0: float, duration: float, period: float | None = None) -> np.ndarray:
    """True at times ``t`` inside a transit window of ``duration`` centred on ``t0`` (and on
    every ``period`` from it, when given); all in days.

    Examples
    --------
    >>> protect_mask(np.array([0.9, 1.0, 1.2, 3.0]), 1.0, 0.1, period=2.0).tolist()
    [False, True, False, True]
    """
    t = np.asarray(t, float)
    dt = t - t0
    if period:
        dt = (dt + period / 2) % period - period / 2
    return np.abs(dt) <= duration / 2


def _solve(design, resid, weight):
    """Weighted linear least squares, one fit per star: ``design`` (n_star, n_frame, n_par)
    against ``resid`` (n_star, n_frame); returns the fitted values."""
    aw = design * weight[..., None]
    ata = np.einsum("sfi,sfj->sij", aw, design)
    atb = np.einsum("sfi,sf->si", aw, resid)
    coef = np.einsum("sij,sj->si", np.linalg.pinv(ata), atb)
    return np.einsum("sfi,si->sf", design, coef)


def epd(resid, usable, regressors, chunk: int = 256) -> np.ndarray:
    """External-parameter decorrelation: each star's trend, linear in ``regressors``.

    Parameters
    ----------
    resid : (n_star, n_frame) array
        Residual magnitudes (NaN where missing).
    usable : (n_star, n_frame) bool
        Points the fit may use (measured, unflagged, outside protected windows).
    regressors : list of (n_star, n_frame) arrays
        External parameters per point (per-frame ones broadcast over stars).
    chunk : int
        Stars per batch (bounds the memory).

    Returns
    -------
    (n_star, n_frame) array
        The fitted trend, a constant plus the regressors, at every point (NaN where a
        regressor is missing or a star has fewer usable points than parameters).
    """
    resid = np.asarray(resid, float)
    trend = np.full(resid.shape, np.nan)
    for s in range(0, resid.shape[0], chunk):
        rows = slice(s, s + chunk)
        cols = [np.ones_like(resid[rows])]
        for r in regressors:
            x = np.asarray(r[rows], float)
            med = np.nanmedian(x, axis=1, keepdims=True) if np.isfinite(x).any() else 0.0
            scale = np.nanstd(x, axis=1, keepdims=True) if np.isfinite(x).any() else 1.0
            cols.append((x - med) / np.where(scale > 0, scale, 1.0))
        a = np.stack(cols, axis=-1)
        ok = usable[rows] & np.isfinite(resid[rows]) & np.isfinite(a).all(axis=-1)
        w = ok.astype(float)
        enough = ok.sum(axis=1) > a.shape[-1]
        t = _solve(np.nan_to_num(a), np.nan_to_num(resid[rows]), w)
        t[~enough] = np.nan
        t[~np.isfinite(a).all(axis=-1)] = np.nan
        trend[rows] = t
    return trend


def tfa_templates(resid, usable, candidates, n_templates: int) -> np.ndarray:
    """Indices of the template stars: among ``candidates`` measured on every frame, the
    ``n_templates`` with the lowest point-to-point scatter (the least white noise, whatever
    systematics they carry: those are what templates are for), at most a quarter of the
    frames (more templates than that would fit the noise).

    Examples
    --------
    >>> r = np.array([[0.02, -0.02, 0.02, -0.02], [0.0, 0.01, 0.02, 0.03], [0.0, 0.0, 0.0, 0.0]])
    >>> tfa_templates(r, np.ones((3, 4), bool), np.array([True, True, False]), 5).tolist()
    [1]
    """
    full = candidates & usable.all(axis=1) & np.isfinite(resid).all(axis=1)
    idx = np.flatnonzero(full)
    p2p = np.median(np.abs(np.diff(resid[idx], axis=1)), axis=1)
    n = min(n_templates, resid.shape[1] // 4, len(idx))
    return idx[np.argsort(p2p, kind="stable")[:n]]


def tfa(resid, usable, templates, exact=None) -> np.ndarray:
    """Trend filtering: each star's residuals fitted by the template stars' light curves.

    Stars measured on every usable frame share one projection (one matrix product for the
    whole field); a star marked in ``exact`` (protected, gappy, or a template itself, which
    is left out of its own fit) gets its own weighted fit on its usable points.

    Parameters
    ----------
    resid, usable : (n_star, n_frame) arrays
        Residual magnitudes and the points the fit may use.
    templates : array of int
        Rows of ``resid`` used as templates (from :func:`tfa_templates`).
    exact : (n_star,) bool, optional
        Stars to fit one by one (default: those with any unusable point, and the templates).

    Returns
    -------
    (n_star, n_frame) array
        The trend at every point (NaN for stars with fewer usable points than templates).
    """
    resid = np.asarray(resid, float)
    n_star, n_frame = resid.shape
    trend = np.full(resid.shape, np.nan)
    if len(templates) == 0:
        return np.zeros_like(resid)
    # The templates, and a constant: a star's mean outside its windows is not its mean.
    tm = np.column_stack([np.ones(n_frame), resid[templates].T])
    if exact is None:
        exact = np.zeros(n_star, bool)
    exact = exact | ~usable.all(axis=1)
    exact[templates] = True
    shared = ~exact
    if shared.any():
        coef = np.linalg.lstsq(tm, resid[shared].T, rcond=None)[0]
        trend[shared] = (tm @ coef).T
    for s in np.flatnonzero(exact):
        cols = np.concatenate([[True], np.asarray(templates) != s])
        ok = usable[s] & np.isfinite(resid[s])
        if ok.sum() <= cols.sum():
            continue
        coef = np.linalg.lstsq(tm[ok][:, cols], resid[s, ok], rcond=None)[0]
        trend[s] = tm[:, cols] @ coef
    return trend
