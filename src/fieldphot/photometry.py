"""Aperture photometry at known positions with local sky and CCD-equation errors.

Fluxes are summed with sep (exact circular overlap); the sky is a sigma-clipped median
of a local annulus; the error combines every pixel's CCD-equation variance (source and
sky Poisson noise, dark current, read noise, carried in the ERR plane) with the error of
the sky estimate. An aperture correction to a large aperture, measured on bright
isolated stars, turns aperture fluxes into total fluxes.

Examples
--------
>>> import numpy as np
>>> from fieldphot.synthetic import _stamp, moffat_alpha
>>> img = np.full((80, 80), 50.0)
>>> x0, y0, st = _stamp(40.2, 39.6, moffat_alpha(3.0, 3.0), 3.0, 30)
>>> img[y0:y0 + st.shape[0], x0:x0 + st.shape[1]] += 1e5 * st[:80 - y0, :80 - x0]
>>> err = np.sqrt(img)
>>> t = aperture_photometry(img, err, np.zeros(img.shape, np.int32), [40.2], [39.6],
...                         r_ap=6.0, r_in=15.0, r_out=25.0)
>>> bool(abs(t["flux"][0] - 1e5 * 0.9625) < 200)  # Moffat beta=3 within 2 FWHM
True
"""

import numpy as np
import pandas as pd
import sep
from scipy.optimize import curve_fit
from scipy.spatial import cKDTree

from .flags import Flag, any_set


def native(a, dtype=None) -> np.ndarray:
    """``a`` as the C-contiguous, native-byte-order array sep takes: float32 and float64
    keep their precision (no copy when already so), anything else becomes ``dtype``
    (float64 unless given).

    Examples
    --------
    >>> native(np.zeros(2, ">f4")).dtype.str, native([1, 2]).dtype.str
    ('<f4', '<f8')
    """
    a = np.asarray(a)
    if dtype is None:
        float_ok = a.dtype.kind == "f" and a.dtype.itemsize in (4, 8)
        dtype = a.dtype.newbyteorder("=") if float_ok else np.float64
    return np.ascontiguousarray(a, dtype=dtype)


def annulus_sky(
    sci: np.ndarray,
    bad: np.ndarray,
    x,
    y,
    r_in: float,
    r_out: float,
    clip: float = 3.0,
    chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sigma-clipped median sky per position, its error, and the pixel count used.

    Up to five passes keep the pixels within ``clip`` standard deviations of the median
    (fewer than 5 pixels left: no sky). The error is ``1.2533 * std / sqrt(n)`` (the
    standard error of a median). Done for ``chunk`` positions at a time on their sorted
    annulus pixels, where every pass keeps a run of them: a few array operations for all
    the stars, not a loop over them.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.random.default_rng(1).normal(100.0, 5.0, (60, 60)); img[30, 30] = 1e4
    >>> sky, err, n = annulus_sky(img, np.zeros(img.shape, bool), [30.0], [30.0], 8.0, 14.0)
    >>> round(float(sky[0])), int(n[0]) > 300
    (100, True)
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    out = [np.full(len(x), np.nan), np.full(len(x), np.nan), np.zeros(len(x), int)]
    for i0 in range(0, len(x), chunk):
        part = slice(i0, i0 + chunk)
        for o, v in zip(
            out, _annulus_sky(sci, bad, x[part], y[part], r_in, r_out, clip), strict=True
        ):
            o[part] = v
    return out[0], out[1], out[2]


def _annulus_sky(sci, bad, x, y, r_in, r_out, clip):
    ny, nx = sci.shape
    ro = int(np.ceil(r_out)) + 1
    oy, ox = np.mgrid[-ro : ro + 1, -ro : ro + 1]
    # The pixels that can fall in the annulus of a centre within half a pixel of a whole
    # one, as offsets into the flattened image.
    ring = np.abs(np.hypot(oy, ox) - (r_in + r_out) / 2) <= (r_out - r_in) / 2 + 0.71
    oy, ox = oy[ring], ox[ring]
    xc, yc = np.round(x).astype(int), np.round(y).astype(int)
    idx = np.clip((yc * nx + xc)[:, None] + (oy * nx + ox), 0, ny * nx - 1)
    fx, fy = (x - xc)[:, None], (y - yc)[:, None]
    r2 = (ox - fx) ** 2 + (oy - fy) ** 2
    use = (r2 >= r_in**2) & (r2 <= r_out**2) & ~np.ravel(bad)[idx]
    edge = (xc < ro) | (xc >= nx - ro) | (yc < ro) | (yc >= ny - ro)  # rings the frame cuts
    px, py = xc[edge, None] + ox, yc[edge, None] + oy
    use[edge] &= (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
    v = np.where(use, np.ravel(sci)[idx], np.inf)  # float32 frames sort as float32
    v.sort(axis=1)  # the annulus's pixels in order, then the unused ones (inf)
    rows = np.arange(len(x))
    hi = np.isfinite(v).sum(axis=1)
    lo = np.zeros(len(x), int)
    base = v[rows, np.maximum(hi - 1, 0) // 2].astype(float)  # against rounding in the sums
    base[~np.isfinite(base)] = 0.0
    w = np.where(np.isfinite(v), v - base[:, None], 0.0)
    s1, s2 = np.zeros((len(x), v.shape[1] + 1)), np.zeros((len(x), v.shape[1] + 1))
    np.cumsum(w, axis=1, out=s1[:, 1:])
    np.cumsum(w * w, axis=1, out=s2[:, 1:])

    def stats(lo, hi):
        n = np.maximum(hi - lo, 1)
        med = 0.5 * (v[rows, lo + (n - 1) // 2].astype(float) + v[rows, lo + n // 2])
        mean = (s1[rows, hi] - s1[rows, lo]) / n
        std = np.sqrt(np.maximum((s2[rows, hi] - s2[rows, lo]) / n - mean**2, 0.0))
        return med, std

    active = hi - lo >= 5
    for _ in range(5):
        if not active.any():
            break
        med, std = stats(lo, hi)
        new_lo = np.maximum(_count_below(v, med - clip * std, strict=True), lo)
        new_hi = np.minimum(_count_below(v, med + clip * std, strict=False), hi)
        changed = active & ((new_lo != lo) | (new_hi != hi))
        lo, hi = np.where(changed, new_lo, lo), np.where(changed, new_hi, hi)
        active = changed & (hi - lo >= 5)
    med, std = stats(lo, hi)
    n = hi - lo
    ok = n >= 5
    sky = np.where(ok, med, np.nan)
    sky_err = np.where(ok, 1.2533 * std / np.sqrt(np.maximum(n, 1)), np.nan)
    return sky, sky_err, np.where(ok, n, 0)


def _count_below(v, limit, strict: bool):
    """Per row of the row-sorted ``v``: how many values are below (``strict``) or at most
    ``limit``, by a bisection of all rows at once."""
    rows = np.arange(len(v))
    lo, hi = np.zeros(len(v), int), np.full(len(v), v.shape[1])
    while (lo < hi).any():
        mid = (lo + hi) // 2
        at = v[rows, np.minimum(mid, v.shape[1] - 1)]
        below = (at < limit) if strict else (at <= limit)
        below &= lo < hi
        lo, hi = np.where(below, mid + 1, lo), np.where(below | (lo >= hi), hi, mid)
    return lo


def moffat_alpha(fwhm: float, beta: float) -> float:
    """Moffat core width ``alpha`` of a profile with this FWHM and index ``beta``
    (``FWHM = 2 alpha sqrt(2**(1/beta) - 1)``).

    Examples
    --------
    >>> round(float(moffat_alpha(3.0, 3.0)), 4)
    2.9422
    """
    return fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def source_mask(shape, x, y, radius) -> np.ndarray:
    """Boolean image, True within ``radius`` (px; scalar or one per source) of each source.

    Examples
    --------
    >>> int(source_mask((20, 20), [5.0, 15.0], [5.0, 15.0], [1.0, 2.0]).sum())
    18
    """
    ny, nx = shape
    x, y = np.asarray(x, float), np.asarray(y, float)
    radius = np.broadcast_to(np.asarray(radius, float), x.shape)
    meets = (x + radius >= 0) & (x - radius <= nx - 1) & (y + radius >= 0) & (y - radius <= ny - 1)
    x, y, radius = x[meets], y[meets], radius[meets]
    pad = 2 * (int(np.ceil(radius.max())) + 1) if len(x) else 0
    out = np.zeros((ny + 2 * pad, nx + 2 * pad), bool)
    xc, yc = np.round(x).astype(int), np.round(y).astype(int)
    size = np.ceil(radius).astype(int) + 1
    for k in np.unique(size):  # the sources whose circles fit the same box, at once
        of = size == k
        oy, ox = (o.ravel() for o in np.mgrid[-k : k + 1, -k : k + 1])
        inside = (ox - (x[of] - xc[of])[:, None]) ** 2 + (oy - (y[of] - yc[of])[:, None]) ** 2
        inside = inside <= radius[of][:, None] ** 2
        rows, cols = (yc[of] + pad)[:, None] + oy, (xc[of] + pad)[:, None] + ox
        out[rows[inside], cols[inside]] = True
    return out[pad : pad + ny, pad : pad + nx]


def peak_pixel(sci, x, y, half: int = 2) -> np.ndarray:
    """Each source's highest pixel (sky included) in the box of ``2 * half + 1`` pixels
    about its position: what non-linearity depends on. NaN where the box leaves the
    frame or holds no finite pixel.

    Examples
    --------
    >>> img = np.zeros((10, 10)); img[4, 6] = 5.0
    >>> peak_pixel(img, [5.0, 0.0], [4.2, 0.0]).tolist()
    [5.0, nan]
    """
    ny, nx = sci.shape
    xc = np.round(np.asarray(x, float)).astype(int)
    yc = np.round(np.asarray(y, float)).astype(int)
    ok = (xc >= half) & (yc >= half) & (xc < nx - half) & (yc < ny - half)
    out = np.full(len(xc), np.nan)
    if ok.any():
        oy, ox = (o.ravel() for o in np.mgrid[-half : half + 1, -half : half + 1])
        box = sci[yc[ok, None] + oy, xc[ok, None] + ox]
        finite = np.isfinite(box).any(axis=1)
        out[np.flatnonzero(ok)[finite]] = np.nanmax(box[finite], axis=1)
    return out


def multi_aperture(
    sci: np.ndarray,
    err: np.ndarray,
    mask: np.ndarray,
    x,
    y,
    radii,
    r_in: float,
    r_out: float,
    sky_mask: np.ndarray | None = None,
) -> dict:
    """Sky-subtracted fluxes in several circular apertures at pixel positions (0-based).

    One sky per position (:func:`annulus_sky`, leaving out the pixels of ``mask`` flagged
    bad and those ``sky_mask`` marks as other stars' light) serves every aperture. The error of each
    flux is the sum of the ERR plane's variance over the aperture (source and sky
    Poisson noise, dark current, read noise, master errors) plus the error of the sky
    estimate times the aperture area.

    Returns
    -------
    dict
        ``flux``, ``flux_err``, ``flags`` (arrays of shape ``(n, len(radii))``) and
        ``sky``, ``sky_err``, ``n_sky`` (shape ``(n,)``).

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((40, 40), 10.0)
    >>> img[20, 20] += 500.0
    >>> m = multi_aperture(img, np.sqrt(img), np.zeros(img.shape, np.int32), [20.0], [20.0],
    ...                    [1.0, 3.0], 8.0, 14.0)
    >>> np.round(m["flux"], 1).tolist()
    [[500.0, 500.0]]
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    radii = np.atleast_1d(np.asarray(radii, float))
    n, k = len(x), len(radii)
    res = {
        "flux": np.full((n, k), np.nan),
        "flux_err": np.full((n, k), np.nan),
        "flags": np.zeros((n, k), np.int32),
        "sky": np.full(n, np.nan),
        "sky_err": np.full(n, np.nan),
        "n_sky": np.zeros(n, int),
    }
    if n == 0:
        return res
    bad = any_set(mask, Flag.SATURATED | Flag.BAD_PIXEL | Flag.COSMIC_RAY)
    if sky_mask is not None:
        bad = bad | sky_mask
    sky, sky_err, nsky = annulus_sky(sci, bad, x, y, r_in, r_out)
    sci_c, err_c = native(sci), native(err)
    planes = [
        (b, any_set(mask, b))
        for b in (Flag.SATURATED, Flag.BAD_PIXEL, Flag.COSMIC_RAY, Flag.NONLINEAR)
    ]
    nearest = [(b, _distance_to_set(plane, x, y)) for b, plane in planes if plane.any()]
    ny, nx = sci.shape
    # An annulus cut by the frame edge is fine as long as it keeps enough sky pixels.
    few_sky = nsky < 0.25 * np.pi * (r_out**2 - r_in**2)
    for j, r in enumerate(radii):
        s, s_err, sflag = sep.sum_circle(sci_c, x, y, r, err=err_c, subpix=0)
        var = s_err**2
        area = np.pi * r**2
        flux = s - area * sky
        flags = np.zeros(n, np.int32)
        for bit, distance in nearest:  # a pixel whose centre is in the aperture
            flags[distance < r] |= bit
        edge = (x - r < -0.5) | (y - r < -0.5) | (x + r > nx - 0.5) | (y + r > ny - 0.5)
        flags[edge | few_sky | (sflag != 0)] |= Flag.EDGE
        flags[~np.isfinite(flux) | (flux <= 0)] |= Flag.NEGATIVE_FLUX
        res["flux"][:, j] = flux
        res["flux_err"][:, j] = np.sqrt(var + (area * sky_err) ** 2)
        res["flags"][:, j] = flags
    res["sky"], res["sky_err"], res["n_sky"] = sky, sky_err, nsky
    return res


def _distance_to_set(plane: np.ndarray, x, y) -> np.ndarray:
    """Distance from each position to the centre of the nearest pixel set in ``plane``: 0
    on a set pixel, else to the nearest pixel on the edge of a set region (the nearest set
    pixel to a point outside a region is on its edge), so a large region costs its edge.

    Examples
    --------
    >>> plane = np.zeros((20, 20), bool); plane[5:15, 5:15] = True
    >>> d = _distance_to_set(plane, np.array([10.0, 2.0, 16.0]), np.array([10.0, 10.0, 16.0]))
    >>> d.round(2).tolist()
    [0.0, 3.0, 2.83]
    """
    from scipy.ndimage import binary_erosion

    ny, nx = plane.shape
    edge = plane & ~binary_erosion(plane, np.ones((3, 3), bool), border_value=0)
    d = cKDTree(np.column_stack(np.nonzero(edge)[::-1])).query(np.column_stack([x, y]))[0]
    xc, yc = np.round(x).astype(int), np.round(y).astype(int)
    on = (xc >= 0) & (xc < nx) & (yc >= 0) & (yc < ny)
    on[on] = plane[yc[on], xc[on]]
    return np.where(on, 0.0, d)


def aperture_photometry(
    sci: np.ndarray,
    err: np.ndarray,
    mask: np.ndarray,
    x,
    y,
    r_ap: float,
    r_in: float,
    r_out: float,
) -> pd.DataFrame:
    """Sky-subtracted aperture fluxes with errors and flags at pixel positions (0-based).

    One aperture of :func:`multi_aperture`, as a table with
    ``flux, flux_err, sky, sky_err, n_sky, area, flags``.
    """
    m = multi_aperture(sci, err, mask, x, y, [r_ap], r_in, r_out)
    return pd.DataFrame(
        {
            "flux": m["flux"][:, 0],
            "flux_err": m["flux_err"][:, 0],
            "sky": m["sky"],
            "sky_err": m["sky_err"],
            "n_sky": m["n_sky"],
            "area": np.pi * r_ap**2,
            "flags": m["flags"][:, 0],
        }
    )


def curve_of_growth(flux: np.ndarray, usable, ref: int = -1, min_stars: int = 3) -> tuple:
    """The flux in each aperture relative to aperture ``ref`` (default the largest).

    Parameters
    ----------
    flux : ndarray, shape (n, k)
        Fluxes of n stars in k apertures, the largest last.
    usable : array of bool
        Bright, clean, isolated stars to use.
    ref : int
        The aperture the others are compared with.

    Returns
    -------
    growth, growth_err : ndarray, shape (k,)
        Clipped median ratio ``flux[:, j] / flux[:, ref]`` and its standard error (1 +- 0
        at ``ref``); NaN when fewer than ``min_stars`` stars qualify.
    n : int
        Stars used.

    Examples
    --------
    >>> import numpy as np
    >>> f = np.outer(np.linspace(1e4, 5e4, 9), [0.5, 0.8, 1.0])
    >>> g, e, n = curve_of_growth(f, np.ones(9, bool))
    >>> g.tolist(), n
    ([0.5, 0.8, 1.0], 9)
    """
    f = np.asarray(flux, float)[np.asarray(usable, bool)]
    f = f[np.all(np.isfinite(f), axis=1) & (f[:, ref] > 0)] if len(f) else f
    k = np.asarray(flux).shape[1]
    if len(f) < min_stars:
        return np.full(k, np.nan), np.full(k, np.nan), len(f)
    ratio = f / f[:, [ref]]
    # Local background structure, not photon noise, dominates the large aperture's error,
    # so every star gets the same weight: a clipped median with its standard error.
    med = np.median(ratio, axis=0)
    mad = 1.4826 * np.median(np.abs(ratio - med), axis=0)
    good = np.all(np.abs(ratio - med) < 3 * np.maximum(mad, 1e-4), axis=1)
    if good.sum() < min_stars:
        good[:] = True
    r = ratio[good]
    return np.median(r, axis=0), 1.2533 * np.std(r, axis=0) / np.sqrt(len(r)), int(len(r))


def moffat_encircled(radii, growth) -> float:
    """Fraction of a star's total flux inside the largest radius, from a Moffat profile
    fitted to the curve of growth (its encircled energy ``1 - (1 + r^2/a^2)^(1 - beta)``),
    as DAOGROW extrapolates growth curves (Stetson 1990, PASP 102, 932). 1 when the fit
    fails or is implausible.

    Examples
    --------
    >>> import numpy as np
    >>> r = np.array([2.0, 3.0, 4.5, 6.0, 9.0, 12.0])
    >>> ee = 1 - (1 + (r / 2.9) ** 2) ** -2.0
    >>> bool(round(moffat_encircled(r, ee / ee[-1]), 4) == round(ee[-1], 4))
    True
    """
    r = np.asarray(radii, float)
    g = np.asarray(growth, float)

    def model(rr, a, beta):
        ee = 1 - (1 + (rr / a) ** 2) ** (1 - beta)
        return ee / (1 - (1 + (r[-1] / a) ** 2) ** (1 - beta))

    try:
        (a, beta), _ = curve_fit(model, r, g, p0=(r[-1] / 4, 3.0), bounds=([0.1, 1.2], [1e3, 20]))
    except (RuntimeError, ValueError):
        return 1.0
    frac = 1 - (1 + (r[-1] / a) ** 2) ** (1 - beta)
    return float(frac) if 0.9 < frac <= 1.0 else 1.0


def best_aperture(flux_guess, growth, background_var) -> np.ndarray:
    """Index of the aperture that gives each star its highest expected S/N.

    The expected S/N in aperture j of a star of total flux F is
    ``F g_j / sqrt(F g_j + B_j)`` with ``g_j`` the curve of growth and ``B_j`` the
    background variance in the aperture (sky, dark, read noise, sky-estimate error).
    Faint stars get small apertures, bright ones large (Howell 1989, PASP 101, 616).

    Examples
    --------
    >>> import numpy as np
    >>> best_aperture([1e2, 1e6], np.array([0.6, 0.9, 1.0]),
    ...               np.array([[50.0, 200.0, 800.0]] * 2)).tolist()
    [0, 2]
    """
    f = np.maximum(np.asarray(flux_guess, float), 1.0)[:, None] * np.asarray(growth)[None, :]
    snr = f / np.sqrt(f + np.maximum(np.asarray(background_var, float), 0.0))
    return np.argmax(np.where(np.isfinite(snr), snr, -np.inf), axis=1)


def scintillation(
    diameter_m: float, exptime: float, airmass, altitude_m: float, correction: float = 1.5
) -> np.ndarray:
    """Fractional flux error from scintillation (Young's formula).

    ``sigma = C * 0.003162 * D^(-2/3) * X^(3/2) * exp(-h / 8000 m) / sqrt(t)`` with D in
    metres, t in seconds: Young (1967, AJ 72, 747) in the form of Osborn et al. (2015,
    MNRAS 452, 1707, eq. 7); ``correction`` C is their median empirical factor (1.5).

    Examples
    --------
    >>> round(float(scintillation(1.0, 60.0, 1.0, 0.0, correction=1.0)), 6)
    0.000408
    """
    x = np.asarray(airmass, float)
    return (
        correction
        * 0.003162
        * diameter_m ** (-2.0 / 3.0)
        * x**1.5
        * np.exp(-altitude_m / 8000.0)
        / np.sqrt(exptime)
    )


def blank_apertures(
    shape, avoid_x, avoid_y, clearance: float, margin: float, n: int = 400, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` random positions at least ``clearance`` px from every position to avoid
    and ``margin`` px inside the frame (for the robust limiting magnitude).

    Examples
    --------
    >>> x, y = blank_apertures((100, 100), [50.0], [50.0], clearance=20.0, margin=10.0, n=50)
    >>> bool(np.all(np.hypot(x - 50, y - 50) >= 20)), len(x) <= 50
    (True, True)
    """
    ny, nx = shape
    if nx <= 2 * margin or ny <= 2 * margin:
        return np.zeros(0), np.zeros(0)
    rng = np.random.default_rng(seed)
    cand = rng.uniform([margin, margin], [nx - 1 - margin, ny - 1 - margin], (4 * n, 2))
    if len(avoid_x):
        d, _ = cKDTree(np.column_stack([avoid_x, avoid_y])).query(cand)
        cand = cand[d >= clearance]
    return cand[:n, 0], cand[:n, 1]


def _unit_disc() -> np.ndarray:
    """Offsets of 19 points spread evenly over the unit disc (centre + 2 rings)."""
    pts = [(0.0, 0.0)]
    for rad, n in ((0.45, 6), (0.85, 12)):
        a = 2 * np.pi * (np.arange(n) + 0.5 * (n == 12)) / n
        pts += list(zip(rad * np.cos(a), rad * np.sin(a), strict=True))
    return np.array(pts)


def neighbour_contamination(
    x, y, mag, fwhm: float, r_ap: float, measured=None, beta: float = 2.5, reach_fwhm: float = 40.0
) -> np.ndarray:
    """Fraction of each star's flux that its catalog neighbours put into its aperture.

    Each neighbour is modelled as a Moffat profile (``beta`` 2.5: wings heavier than most
    real PSFs, so the estimate errs on the safe side) of the frame's FWHM, integrated over
    the star's aperture by sampling the disc.

    Parameters
    ----------
    x, y, mag : array
        Positions (px) and magnitudes of all catalog stars on and around the frame.
    fwhm : float
        The frame's FWHM (px).
    r_ap : float or array
        The aperture radius (px), one for all stars or one per star.
    measured : array of bool, optional
        Which stars need the estimate (default all); every star counts as a neighbour.

    Examples
    --------
    >>> f = neighbour_contamination([0, 18], [0, 0], [11.5, 18.9], fwhm=4.0, r_ap=8.0)
    >>> bool(f[1] > 1.0), bool(f[0] < 1e-3)
    (True, True)
    """
    x, y, mag = (np.asarray(v, float) for v in (x, y, mag))
    r_star = np.broadcast_to(np.asarray(r_ap, float), x.shape)
    frac = np.zeros(len(x))
    if len(x) < 2:
        return frac
    alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    flux = 10 ** (-0.4 * np.nan_to_num(mag, nan=99.0))
    pairs = cKDTree(np.column_stack([x, y])).query_pairs(reach_fwhm * fwhm, output_type="ndarray")
    if len(pairs) == 0:
        return frac
    i = np.concatenate([pairs[:, 0], pairs[:, 1]])  # star
    j = np.concatenate([pairs[:, 1], pairs[:, 0]])  # its neighbour
    if measured is not None:
        keep = np.asarray(measured, bool)[i]
        i, j = i[keep], j[keep]
    disc = _unit_disc()
    r = r_star[i][:, None]
    dx = x[j][:, None] - (x[i][:, None] + r * disc[None, :, 0])
    dy = y[j][:, None] - (y[i][:, None] + r * disc[None, :, 1])
    prof = (beta - 1) / (np.pi * alpha**2) * (1 + (dx**2 + dy**2) / alpha**2) ** (-beta)
    share = np.minimum(prof.mean(axis=1) * np.pi * r[:, 0] ** 2, 1.0)
    np.add.at(frac, i, share * flux[j] / flux[i])
    return frac


def limiting_flux(background_var, nsigma: float = 5.0, offset=0.0):
    """Flux (e-) measured at ``nsigma`` half of the time in an aperture whose background
    variance is ``background_var`` (e-^2).

    Solves ``(F + offset) / sqrt(F + background_var) = nsigma``. ``offset`` is the median
    flux that empty apertures measure: below zero where faint undetected stars skew the
    noise (their light lifts the mean, not the median), so that a star of flux ``F`` is
    measured at ``F + offset`` half of the time.

    Examples
    --------
    >>> round(float(limiting_flux(100.0 * 10.0**2)), 1)
    512.7
    >>> round(float(limiting_flux(100.0 * 10.0**2, offset=-20.0)), 1)
    533.2
    """
    v, mu = np.asarray(background_var, float), np.asarray(offset, float)
    g = (nsigma**2 + np.sqrt(nsigma**4 + 4 * nsigma**2 * (v - mu))) / 2.0
    return g - mu
