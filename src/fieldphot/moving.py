"""Photometry of a moving source on one frame: an aperture around its trail (a stadium:
every point within ``r`` of the segment it crossed during the exposure, a circle when it
stood still), recentred on the source when it is detected, sky from a stadium annulus
with the field's stars masked, corrected to total flux by the frame's curve of growth
and a model of the trail, and flagged ``STAR_CROSSING`` when a star of the field puts
light into the aperture.

Examples
--------
>>> import numpy as np
>>> from fieldphot.synthetic import render_stars
>>> # a source of 1e5 e- moving 20 px along x during the exposure, on a sky of 100 e-
>>> img = render_stars((80, 80), np.linspace(30, 50, 81), np.full(81, 40.0),
...                    np.full(81, 1e5 / 81), 3.0, 100.0, np.random.default_rng(0))
>>> m = measure(img, np.sqrt(img), np.zeros(img.shape, np.int32), (30.0, 40.0), (50.0, 40.0),
...             fwhm=3.0, radius=6.0, annulus=(12.0, 18.0))
>>> bool(abs(m["flux"] / 1e5 - 1) < 0.02), m["flags"]
(True, 0)
"""

import numpy as np

from .flags import Flag, any_set

#: Moffat index of the trail model (the aperture correction's shape beyond the curve of
#: growth: its ratio between trailed and round apertures hardly depends on it).
BETA = 3.0


def segment_distance(x, y, x0, y0, x1, y1):
    """Distance of points (``x``, ``y``) from the segment (``x0``, ``y0``)-(``x1``, ``y1``).

    Examples
    --------
    >>> segment_distance(np.array([0.0, 5.0, 13.0]), np.array([3.0, -2.0, 4.0]), 0, 0, 10, 0)
    array([3., 2., 5.])
    """
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else np.clip(((x - x0) * dx + (y - y0) * dy) / length2, 0.0, 1.0)
    return np.hypot(x - x0 - t * dx, y - y0 - t * dy)


def _box(shape, start, end, reach):
    ny, nx = shape
    xs = (max(int(np.floor(min(start[0], end[0]) - reach)), 0),
          min(int(np.ceil(max(start[0], end[0]) + reach)) + 1, nx))  # fmt: skip
    ys = (max(int(np.floor(min(start[1], end[1]) - reach)), 0),
          min(int(np.ceil(max(start[1], end[1]) + reach)) + 1, ny))  # fmt: skip
    return slice(*ys), slice(*xs)


def stadium_weights(shape, start, end, radius: float, sub: int = 8):
    """The fraction of each pixel within ``radius`` of the segment ``start``-``end``
    (pixel centres at whole numbers, sampled ``sub`` x ``sub`` per pixel), in the box
    around it: ``(slices, weights)``.

    Examples
    --------
    >>> (ys, xs), w = stadium_weights((50, 50), (20.3, 20.1), (30.3, 20.1), 3.0)
    >>> round(float(w.sum()), 1), round(2 * 3.0 * 10 + np.pi * 3.0**2, 1)
    (88.3, 88.3)
    """
    ys, xs = _box(shape, start, end, radius + 1)
    yy, xx = np.mgrid[ys, xs]
    f = (np.arange(sub) + 0.5) / sub - 0.5
    px = xx[..., None, None] + f[None, None, None, :]
    py = yy[..., None, None] + f[None, None, :, None]
    inside = segment_distance(px, py, *start, *end) <= radius
    return (ys, xs), inside.mean(axis=(2, 3))


def trail_fraction(length: float, radius: float, fwhm: float, beta: float = BETA) -> float:
    """The fraction of a trailed source's light inside the stadium of ``radius`` around
    its trail of ``length`` (px): a Moffat profile integrated on a fine grid.

    Examples
    --------
    >>> a = 3.0 / (2 * np.sqrt(2 ** (1 / 3) - 1))
    >>> round(trail_fraction(0.0, 6.0, 3.0), 3), round(float(1 - (1 + 36 / a**2) ** -2), 3)
    (0.962, 0.962)
    """
    alpha = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
    step = min(0.1, radius / 30)
    n = max(int(np.ceil(length / 0.25)), 1)
    s = ((np.arange(n) + 0.5) / n - 0.5) * length
    g = np.arange(-radius - length / 2, radius + length / 2 + step, step)
    h = np.arange(-radius, radius + step, step)
    gx, gy = np.meshgrid(g, h)
    inside = segment_distance(gx, gy, -length / 2, 0.0, length / 2, 0.0) <= radius
    gx, gy = gx[inside], gy[inside]
    total = 0.0
    for c in s:
        total += np.sum((1 + ((gx - c) ** 2 + gy**2) / alpha**2) ** -beta)
    return float(total * step * step * (beta - 1) / (np.pi * alpha**2) / n)


def edge_fraction(depth, alpha: float):
    """The fraction of a Moffat star's light (index 3, width ``alpha``) on the inner side
    of a straight edge ``depth`` px inside its centre (negative: the star is outside):
    the light a star at that distance puts into an aperture, the edge's curvature
    neglected (an upper bound for a star outside).

    Examples
    --------
    >>> edge_fraction(np.array([-100.0, 0.0, 100.0]), 3.0).round(3).tolist()
    [0.0, 0.5, 1.0]
    """
    u = np.asarray(depth, float) / alpha
    # The line-spread function of a Moffat of index 3 is (1 + u^2)^-2.5; its integral
    # from 0 to u over its half total (2/3).
    half = u * (2 * u * u + 3) / (3 * (1 + u * u) ** 1.5) / (2 / 3)
    return 0.5 * (1 + half)


def clipped_sky(values, clip: float = 3.0):
    """Sigma-clipped median of sky pixels and its error ``1.2533 std / sqrt(n)`` (as the
    stars' annuli, :func:`fieldphot.photometry.annulus_sky`), and the pixels used."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    for _ in range(5):
        if len(v) < 5:
            return np.nan, np.nan, len(v)
        med, std = np.median(v), np.std(v)
        keep = np.abs(v - med) <= clip * std
        if keep.all():
            break
        v = v[keep]
    return float(np.median(v)), float(1.2533 * np.std(v) / np.sqrt(len(v))), len(v)


def _centroid(sci, bad, start, end, sky, fwhm, reach):
    """The light-weighted centre of the source near the segment (within ``reach``),
    iterated on a window of one FWHM around it: the shift (dx, dy) of the segment."""
    shift = np.zeros(2)
    for window in (reach, fwhm, fwhm):
        s0, s1 = np.add(start, shift), np.add(end, shift)
        ys, xs = _box(sci.shape, s0, s1, window)
        yy, xx = np.mgrid[ys, xs]
        w = np.clip(sci[ys, xs] - sky, 0, None) * (segment_distance(xx, yy, *s0, *s1) <= window)
        w = np.where(bad[ys, xs], 0.0, w)
        if w.sum() <= 0:
            return np.zeros(2)
        mid = (s0 + s1) / 2
        shift = shift + np.array([(w * xx).sum(), (w * yy).sum()]) / w.sum() - mid
    return shift


def measure(
    sci,
    err,
    mask,
    start,
    end,
    fwhm: float,
    radius: float,
    annulus: tuple[float, float],
    growth: float | None = None,
    stars=None,
    recenter_px: float = 0.0,
    detect_snr: float = 5.0,
    blend_fraction: float = 0.01,
) -> dict:
    """Photometry of a source that moved from ``start`` to ``end`` (px, 0-based) during
    the exposure.

    Parameters
    ----------
    sci, err, mask : ndarray
        The calibrated frame (e-), its 1-sigma error and bit flags.
    start, end : (float, float)
        The predicted positions at the start and the end of the exposure.
    fwhm, radius : float
        The frame's FWHM and the aperture's radius around the trail (px).
    annulus : (float, float)
        The sky annulus' distances from the trail (px).
    growth : float, optional
        The fraction of a point source's light inside ``radius`` (the frame's curve of
        growth); the trail's own loss is modelled (:func:`trail_fraction`), and without
        a curve of growth the whole loss.
    stars : (x, y, flux, r_mask), optional
        The field's stars: masked in the sky annulus (within ``r_mask``), and those whose
        light in the aperture exceeds ``blend_fraction`` of the source's set
        ``STAR_CROSSING``.
    recenter_px : float
        Recentre on the source when it is detected at ``detect_snr`` and its centre lies
        within this distance of the prediction (0: forced at the prediction).

    Returns
    -------
    dict
        ``x``, ``y`` (the trail's middle), ``shift`` (px), ``flux``, ``flux_err`` (total,
        e-), ``flux_ap``, ``flux_err_ap`` (in the aperture), ``area`` (px), ``fraction``
        (of the light in it), ``sky``, ``sky_err``, ``snr``, ``peak``, ``trail_px``,
        ``contamination``
        (the stars' light in the aperture over the source's), ``flags``.
    """
    start, end = np.asarray(start, float), np.asarray(end, float)
    bad = any_set(mask, Flag.SATURATED | Flag.BAD_PIXEL | Flag.COSMIC_RAY)
    star_mask = np.zeros(sci.shape, bool)
    sx = sy = sf = sr = np.zeros(0)
    if stars is not None:
        sx, sy, sf, sr = (np.asarray(a, float) for a in stars)
        sr = np.broadcast_to(sr, sx.shape)
        near = segment_distance(sx, sy, *start, *end) <= annulus[1] + sr + 2 * recenter_px
        sx, sy, sf, sr = sx[near], sy[near], sf[near], sr[near]
        ys, xs = _box(sci.shape, start, end, annulus[1] + recenter_px + 1)
        yy, xx = np.mgrid[ys, xs]
        for x_, y_, r_ in zip(sx, sy, sr, strict=True):
            star_mask[ys, xs] |= np.hypot(xx - x_, yy - y_) <= r_
    length = float(np.hypot(*(end - start)))
    fraction = trail_fraction(length, radius, fwhm)
    if growth is not None:
        fraction *= growth / trail_fraction(0.0, radius, fwhm)

    def sky_of(s0, s1):
        ys, xs = _box(sci.shape, s0, s1, annulus[1] + 1)
        yy, xx = np.mgrid[ys, xs]
        d = segment_distance(xx, yy, *s0, *s1)
        ring = (d >= annulus[0]) & (d <= annulus[1]) & ~bad[ys, xs] & ~star_mask[ys, xs]
        return clipped_sky(sci[ys, xs][ring])

    def aperture(s0, s1, sky, sky_err):
        (ys, xs), w = stadium_weights(sci.shape, s0, s1, radius)
        area = float(w.sum())
        flux = float((w * sci[ys, xs]).sum() - area * sky)
        var = float((w * err[ys, xs] ** 2).sum()) + (area * sky_err) ** 2
        flags = 0
        for bit in (Flag.SATURATED, Flag.BAD_PIXEL, Flag.COSMIC_RAY, Flag.NONLINEAR):
            if any_set(mask[ys, xs][w > 0.5], bit).any():
                flags |= int(bit)
        full = (2 * radius * length + np.pi * radius**2) * 0.98
        if area < full:
            flags |= int(Flag.EDGE)
        core = sci[ys, xs][w > 0.5]
        return flux, np.sqrt(var), flags, float(core.max()) if core.size else np.nan, area

    alpha = fwhm / (2 * np.sqrt(2 ** (1 / BETA) - 1))

    def stars_light(s0, s1, total):
        """The field's stars' light in the aperture (from their own fluxes on this
        frame) over the source's."""
        d = segment_distance(sx, sy, *s0, *s1)
        inside = edge_fraction(radius - d, alpha)
        return float(np.nansum(np.clip(sf, 0, None) * inside)) / max(abs(total), 1e-9)

    sky, sky_err, _ = sky_of(start, end)
    flux, flux_err, flags, peak, area = aperture(start, end, sky, sky_err)
    contamination = stars_light(start, end, flux / fraction)
    shift = np.zeros(2)
    # Recentred only when detected and clear of stars (a star would pull the centre).
    if (
        recenter_px > 0
        and np.isfinite(sky)
        and flux > detect_snr * flux_err
        and contamination <= blend_fraction
    ):
        found = _centroid(sci, bad | star_mask, start, end, sky, fwhm, recenter_px)
        if np.hypot(*found) <= recenter_px:
            shift = found
            sky, sky_err, _ = sky_of(start + shift, end + shift)
            flux, flux_err, flags, peak, area = aperture(start + shift, end + shift, sky, sky_err)
            contamination = stars_light(start + shift, end + shift, flux / fraction)
    s0, s1 = start + shift, end + shift
    total, total_err = flux / fraction, flux_err / fraction
    if contamination > blend_fraction:
        flags |= int(Flag.STAR_CROSSING)
    if not np.isfinite(total) or total <= 0:
        flags |= int(Flag.NEGATIVE_FLUX)
    mid = (s0 + s1) / 2
    return {
        "x": float(mid[0]),
        "y": float(mid[1]),
        "shift": float(np.hypot(*shift)),
        "flux": total,
        "flux_err": total_err,
        "flux_ap": flux,
        "flux_err_ap": flux_err,
        "area": area,
        "fraction": fraction,
        "sky": sky,
        "sky_err": sky_err,
        "snr": total / total_err if total_err > 0 else 0.0,
        "peak": peak,
        "trail_px": length,
        "contamination": contamination,
        "flags": int(flags),
    }
