"""Ensemble differential photometry: every frame's magnitudes fitted to a master reference.

The per-frame zeropoint ties a frame to the reference catalog, to the catalog's precision.
Light curves need more: the frame-to-frame changes (transparency, airmass, focus, flat-field
residuals) measured on the field's own stars, to a part in a thousand. :func:`fit` does the
magnitude fitting of HATpipe and AutoWISP: a master reference magnitude per star, and per
frame a smooth correction, a low-order polynomial in the star's reference magnitude, colour
and position, fitted to the comparison stars; both iterated. Comparison stars are the
unflagged, never-saturated stars measured on most frames, with variable stars (their scatter
well above the ensemble's) left out as the iteration finds them.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> ref = np.linspace(12, 16, 40)[:, None]                 # 40 stars
>>> frame = np.array([0.0, 0.10, -0.05, 0.30])[None, :]    # transparency of 4 frames
>>> err = np.full((40, 4), 0.002)
>>> mag = ref + frame + rng.normal(0, 0.002, (40, 4))
>>> r = fit(mag, err, np.isfinite(mag), np.zeros(40), np.zeros((40, 4)), np.zeros((40, 4)))
>>> bool(np.std(r["mag"] - ref, axis=1).max() < 0.005)   # frame offsets gone
True
"""

import warnings

import numpy as np


def nanmedian(a, axis=None):
    """``np.nanmedian`` that returns NaN for all-NaN slices without a warning (a star
    off every frame, a frame with no stars are data here, not surprises).

    Examples
    --------
    >>> nanmedian(np.array([[1.0, np.nan], [np.nan, np.nan]]), axis=1).tolist()
    [1.0, nan]
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(a, axis=axis)


def design(dmag, color, u, v, order: int) -> np.ndarray:
    """Columns of one frame's correction: 1; with ``order`` >= 1 also the star's
    reference magnitude (about the ensemble's median), colour and position ``u``, ``v``
    (-1..1 across the frame); with ``order`` 2 also their squares and ``u*v``.

    Examples
    --------
    >>> design(np.array([0.5]), np.array([0.2]), np.array([0.1]), np.array([-1.0]), 1).tolist()
    [[1.0, 0.5, 0.2, 0.1, -1.0]]
    """
    cols = [np.ones_like(dmag)]
    if order >= 1:
        cols += [dmag, color, u, v]
    if order >= 2:
        cols += [dmag**2, u * u, u * v, v * v]
    return np.column_stack(cols)


def excess_noise(resid, err, n_terms: int = 1, iters: int = 30) -> float:
    """The noise (mag) the comparison stars of a frame show beyond their errors: ``s``
    with ``sum(resid^2 / (err^2 + s^2)) = n - n_terms`` (0 when they show none). Added
    in quadrature to every star's error on that frame, it is the frame's share of noise
    that no photon count predicts (seeing changing the light in the apertures, guiding,
    thin cloud), which otherwise leaves bright stars scattering several times their
    errors on some frames.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> e = np.full(400, 0.002)
    >>> round(excess_noise(rng.normal(0, np.hypot(0.002, 0.005), 400), e), 3)
    0.005
    >>> excess_noise(rng.normal(0, 0.002, 400), e) < 0.001
    True
    """
    r2, e2 = np.asarray(resid, float) ** 2, np.asarray(err, float) ** 2
    dof = len(r2) - n_terms
    if dof < 1 or np.sum(r2 / e2) <= dof:
        return 0.0
    lo, hi = 0.0, float(np.max(r2))  # chi-square falls as s grows: bisect on s^2
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.sum(r2 / (e2 + mid)) > dof else (lo, mid)
    return float(np.sqrt(0.5 * (lo + hi)))


def fit(
    mag,
    err,
    usable,
    color,
    u,
    v,
    *,
    order: int = 1,
    candidates=None,
    n_iter: int = 4,
    clip: float = 4.0,
    variable_factor: float = 3.0,
    min_coverage: float = 0.8,
    min_stars: int = 5,
):
    """Fit every frame to the master reference and return the corrected magnitudes.

    Parameters
    ----------
    mag, err : (n_star, n_frame) arrays
        Instrumental magnitudes and their errors (NaN where there is no measurement).
    usable : (n_star, n_frame) bool
        Points fit to use: measured, unflagged.
    color : (n_star,) array
        Catalog colour (NaN treated as the median).
    u, v : (n_star, n_frame) arrays
        Position on the frame, scaled to -1..1.
    order : int
        0: one offset per frame; 1: linear in magnitude, colour and position; 2: quadratic.
    candidates : (n_star,) bool, optional
        Stars allowed as comparison stars (default all); targets, ever-saturated and
        faint stars are left out by the caller.
    n_iter, clip, variable_factor, min_coverage, min_stars
        Iterations; per-point clipping (sigma); a comparison star whose reduced chi-square
        exceeds ``variable_factor`` times the ensemble's median is dropped as variable;
        fraction of the frames with any usable point (a failed frame has none and counts
        against no star) a comparison star must be usable on; fewest comparison stars
        for a frame's fit (below, the frame gets NaN and ``n_used`` tells).

    Returns
    -------
    dict
        ``mag`` corrected magnitudes (instrumental scale), ``err`` their errors (the
        point's own, the frame's excess noise ``jitter`` (:func:`excess_noise`, per
        frame) and the correction's, in quadrature), ``ref`` master reference per
        star, ``comparison`` (n_star,) bool, ``n_used`` and ``rms`` per frame (the
        comparison stars' weighted rms about the fit, mag), ``coeffs`` (n_frame, n_terms).
    """
    mag = np.asarray(mag, float)
    err = np.asarray(err, float)
    n_star, n_frame = mag.shape
    usable = np.asarray(usable, bool) & np.isfinite(mag) & np.isfinite(err) & (err > 0)
    color = np.asarray(color, float)
    color = np.where(np.isfinite(color), color, np.nan_to_num(nanmedian(color)))
    cand = np.ones(n_star, bool) if candidates is None else np.asarray(candidates, bool)
    n_good = int(usable.any(axis=0).sum())
    comp = cand & (usable.sum(axis=1) >= max(min_coverage * n_good, 2))
    ref = nanmedian(np.where(usable, mag, np.nan), axis=1)
    w_all = np.where(usable, 1.0 / np.where(usable, err, 1.0) ** 2, 0.0)
    keep = usable.copy()  # points not clipped
    n_terms = design(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1), order).shape[1]
    coeffs = np.full((n_frame, n_terms), np.nan)
    model = np.full((n_star, n_frame), np.nan)
    model_var = np.full((n_star, n_frame), np.nan)
    n_used = np.zeros(n_frame, int)
    rms = np.full(n_frame, np.nan)
    jitter = np.zeros(n_frame)
    for _ in range(n_iter):
        mid = np.nanmedian(ref[comp]) if comp.any() else 0.0
        dref = np.where(np.isfinite(ref), ref - mid, 0.0)
        for f in range(n_frame):
            a_all = design(dref, color, np.nan_to_num(u[:, f]), np.nan_to_num(v[:, f]), order)
            sel = comp & keep[:, f] & np.isfinite(ref)
            n_used[f] = sel.sum()
            if n_used[f] < max(min_stars, n_terms + 1):
                coeffs[f], model[:, f], model_var[:, f] = np.nan, np.nan, np.nan
                continue
            w = 1.0 / (err[sel, f] ** 2 + jitter[f] ** 2)
            a = a_all[sel] * np.sqrt(w)[:, None]
            d = (mag[sel, f] - ref[sel]) * np.sqrt(w)
            c, *_ = np.linalg.lstsq(a, d, rcond=None)
            resid = d - a @ c
            jitter[f] = excess_noise(resid / np.sqrt(w), err[sel, f], n_terms)
            w = 1.0 / (err[sel, f] ** 2 + jitter[f] ** 2)
            a = a_all[sel] * np.sqrt(w)[:, None]
            d = (mag[sel, f] - ref[sel]) * np.sqrt(w)
            c, *_ = np.linalg.lstsq(a, d, rcond=None)
            resid = d - a @ c
            scale = max(float(resid @ resid / max(n_used[f] - n_terms, 1)), 1.0)
            inv = np.linalg.pinv(a.T @ a)
            coeffs[f] = c
            model[:, f] = a_all @ c
            model_var[:, f] = np.einsum("ij,jk,ik->i", a_all, inv, a_all) * scale
            rms[f] = float(np.sqrt(resid @ resid / w.sum()))
            # A comparison star's own correction leaves it out (leave-one-out, from the
            # leverage h): its light curve does not fit its own noise away.
            h = np.minimum(np.einsum("ij,jk,ik->i", a, inv, a), 0.99)
            loo = resid / np.sqrt(w) / (1 - h)
            model[sel, f] = mag[sel, f] - ref[sel] - loo
            model_var[sel, f] = h / (1 - h) / w * scale
            # Clip this frame's outliers among the comparison stars (sigma: error and fit scatter).
            total = err[:, f] ** 2 + jitter[f] ** 2 + model_var[:, f]
            pull = (mag[:, f] - ref - model[:, f]) / np.sqrt(total)
            keep[:, f] = usable[:, f] & ~(np.abs(pull) > clip * np.sqrt(scale))
        corrected = mag - model
        w_all = np.where(usable, 1.0 / np.where(usable, err**2 + jitter**2, 1.0), 0.0)
        w = np.where(keep & np.isfinite(corrected), w_all, 0.0)
        wsum = w.sum(axis=1)
        new_ref = np.where(
            wsum > 0,
            np.nansum(w * np.nan_to_num(corrected), axis=1) / np.where(wsum > 0, wsum, 1),
            np.nan,
        )
        ref = np.where(np.isfinite(new_ref), new_ref, ref)
        chi2_star = np.nansum(
            w * (np.nan_to_num(corrected) - ref[:, None]) ** 2, axis=1
        ) / np.maximum((w > 0).sum(axis=1) - 1, 1)
        if comp.sum() > min_stars:
            comp &= ~(chi2_star > variable_factor * np.median(chi2_star[comp]))
    return {
        "mag": mag - model,
        "err": np.sqrt(err**2 + jitter**2 + model_var),
        "jitter": jitter,
        "ref": ref,
        "comparison": comp,
        "n_used": n_used,
        "rms": rms,
        "coeffs": coeffs,
    }


def best_order(fits, err, usable, margin: float = 0.005) -> int:
    """Which of several ensemble fits (:func:`fit` of orders 0, 1, ... on the same
    points) leaves the comparison stars the least scatter: the lowest mean of their
    squared pulls (offset from their mean over their own error, clipped at 5), over the
    stars that are comparison stars in every fit. A comparison star's correction leaves
    it out, so a higher order that fits noise scatters them more, not less. A higher
    order must fit as many frames and beat the best lower one by ``margin`` (relative).

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> n_star, n_frame = 60, 30
    >>> m0 = np.linspace(10, 15, n_star)[:, None]
    >>> err = np.full((n_star, n_frame), 0.003)
    >>> tilt = rng.normal(0, 0.01, n_frame)  # a magnitude-dependent offset per frame
    >>> mag = m0 + (m0 - 12.5) * tilt + rng.normal(0, 0.003, (n_star, n_frame))
    >>> ok = np.ones((n_star, n_frame), bool)
    >>> zero = np.zeros((n_star, n_frame))
    >>> fits = [fit(mag, err, ok, np.zeros(n_star), zero, zero, order=k) for k in (0, 1)]
    >>> best_order(fits, err, ok)
    1
    >>> flat = m0 + rng.normal(0, 0.003, (n_star, n_frame))
    >>> fits = [fit(flat, err, ok, np.zeros(n_star), zero, zero, order=k) for k in (0, 1)]
    >>> best_order(fits, err, ok)
    0
    """
    comp = np.logical_and.reduce([f["comparison"] for f in fits])
    pulls = [(f["mag"] - f["ref"][:, None]) / err for f in fits]
    points = usable & comp[:, None] & np.logical_and.reduce([np.isfinite(p) for p in pulls])
    if not points.any():
        return 0
    score = [float(np.mean(np.minimum(p[points] ** 2, 25.0))) for p in pulls]
    n_fitted = [int(np.isfinite(f["rms"]).sum()) for f in fits]
    best = 0
    for k in range(1, len(fits)):
        if n_fitted[k] >= n_fitted[0] and score[k] < score[best] * (1 - margin):
            best = k
    return best
