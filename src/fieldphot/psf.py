"""PSF photometry of one frame (``photometry.mode: psf``): an empirical PSF built from the
frame's isolated bright stars (photutils ``EPSFBuilder``), fitted at the star list's
fixed positions with overlapping stars fitted together (photutils ``PSFPhotometry`` with
a ``SourceGrouper``): a star's flux measured beside a brighter neighbour instead of
carrying part of the neighbour's light.

Examples
--------
>>> import numpy as np
>>> from scipy.spatial import cKDTree
>>> from fieldphot.synthetic import render_stars
>>> rng = np.random.default_rng(0)
>>> x, y = rng.uniform(20, 236, 40), rng.uniform(20, 236, 40)
>>> flux = 10 ** rng.uniform(4.5, 5.5, 40)
>>> img = render_stars((256, 256), x, y, flux, 3.0, 100.0, rng) - 100.0
>>> isolated = cKDTree(np.c_[x, y]).query(np.c_[x, y], 2)[0][:, 1] > 12
>>> model, info = build(img, x[isolated], y[isolated], fwhm=3.0, size=15)
>>> f = fit(img, np.sqrt(np.abs(img) + 125), np.zeros(img.shape, bool), model, x, y, flux, 3.0)
>>> ratio = f["flux"] / flux  # the model's unit is its stamp's flux: one scale for all stars
>>> info["n_stars"], bool(np.std(ratio / np.median(ratio)) < 0.01)
(30, True)
"""

import numpy as np
import pandas as pd


def build(
    sub,
    x,
    y,
    fwhm: float,
    size: int,
    err=None,
    mask=None,
    oversampling: int | None = None,
    maxiters: int = 10,
    min_stars: int = 30,
    grid: int = 5,
):
    """The frame's empirical PSF from the stars at (``x``, ``y``) (bright, unsaturated and
    isolated: the caller's choice) on the background-subtracted image ``sub`` (per-pixel
    errors ``err`` and pixels to leave out, ``mask``: bad ones and other stars' light,
    optional), in stamps of ``size`` px (odd), normalised to unit flux within the stamp,
    varying over the field.

    The frame's ePSF (photutils ``EPSFBuilder``) is the mean. Where the stars' widths vary
    (:func:`_width_order`: a polynomial in x, y of the order they ask for, none with fewer
    than ``min_stars``), the mean is stretched as they say at each place, and each ePSF
    pixel's departure from that is fitted, over every star's residual that falls on it, by
    a polynomial of the same order in the star's x and y (DAOPHOT's variable PSF), weighted
    by each residual's error, clipped at 3 sigma (neighbours), and evaluated on a ``grid``
    x ``grid`` grid reaching the frame's corners, interpolated between its nodes (photutils
    ``GriddedPSFModel``).

    ``oversampling`` (ePSF pixels per detector pixel) is 1 where the stars are sampled
    well enough to interpolate (:func:`_oversampling`), 2 where they are not; each of the
    ePSF's ``oversampling**2`` interleaved grids then sums to 1 (Anderson & King 2000):
    a star's PSF flux must not depend on where its centre falls in a pixel.

    Returns
    -------
    model : photutils.psf.ImagePSF or GriddedPSFModel or None
        None with fewer than 5 usable stars, or when photutils cannot build the ePSF
        (``info["reason"]`` says why).
    info : dict
        ``n_stars`` used, ``order`` (of the polynomial: 0 for one ePSF), ``residual_rms``
        (the stars' weighted rms residual from the model, relative to its peak pixel),
        ``profile_err`` (the scatter, beyond their noise, of the stars' light within
        their fit boxes over the model's there: PSF fluxes against apertures, as
        :func:`profile_error` measures them), ``pixel_err`` (the residuals' scatter
        beyond their noise relative to the model where it holds the light, DAOPHOT's:
        the error of a neighbour's modelled light)
        and ``fwhm_range`` (the smallest and largest FWHM in px over the grid: how much the
        PSF varies).
    """
    from astropy.nddata import NDData, StdDevUncertainty
    from astropy.table import Table
    from photutils.psf import EPSFBuilder, GriddedPSFModel, ImagePSF, extract_stars

    size = int(size) | 1
    x, y = np.asarray(x, float), np.asarray(y, float)
    empty = {"n_stars": int(len(x)), "order": 0, "residual_rms": np.nan, "fwhm_range": []}
    if len(x) < 5:
        return None, empty
    data = NDData(
        np.asarray(sub, float),
        uncertainty=None if err is None else StdDevUncertainty(err),
        mask=mask,
    )
    stars = extract_stars(data, Table({"x": x, "y": y}), size=size)
    if len(stars) < 5:
        return None, {**empty, "n_stars": len(stars)}
    box = 2 * int(np.ceil(fwhm)) + 1
    oversampling = oversampling or _oversampling(fwhm)
    builder = EPSFBuilder(
        oversampling=oversampling,
        maxiters=maxiters,
        fit_shape=box,
        recentering_boxsize=box,
        progress_bar=False,
    )
    try:
        mean, fitted = builder.build_epsf(stars)
    except ValueError as exc:  # e.g. an ePSF pixel that every star has masked
        return None, {**empty, "n_stars": len(stars), "reason": f"ePSF not built: {exc}"}
    mean = ImagePSF(_normalised(mean.data, oversampling), oversampling=oversampling)
    good = [s for s in fitted.all_good_stars if s.flux > 0]
    # Every star's residual pixels: the oversampled ePSF pixel each falls on, its value
    # (data over flux less the mean ePSF), weight and the star's place.
    shape = np.array(mean.data.shape)
    q, d, w, at, dx, dy = [], [], [], [], [], []
    for s in good:
        yy, xx = np.mgrid[: s.shape[0], : s.shape[1]]
        qx = np.rint((xx - s.cutout_center[0]) * oversampling + (shape[1] - 1) / 2).astype(int)
        qy = np.rint((yy - s.cutout_center[1]) * oversampling + (shape[0] - 1) / 2).astype(int)
        on = (qx >= 0) & (qx < shape[1]) & (qy >= 0) & (qy < shape[0]) & (s.weights > 0)
        q.append((qy * shape[1] + qx)[on])
        d.append(s.data[on] / s.flux)
        w.append((s.weights * s.flux)[on] ** 2)
        at.append(np.broadcast_to(s.center, (int(on.sum()), 2)))
        dx.append((xx - s.cutout_center[0])[on])
        dy.append((yy - s.cutout_center[1])[on])
    n = len(good)
    if n < 5 or not _covers_fit_box(q, shape, fwhm * oversampling):
        why = f"{n} stars fitted (5 needed)" if n < 5 else "its core is masked on every star"
        return None, {**empty, "n_stars": n, "reason": f"ePSF not built: {why}"}
    star = np.repeat(np.arange(n), [len(k) for k in q])
    q, d, w, at, dx, dy = (np.concatenate(k) for k in (q, d, w, at, dx, dy))
    rad = np.hypot(dx, dy)
    ny, nx = np.shape(sub)
    highest = 2 if n >= min_stars else 0
    order, stretch_at = _width_order(good, mean, nx, ny, highest)
    # The base the polynomial departs from: the mean ePSF stretched as the stars' widths
    # say at each place. A pixel's value is not linear in the width, so a quadratic in
    # x, y of each pixel alone follows a PSF that broadens towards the corners less well.
    ev = _stretched(mean, dx, dy, stretch_at(at[:, 0], at[:, 1]))
    r = d - ev
    t = _terms(at[:, 0], at[:, 1], nx, ny)[:, : 6 if order == 2 else 3]
    coef = np.zeros((shape.prod(), t.shape[1]))
    if order:
        keep = np.ones(len(r), bool)
        for _ in range(2):  # fit, clip at 3 sigma, fit again
            coef = _weighted_fits(q[keep], t[keep], r[keep], w[keep], shape.prod())
            dev = (r - np.einsum("ij,ij->i", t, coef[q])) * np.sqrt(w)
            sigma = 1.4826 * np.median(np.abs(dev[keep]))
            keep = np.abs(dev) < 3 * sigma
    dev = r - np.einsum("ij,ij->i", t, coef[q])
    # The profile error: how far each star's light within its fit box (1.5 FWHM) departs
    # from the model's there (its PSF flux, fitted by the builder over a smaller box,
    # against an aperture's), beyond the noise, over the stars (0.8-1.1 % on crowded
    # colour planes whose PSF fluxes scatter ~0.5 % beyond their noise; within 1 FWHM,
    # about the builder's own box, it sees nothing: 0-0.4 %).
    box = rad <= fit_box(fwhm) / 2
    model_at = ev[box] + np.einsum("ij,ij->i", t[box], coef[q[box]])
    held = np.bincount(star[box], model_at, n)
    held[held <= 0] = np.nan  # a star with its whole fit box masked
    away = np.bincount(star[box], dev[box], n) / held
    noise = np.sqrt(np.bincount(star[box], 1.0 / w[box], n)) / held
    profile = _beyond_noise(away, noise)
    # The residuals' scatter beyond their noise, per pixel, as a fraction of the model
    # where it holds the light (DAOPHOT's): how well a neighbour's light is modelled.
    model_at = (ev if order else mean.data.ravel()[q]) + np.einsum("ij,ij->i", t, coef[q])
    pull = dev * np.sqrt(w)
    core = (model_at > 0.1 * mean.data.max()) & (np.abs(pull) < 7.4 * np.median(np.abs(pull)))
    excess = np.sum(w[core] * dev[core] ** 2 - 1.0) / np.sum(w[core] * model_at[core] ** 2)
    info = {
        "n_stars": n,
        "order": order,
        "residual_rms": float(np.sqrt(np.average(dev**2, weights=w)) / mean.data.max()),
        "profile_err": profile,
        "pixel_err": float(np.sqrt(max(excess, 0.0))),
    }
    if not order:
        info["fwhm_range"] = [round(_fwhm(mean.data, oversampling), 3)] * 2
        return mean, info
    gx, gy = np.meshgrid(np.linspace(0, nx - 1, grid), np.linspace(0, ny - 1, grid))
    nodes = np.c_[gx.ravel(), gy.ravel()]
    nodes_t = _terms(nodes[:, 0], nodes[:, 1], nx, ny)[:, : t.shape[1]]
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    dx, dy = (xx - (shape[1] - 1) / 2) / oversampling, (yy - (shape[0] - 1) / 2) / oversampling
    base = [_stretched(mean, dx, dy, k) for k in stretch_at(nodes[:, 0], nodes[:, 1])]
    epsfs = np.stack(base) + (nodes_t @ coef.T).reshape(-1, *shape)
    epsfs = _normalised(epsfs, oversampling)
    widths = [_fwhm(e, oversampling) for e in epsfs]
    info["fwhm_range"] = [round(min(widths), 3), round(max(widths), 3)]
    model = NDData(epsfs, meta={"grid_xypos": nodes.tolist(), "oversampling": oversampling})
    return GriddedPSFModel(model), info


def _width_order(stars, mean, nx: int, ny: int, highest: int, p_value: float = 1e-3):
    """The order (0 to ``highest``) of the polynomial in x, y the PSF's variation needs,
    from how the ``stars``' widths vary: each star's stretch of the ``mean`` ePSF (the
    best of 0.7 to 1.4, refined by a parabola), fitted by polynomials of rising order
    (3 sigma outliers left out: neighbours), each order kept when it lowers the
    chi-square more than the scatter allows (an F-test at ``p_value``). A constant PSF
    then gets one ePSF, not a polynomial fitted to its stars' neighbours and noise (on
    crowded colour planes the stars' fluxes scattered 1.5 times as much with one).
    Also the stretch at any x, y (a function; 1 everywhere at order 0).

    Examples
    --------
    >>> import numpy as np
    >>> from photutils.psf import EPSFBuilder, extract_stars
    >>> from astropy.nddata import NDData
    >>> from astropy.table import Table
    >>> from fieldphot.synthetic import render_stars
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.uniform(20, 380, 60), rng.uniform(20, 380, 60)
    >>> for widths in (3.0, 3.0 * (1 + 0.2 * x / 400)):  # constant, then broader to the right
    ...     img = render_stars((400, 400), x, y, np.full(60, 1e5), widths, 100.0, rng) - 100
    ...     stars = extract_stars(NDData(img), Table({"x": x, "y": y}), size=19)
    ...     mean, fitted = EPSFBuilder(oversampling=2, progress_bar=False).build_epsf(stars)
    ...     print(_width_order(fitted.all_good_stars, mean, 400, 400, 2)[0])
    0
    1
    """
    from scipy.stats import f as f_dist

    def constant(px, py):
        return np.ones(np.shape(px))

    if not highest:
        return 0, constant
    grid = np.linspace(0.7, 1.4, 15)
    xy, stretch, err = [], [], []
    for s in stars:
        yy, xx = np.mgrid[: s.shape[0], : s.shape[1]]
        cx, cy = s.cutout_center
        wt = s.weights**2
        chi2 = []
        for k in grid:
            p = mean.evaluate(cx + (xx - cx) / k, cy + (yy - cy) / k, 1.0, cx, cy) / k**2
            a = np.sum(wt * p * s.data) / max(np.sum(wt * p * p), 1e-30)
            chi2.append(np.sum(wt * (s.data - a * p) ** 2))
        j = int(np.clip(np.argmin(chi2), 1, len(grid) - 2))
        c0, c1, c2 = chi2[j - 1 : j + 2]
        curv = (c0 - 2 * c1 + c2) / (grid[1] - grid[0]) ** 2
        if curv <= 0:
            continue
        xy.append(s.center)
        stretch.append(grid[j] - (c2 - c0) / (2 * (grid[1] - grid[0])) / curv)
        err.append(np.sqrt(2.0 / curv))
    if len(stretch) < 10:
        return 0, constant
    xy, stretch, err = np.asarray(xy), np.asarray(stretch), np.asarray(err)
    terms = _terms(xy[:, 0], xy[:, 1], nx, ny)
    keep = np.ones(len(stretch), bool)
    for _ in range(2):  # the highest order's fit, its 3 sigma outliers left out
        m = 3 * highest
        coef = np.linalg.lstsq(terms[keep, :m] / err[keep, None], stretch[keep] / err[keep])[0]
        pull = (stretch - terms[:, :m] @ coef) / err
        keep = np.abs(pull) < 3 * 1.4826 * np.median(np.abs(pull[keep]))
    chi2, coefs = [], []
    for order in range(highest + 1):
        m = max(3 * order, 1)
        a, b = terms[keep, :m] / err[keep, None], stretch[keep] / err[keep]
        coefs.append(np.linalg.lstsq(a, b)[0])
        chi2.append(np.sum((b - a @ coefs[-1]) ** 2))
    order, n = 0, int(keep.sum())
    for higher in range(1, highest + 1):
        m0, m1 = max(3 * order, 1), 3 * higher
        stat = (chi2[order] - chi2[higher]) / (m1 - m0) / (chi2[higher] / (n - m1))
        if n > m1 and f_dist.sf(stat, m1 - m0, n - m1) < p_value:
            order = higher
    if not order:
        return 0, constant

    def stretch_at(px, py):
        return _terms(px, py, nx, ny)[..., : 3 * order] @ coefs[order]

    return order, stretch_at


def _stretched(model, dx, dy, stretch):
    """The unit-flux ``model`` (an ePSF) at offsets ``dx``, ``dy`` (px) from its centre,
    stretched by ``stretch`` (its shape broader by that factor, its light the same).

    Examples
    --------
    >>> from photutils.psf import ImagePSF
    >>> yy, xx = np.mgrid[-10:11, -10:11]
    >>> data = np.exp(-(xx**2 + yy**2) / (2 * 1.5**2))
    >>> model = ImagePSF(data / data.sum())
    >>> same, wide = (_stretched(model, xx, yy, k) for k in (1.0, 1.2))
    >>> bool(np.allclose(same, model.data)), round(float(wide.max() / same.max()), 2)
    (True, 0.69)
    """
    return model.evaluate(dx / stretch, dy / stretch, 1.0, 0.0, 0.0) / stretch**2


def _terms(px, py, nx: int, ny: int):
    """The quadratic's terms (1, u, v, u², uv, v²) at x, y, with u, v from -0.5 to 0.5 over
    the ``nx`` x ``ny`` frame (the last axis)."""
    u, v = np.asarray(px) / nx - 0.5, np.asarray(py) / ny - 0.5
    return np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=-1)


def _weighted_fits(q, t, r, w, n_pix: int):
    """Per pixel index ``q``, the weighted least-squares coefficients of ``r`` on the
    terms ``t`` (rows), all pixels at once (0 where a pixel has too few samples)."""
    m = t.shape[1]
    a = np.zeros((n_pix, m, m))
    b = np.zeros((n_pix, m))
    np.add.at(a, q, w[:, None, None] * t[:, :, None] * t[:, None, :])
    np.add.at(b, q, (w * r)[:, None] * t)
    ok = np.bincount(q, minlength=n_pix) > 2 * m
    coef = np.zeros((n_pix, m))
    coef[ok] = np.linalg.solve(a[ok] + 1e-12 * np.eye(m), b[ok][..., None])[..., 0]
    return coef


def _beyond_noise(dev, noise) -> float:
    """The scatter of ``dev`` beyond its ``noise``, robust (neighbours' light makes a
    tail); 0 when the noise explains it.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> noise = np.full(400, 0.01)
    >>> dev = 0.02 * rng.standard_normal(400) + noise * rng.standard_normal(400)
    >>> round(_beyond_noise(dev, noise), 2)
    0.02
    """
    ok = np.isfinite(dev) & np.isfinite(noise)
    if not ok.any():
        return 0.0
    spread = 1.4826 * np.median(np.abs(dev[ok] - np.median(dev[ok])))
    return float(np.sqrt(max(spread**2 - np.median(noise[ok] ** 2), 0.0)))


def _covers_fit_box(q, shape, fwhm: float) -> bool:
    """Whether some star sees each ePSF pixel (``q``: each star's flat indices into the
    ePSF of ``shape``) within a star's fit box (:func:`fit_box`; ``fwhm`` in ePSF
    pixels): else its value there is a guess that every fit would read."""
    seen = np.bincount(np.concatenate(q), minlength=int(np.prod(shape))).reshape(shape)
    yy, xx = np.indices(shape) - (np.asarray(shape)[:, None, None] - 1) / 2
    return bool(seen[np.hypot(xx, yy) <= 1.5 * fwhm].all())


def _oversampling(fwhm: float, well_sampled: float = 2.0) -> int:
    """ePSF pixels per detector pixel for stars of ``fwhm`` (px): 1 from ``well_sampled``
    up, where the ePSF's cubic-spline interpolation already puts a star at any sub-pixel
    position (a Moffat of FWHM 2 px: flux within 1 mmag rms over sub-pixel positions,
    2.5 px and up: 0.1), else 2.

    Oversampling needs each ePSF pixel's stars to cover its fraction of the pixel phases;
    on a crowded colour plane (FWHM 2.7 px, 60 stars, half their stamps masked) a 2 x
    oversampled ePSF's fluxes varied by 30 mmag rms with the phase, 8 with each grid
    normalised (:func:`_normalised`), 0.1 without oversampling. Below 2 px interpolation
    fails (FWHM 1.3 px: 21 mmag rms) and oversampling is needed.

    Examples
    --------
    >>> _oversampling(2.7), _oversampling(1.5)
    (1, 2)
    """
    return 1 if fwhm >= well_sampled else 2


def _normalised(data, oversampling: int):
    """``data`` (ePSFs on the last two axes) with each of its ``oversampling**2``
    interleaved grids scaled to sum to 1: the ePSF sampled at a star's pixels, wherever
    its centre falls, holds the star's flux (Anderson & King 2000, PASP 112, 1360).

    Examples
    --------
    >>> d = _normalised(np.array([[1.0, 3.0], [1.0, 1.0]]), 2)
    >>> d.tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """
    out = np.array(data, float)
    o = oversampling
    for dy in range(o):
        for dx in range(o):
            grid = out[..., dy::o, dx::o]
            grid /= grid.sum(axis=(-2, -1), keepdims=True)
    return out


def _fwhm(data, oversampling: int, fine: int = 4) -> float:
    """A PSF image's FWHM in detector pixels, from the area above half its peak (on the
    image interpolated to ``fine`` samples per pixel)."""
    from scipy import ndimage

    sharp = ndimage.zoom(np.asarray(data, float), fine / oversampling, order=3)
    above = np.count_nonzero(sharp >= 0.5 * np.max(sharp))
    return float(2.0 * np.sqrt(above / np.pi) / fine)


def fit(image, err, bad, model, x, y, flux0, fwhm: float, recenter_px: float = 0.0) -> pd.DataFrame:
    """PSF fluxes on the background-subtracted ``image`` at fixed positions (within
    ``recenter_px`` when it is above 0), stars closer than 2.5 FWHM fitted together, bad
    pixels (``bad``) left out.

    Returns
    -------
    DataFrame
        ``flux`` and ``flux_err`` (the fit's, scaled up by the reduced chi-square where it
        exceeds 1), ``chi2`` (reduced), ``masked`` (the fraction of the fitted pixels left
        out), ``group_size``, ``x``, ``y``.
    """
    from astropy.table import Table
    from photutils.psf import PSFPhotometry, SourceGrouper

    model = model.copy()
    model.x_0.fixed = recenter_px <= 0
    model.y_0.fixed = recenter_px <= 0
    shape = fit_box(fwhm)
    phot = PSFPhotometry(
        model,
        (shape, shape),
        grouper=SourceGrouper(min_separation=2.5 * fwhm),
        xy_bounds=recenter_px if recenter_px > 0 else None,
        group_warning_threshold=10**6,
    )
    _forget_group_models()
    init = Table({"x": np.asarray(x, float), "y": np.asarray(y, float),
                  "flux": np.clip(np.nan_to_num(flux0), 1.0, None)})  # fmt: skip
    res = phot(np.asarray(image, float), error=np.asarray(err, float), mask=bad, init_params=init)
    chi2 = np.asarray(res["reduced_chi2"], float)
    n_pix = np.asarray(res["n_pixels_fit"], float)
    # photutils 3.0 reports 0 for a fixed position in a group: the input is kept
    x = np.asarray(res["x_fit"] if recenter_px > 0 else x, float)
    y = np.asarray(res["y_fit"] if recenter_px > 0 else y, float)
    flux_err = np.asarray(res["flux_err"], float) * np.sqrt(np.fmax(np.nan_to_num(chi2), 1.0))
    return pd.DataFrame(
        {
            "x": x,
            "y": y,
            "flux": np.asarray(res["flux_fit"], float),
            "flux_err": flux_err,
            "chi2": chi2,
            "masked": 1.0 - n_pix / shape**2,
            "group_size": np.asarray(res["group_size"], int),
        }
    )


def fit_box(fwhm: float) -> int:
    """The side (px, odd) of the box each star is fitted over: 1.5 FWHM either side."""
    return int(np.ceil(1.5 * fwhm)) * 2 + 1


def render(shape, model, x, y, flux, fwhm: float):
    """The image of every star's modelled light (``flux`` at ``x``, ``y``, each within 3
    FWHM), and per star its region and unit-flux model there (``(slice, psi)``)."""
    half = int(np.ceil(3 * fwhm))
    ny, nx = shape
    light = np.zeros(shape)
    stamps = []
    for xi, yi, fi in zip(x, y, np.nan_to_num(flux), strict=True):
        cx, cy = int(round(xi)), int(round(yi))
        sl = np.s_[
            min(max(cy - half, 0), ny) : min(max(cy + half + 1, 0), ny),
            min(max(cx - half, 0), nx) : min(max(cx + half + 1, 0), nx),
        ]
        yy, xx = np.mgrid[sl]
        psi = model.evaluate(xx, yy, 1.0, xi, yi) if xx.size else np.zeros(xx.shape)
        stamps.append((sl, psi))
        light[sl] += fi * psi
    return light, stamps


def profile_variance(stamps, light, flux, err, bad, x, y, fwhm: float):
    """Per star, the variance its fitted flux takes from an error of the PSF's profile of
    1 (times the model, per pixel, coherent over the region), propagated through the fit's
    weights over its fit box: from its own light (``flux`` times its model) and from its
    neighbours' (the rest of ``light``); ``stamps`` and ``light`` from :func:`render`.

    Returns
    -------
    own, neighbours : ndarray
    """
    weight = _weights(err, bad)
    own, neighbours = np.full(len(x), np.nan), np.full(len(x), np.nan)
    b = fit_box(fwhm) // 2
    for i, (sl, psi) in enumerate(stamps):
        yy, xx = np.mgrid[sl]
        near = (np.abs(xx - round(x[i])) <= b) & (np.abs(yy - round(y[i])) <= b)
        p, wt, m = psi[near], weight[sl][near], light[sl][near]
        den = np.sum(p * p * wt)
        if den > 0:
            mine = np.nan_to_num(flux[i]) * p
            own[i] = np.sum(p * wt * mine) ** 2 / den**2
            neighbours[i] = np.sum(p * wt * (m - mine)) ** 2 / den**2
    return own, neighbours


def profile_error(flux, flux_err, ref, ref_err, min_stars: int = 10) -> float:
    """The PSF fluxes' error as a fraction of the flux, beyond the noise: the scatter of
    their ratio to a reference flux of the same stars (large apertures on isolated
    stars), by maximum likelihood with each ratio's own noise (both errors), outliers
    beyond 4 sigma left out; NaN with fewer than ``min_stars``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> true, e = np.full(400, 1e5), 10 ** rng.uniform(2.5, 4, 400)  # 0.3-10 % noise
    >>> psf_flux = true * (1 + 0.01 * rng.standard_normal(400)) + e * rng.standard_normal(400)
    >>> ref = true + e * rng.standard_normal(400)
    >>> round(profile_error(psf_flux, e, ref, e), 3)
    0.01
    """
    from scipy.optimize import minimize_scalar

    flux, ref = np.asarray(flux, float), np.asarray(ref, float)
    flux_err, ref_err = np.asarray(flux_err, float), np.asarray(ref_err, float)
    ok = np.isfinite(flux) & np.isfinite(ref) & (flux > 0) & (ref > 0)
    ok &= np.isfinite(flux_err) & np.isfinite(ref_err)
    if ok.sum() < min_stars:
        return np.nan
    ratio = flux[ok] / ref[ok]
    dev = ratio / np.median(ratio) - 1.0
    noise2 = (flux_err[ok] / flux[ok]) ** 2 + (ref_err[ok] / ref[ok]) ** 2
    keep = np.ones(len(dev), bool)
    sigma = 0.0
    for _ in range(3):  # fit, leave out beyond 4 sigma, fit again

        def nll(s, d=dev[keep], n2=noise2[keep]):
            return 0.5 * np.sum(np.log(s * s + n2) + d * d / (s * s + n2))

        sigma = minimize_scalar(nll, bounds=(0.0, 0.3), method="bounded").x
        keep = np.abs(dev) < 4 * np.sqrt(sigma**2 + noise2)
    return float(sigma)


def blank_noise(
    residual, err, bad, model, fwhm: float, avoid_x, avoid_y, n: int = 400, seed: int = 0
):
    """The variance (flux units squared) of PSF fluxes fitted at ``n`` blank places of the
    frame less its fitted stars (``residual``), more than one FWHM from every known source,
    beyond what their errors say: the noise undetected stars, sky structure and the
    neighbours' model errors add to every PSF flux (0 when none); also the fluxes' median
    and how many places were used. The scatter is their rms within 5 sigma: undetected
    stars add light to some places only, a tail the median deviation does not see (on a
    crowded test night, stars with unlisted neighbours over 1 % of their light had pulls
    of 1.6 with it, and the crowded stars' 1.67 fell to 1.59).

    Examples
    --------
    >>> import numpy as np
    >>> from photutils.psf import ImagePSF
    >>> rng = np.random.default_rng(0)
    >>> yy, xx = np.mgrid[-10:11, -10:11]
    >>> gauss = np.exp(-(xx**2 + yy**2) / (2 * 1.3**2))
    >>> model = ImagePSF(gauss / gauss.sum())
    >>> res = rng.normal(0.0, 10.0, (300, 300))  # twice the noise the errors say
    >>> err, bad = np.full(res.shape, 5.0), np.zeros(res.shape, bool)
    >>> var, median, n = blank_noise(res, err, bad, model, 3.0, [], [])
    >>> bool(0.7 < var / (75 * 4 * np.pi * 1.3**2) < 1.3), n
    (True, 400)
    """
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    ny, nx = residual.shape
    b = fit_box(fwhm) // 2
    xy = rng.uniform([b, b], [nx - 1 - b, ny - 1 - b], (4 * n, 2))
    if len(avoid_x):
        xy = xy[cKDTree(np.c_[avoid_x, avoid_y]).query(xy)[0] > fwhm]
    xy = xy[:n]
    weight = _weights(err, bad)
    flux, expected = [], []
    for px, py in xy:
        cx, cy = int(round(px)), int(round(py))
        yy, xx = np.mgrid[cy - b : cy + b + 1, cx - b : cx + b + 1]
        p, w = model.evaluate(xx, yy, 1.0, px, py), weight[yy, xx]
        den = np.sum(p * p * w)
        if den > 0:
            flux.append(np.sum(p * w * residual[yy, xx]) / den)
            expected.append(1.0 / den)
    if len(flux) < 10:
        return 0.0, np.nan, len(flux)
    flux = np.asarray(flux)
    median = float(np.median(flux))
    scatter = 1.4826 * np.median(np.abs(flux - median))
    for _ in range(3):  # with the tail undetected stars make (one-sided): clipped at 5 sigma
        scatter = np.sqrt(np.mean((flux - median)[np.abs(flux - median) < 5 * scatter] ** 2))
    return float(max(scatter**2 - np.median(expected), 0.0)), median, len(flux)


def _weights(err, bad):
    """The fit's per-pixel weights: 1 / err^2, 0 on bad pixels and where err is not above 0."""
    return np.where(bad | ~(err > 0), 0.0, 1.0 / np.where(err > 0, err, 1.0) ** 2)


def _forget_group_models() -> None:
    """Empty photutils' cache of grouped-source model classes: photutils 3.0 keys it by
    group size and PSF class only, so the next frame's PSF model of the same class was
    fitted to every group with a previous frame's PSF (astropy/photutils#2384, fixed
    after 3.0.0)."""
    from photutils.psf import _components

    cache = getattr(_components, "_FLAT_MODEL_CACHE", None)
    if cache is not None:
        cache.clear()
