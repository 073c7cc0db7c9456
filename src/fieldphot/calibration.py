"""CCD calibration on arrays: overscan, trim, master frames, and science calibration.

All functions take and return numpy arrays; masters are in electrons (bias),
electrons per second (dark) and unit median (flat). Calibrated frames are in electrons
with an ERR plane from the CCD equation and a MASK plane of :class:`~fieldphot.flags.Flag`
bits, in the manner of ccdproc.

Examples
--------
>>> import numpy as np
>>> raw = np.full((4, 10), 100.0); raw[:, 2:8] += 50.0
>>> overscan_trim(raw, "[3:8,1:4]", "[9:10,1:4]", mode="median").tolist()[0]
[50.0, 50.0, 50.0, 50.0, 50.0, 50.0]
"""

import json
import math
import re

import numpy as np

from . import headers
from .flags import Flag, any_set


def parse_section(section: str) -> tuple[slice, slice]:
    """A FITS section ``'[x1:x2,y1:y2]'`` (1-based, inclusive) as numpy (rows, cols) slices.

    Examples
    --------
    >>> parse_section("[18:1382,1:1370]")
    (slice(0, 1370, None), slice(17, 1382, None))
    """
    m = re.fullmatch(r"\s*\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]\s*", str(section))
    if not m:
        raise ValueError(f"not a FITS section: {section!r}")
    x1, x2, y1, y2 = (int(v) for v in m.groups())
    if x1 > x2 or y1 > y2:
        raise ValueError(f"reversed FITS section not supported: {section!r}")
    return slice(y1 - 1, y2), slice(x1 - 1, x2)


def overscan_level(
    raw: np.ndarray, biassec: str, rows: slice, mode: str = "poly", order: int = 3
) -> np.ndarray:
    """Bias level per row from the overscan strip, for the rows of the trimmed image.

    ``mode`` is ``median`` (one value), ``row`` (median of each row) or ``poly``
    (a Legendre polynomial of ``order`` fitted to the row medians, with 3-sigma
    clipping of outlying rows).
    """
    ys, xs = parse_section(biassec)
    strip = raw[ys, xs]
    row_med = np.median(strip, axis=1)
    n = raw.shape[0]
    full = np.full(n, np.median(row_med))
    if mode == "median":
        pass
    elif mode == "row":
        full[ys] = row_med
    elif mode == "poly":
        t = np.linspace(-1, 1, n)[ys]
        keep = np.ones(len(row_med), bool)
        for _ in range(3):
            coef = np.polynomial.legendre.legfit(t[keep], row_med[keep], order)
            resid = row_med - np.polynomial.legendre.legval(t, coef)
            s = 1.4826 * np.median(np.abs(resid[keep])) + 1e-12
            keep = np.abs(resid) < 3 * s
        full = np.polynomial.legendre.legval(np.linspace(-1, 1, n), coef)
    else:
        raise ValueError(f"unknown overscan mode {mode!r}")
    return full[rows]


def overscan_trim(
    raw: np.ndarray, trimsec: str | None, biassec: str | None, mode: str = "poly", order: int = 3
) -> np.ndarray:
    """Subtract the overscan level (if ``biassec``) and trim to ``trimsec`` (if given)."""
    rows, cols = parse_section(trimsec) if trimsec else (slice(None), slice(None))
    data = raw[rows, cols].astype(np.float32)
    if biassec:
        data -= overscan_level(raw, biassec, rows, mode, order).astype(np.float32)[:, None]
    return data


def raw_problem(raw: np.ndarray, saturate: float | None, max_fraction: float = 0.5) -> str:
    """Why a raw image (ADU) cannot be calibrated; an empty string when it can.

    Examples
    --------
    >>> import numpy as np
    >>> raw_problem(np.full((4, 4), 7.0), 65535)
    'constant image (every pixel 7)'
    >>> raw_problem(np.full((4, 4), np.nan), 65535)
    'no finite pixels'
    """
    n_finite = np.count_nonzero(np.isfinite(raw))
    if n_finite == 0:
        return "no finite pixels"
    if n_finite < max_fraction * raw.size:
        return f"{100 * (1 - n_finite / raw.size):.0f} % of pixels are not finite"
    low = np.nanmin(raw)  # reductions, not copies: a large frame costs no extra memory
    if np.nanmax(raw) == low:
        return f"constant image (every pixel {low:g})"
    saturated = (
        np.count_nonzero((raw >= saturate) & (raw < np.inf)) / n_finite
        if saturate is not None
        else 0.0
    )
    if saturated > max_fraction:
        return f"{100 * saturated:.0f} % of pixels saturated"
    return ""


def local_peaks(raw: np.ndarray, nsigma: float = 20.0, box: int = 5) -> np.ndarray:
    """Values of the local maxima (in ``box`` x ``box``) standing ``nsigma`` robust
    sigmas above the image's median: the peaks of its bright sources, in raw ADU."""
    from scipy.ndimage import maximum_filter

    d = np.asarray(raw, np.float32)
    s = sample(d, 1e6)
    med = float(np.nanmedian(s))
    mad = 1.4826 * float(np.nanmedian(np.abs(s - med)))
    return d[(d == maximum_filter(d, box)) & (d > med + nsigma * max(mad, 1e-6))]


def saturation_level(peaks, bin_dex: float = 0.01, min_count: int = 5) -> float | None:
    """The level (ADU) where the peaks of bright sources pile up: what saturation (full
    well or converter) does, which brightness alone never does (peaks thin out toward the
    top). None when there is no pile-up (no saturated star).

    The peaks are counted in bins of ``bin_dex`` in log10; the pile-up is the highest bin
    holding at least ``min_count`` peaks and four times the mean of the six bins below
    its neighbour; it extends down while bins hold a quarter of its count. Its lower edge
    is the level.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> stars = 1000 * rng.pareto(0.8, 3000) + 2000   # a power law of star peaks
    >>> peaks = np.concatenate([stars[stars < 61000], rng.uniform(61800, 63500, 60)])
    >>> round(saturation_level(peaks), -2)
    61800.0
    >>> saturation_level(stars[stars < 61000]) is None
    True
    """
    p = np.asarray(peaks, float)
    p = np.log10(p[np.isfinite(p) & (p > 0)])
    if len(p) < min_count:
        return None
    edges = np.arange(p.min(), p.max() + 2 * bin_dex, bin_dex)
    counts, edges = np.histogram(p, edges)
    for b in range(len(counts) - 1, 7, -1):
        top = counts[b] + counts[b - 1]
        below = counts[b - 8 : b - 2].mean()
        if counts[b] >= min_count and top >= 4 * below + min_count:
            lo = b
            while lo > 0 and counts[lo - 1] >= max(2, counts[b] // 4):
                lo -= 1
            return float(10 ** edges[lo])
    return None


def pair_noise(
    a: np.ndarray, b: np.ndarray, offset: float = 0.0, box: int = 1024
) -> tuple[float, float]:
    """Mean level and per-frame variance of two exposures of the same scene (raw ADU),
    from the central ``box`` x ``box`` pixels: the variance is that of their difference,
    the second scaled to the first's level above ``offset`` (the bias level, when known),
    over two (the scene, the flat field and fixed patterns cancel; the MAD ignores stars
    that moved or changed).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> level, var = pair_noise(rng.normal(500, 10, (300, 300)), rng.normal(500, 10, (300, 300)))
    >>> round(level), round(var, -1)
    (500, 100.0)
    """
    ny, nx = a.shape
    y0, x0 = max((ny - box) // 2, 0), max((nx - box) // 2, 0)
    sl = (slice(y0, y0 + box), slice(x0, x0 + box))
    a, b = np.asarray(a[sl], float), np.asarray(b[sl], float)
    from scipy.ndimage import binary_dilation

    ma, mb = float(np.median(a)), float(np.median(b))
    r = (ma - offset) / (mb - offset) if mb > offset else 1.0  # twilight flats fade
    d = a - offset - r * (b - offset)
    # Stars that moved or changed between the frames: left out with their wings.
    bright = np.zeros(a.shape, bool)
    for x, m in ((a, ma), (b, mb)):
        bright |= x > m + 4 * 1.4826 * np.median(np.abs(x - m))
    d = d[~binary_dilation(bright, iterations=3)] if (~bright).sum() > 0.5 * a.size else d.ravel()
    mad = float(np.median(np.abs(d - np.median(d))))
    return (ma + mb) / 2, (1.4826 * mad) ** 2 / (1 + r**2)


def gain_from_pairs(levels, variances, bias_level=None, read_var=None) -> tuple[float, float]:
    """Gain (e-/ADU) and its error from pairs of exposures (:func:`pair_noise`): the
    photon-transfer relation variance = (level - bias) / gain + read variance. With the
    bias level and read variance (ADU) known from bias frames each pair gives the gain;
    without, the slope over pairs of different levels does (NaN when the levels span too
    little, under 30 %).

    Examples
    --------
    >>> gain_from_pairs([1100.0, 2100.0], [52.0, 102.0], bias_level=100.0, read_var=2.0)
    (20.0, 0.0)
    >>> g, e = gain_from_pairs([1000.0, 2000.0, 3000.0], [52.0, 102.0, 152.0])
    >>> round(g, 3)
    20.0
    """
    lv, vr = np.asarray(levels, float), np.asarray(variances, float)
    if bias_level is not None and read_var is not None:
        g = (lv - bias_level) / (vr - read_var)
        g = g[np.isfinite(g) & (g > 0)]
        if len(g) == 0:
            return float("nan"), float("nan")
        err = 1.2533 * np.std(g) / np.sqrt(len(g)) if len(g) > 1 else float("nan")
        return float(np.median(g)), float(err)
    if len(lv) < 3 or np.ptp(lv) < 0.3 * np.mean(lv):
        return float("nan"), float("nan")
    coef = np.polyfit(lv, vr, 1)
    if coef[0] <= 0:
        return float("nan"), float("nan")
    resid = vr - np.polyval(coef, lv)
    slope_err = np.sqrt(resid @ resid / (len(lv) - 2) / np.sum((lv - lv.mean()) ** 2))
    return float(1.0 / coef[0]), float(slope_err / coef[0] ** 2)


def parse_detsec(section: str) -> tuple[slice, slice, bool, bool]:
    """A DETSEC (1-based, either axis may run backwards) as (rows, cols, flip_y, flip_x).

    Examples
    --------
    >>> parse_detsec("[2048:1,1:100]")
    (slice(0, 100, None), slice(0, 2048, None), False, True)
    """
    m = re.fullmatch(r"\s*\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]\s*", str(section))
    if not m:
        raise ValueError(f"not a FITS section: {section!r}")
    x1, x2, y1, y2 = (int(v) for v in m.groups())
    return (
        slice(min(y1, y2) - 1, max(y1, y2)),
        slice(min(x1, x2) - 1, max(x1, x2)),
        y1 > y2,
        x1 > x2,
    )


def assemble(amps: list[dict], mode: str = "poly", order: int = 3):
    """Electrons and saturation map of a frame read through one or more amplifiers.

    Each amplifier (``data``, ``trimsec``, ``biassec``, ``gain``, ``saturate`` in ADU,
    ``detsec``) is overscan-corrected with its own strip, trimmed, multiplied by its own
    gain and placed at its DETSEC; saturation is judged in its raw ADU. A single amplifier
    without DETSEC is returned as trimmed. The saturation map holds
    :data:`~fieldphot.flags.Flag` bits: ``SATURATED`` at or above ``saturate``,
    ``NONLINEAR`` at or above ``nonlinear`` (ADU, optional).

    Examples
    --------
    >>> import numpy as np
    >>> left = np.hstack([np.full((2, 3), 110.0), np.full((2, 2), 100.0)])   # bias 100, g=2
    >>> right = np.hstack([np.full((2, 3), 225.0), np.full((2, 2), 200.0)])  # bias 200, g=0.8
    >>> amp = lambda d, g, det: {"data": d, "trimsec": "[1:3,1:2]", "biassec": "[4:5,1:2]",
    ...                          "gain": g, "saturate": 6e4, "detsec": det}
    >>> e, sat = assemble([amp(left, 2.0, "[1:3,1:2]"), amp(right, 0.8, "[6:4,1:2]")], "median")
    >>> e[0].tolist()
    [20.0, 20.0, 20.0, 20.0, 20.0, 20.0]
    """
    parts = []
    for a in amps:
        rows, cols = parse_section(a["trimsec"]) if a.get("trimsec") else (slice(None),) * 2
        raw = a["data"][rows, cols]
        sat = np.zeros(raw.shape, np.uint8)
        for bit, level in (
            (Flag.SATURATED, a.get("saturate")),
            (Flag.NONLINEAR, a.get("nonlinear")),
        ):
            if level is not None:  # an inf pixel is bad (masked later), not saturated
                sat[(raw >= level) & (raw < np.inf)] |= np.uint8(bit)
        e = overscan_trim(a["data"], a.get("trimsec"), a.get("biassec"), mode, order)
        e *= np.float32(a["gain"])
        parts.append((e, sat, a.get("detsec")))
    if len(parts) == 1 and not parts[0][2]:
        return parts[0][0], parts[0][1]
    placed = [(parse_detsec(det), e, s) for e, s, det in parts]
    ny = max(r.stop for (r, _, _, _), _, _ in placed)
    nx = max(c.stop for (_, c, _, _), _, _ in placed)
    out, sat_out = np.full((ny, nx), np.nan, np.float32), np.zeros((ny, nx), np.uint8)
    for (r, c, fy, fx), e, s in placed:
        if e.shape != (r.stop - r.start, c.stop - c.start):
            raise ValueError(f"amplifier of shape {e.shape} does not fit DETSEC {r}, {c}")
        e, s = (v[::-1] if fy else v for v in (e, s))
        e, s = (v[:, ::-1] if fx else v for v in (e, s))
        out[r, c], sat_out[r, c] = e, s
    return out, sat_out


def sigma_clipped_mean(stack: np.ndarray, sigma: float = 3.0, iters: int = 3) -> np.ndarray:
    """Mean along axis 0 after iterative clipping about the median (robust sigma from MAD).

    Examples
    --------
    >>> import numpy as np
    >>> s = np.ones((5, 2, 2)); s[0, 0, 0] = 1000.0
    >>> float(sigma_clipped_mean(s)[0, 0])
    1.0
    """
    data = np.array(stack, np.float64)
    n = data.shape[0]
    for it in range(iters):
        # The first pass has no clipped (NaN) values: np.median is several times faster.
        med = np.median(data, axis=0) if it == 0 else np.nanmedian(data, axis=0)
        dev = np.abs(data - med)
        mad = 1.4826 * (np.median(dev, axis=0) if it == 0 else np.nanmedian(dev, axis=0))
        clip = dev > sigma * np.maximum(mad, 1e-12)
        if not clip.any():
            break
        # Never clip a pixel down to fewer than half its frames.
        keep_all = np.isfinite(data).sum(axis=0) - clip.sum(axis=0) < (n + 1) // 2
        clip &= ~keep_all
        data[clip] = np.nan
    return np.nanmean(data, axis=0)


def row_bands(ny: int, row_bytes: float, max_bytes: float = 256e6):
    """Slices of at most ``max_bytes / row_bytes`` rows covering ``ny`` rows: how large
    frames are worked on a band at a time in bounded memory.

    Examples
    --------
    >>> [(b.start, b.stop) for b in row_bands(10, row_bytes=100, max_bytes=400)]
    [(0, 4), (4, 8), (8, 10)]
    """
    step = max(1, int(max_bytes // max(row_bytes, 1)))
    return [slice(r0, min(r0 + step, ny)) for r0 in range(0, ny, step)]


def combine_in_chunks(
    stack, sigma: float = 3.0, max_bytes: float = 512e6, reducer=None
) -> np.ndarray:
    """:func:`sigma_clipped_mean` of a (frames, rows, cols) stack, a band of rows at a time.

    ``stack`` may live on disk (:class:`fieldphot.io.ScratchStack`): only one band (about
    ``max_bytes`` of working memory) is ever in memory, so hundreds of large frames combine
    in bounded RAM. ``reducer(band)`` replaces the sigma-clipped mean when given. The
    result is float32 (what masters are stored as).

    Examples
    --------
    >>> import numpy as np
    >>> s = np.random.default_rng(0).normal(10, 1, (5, 64, 8))
    >>> np.allclose(combine_in_chunks(s, max_bytes=2000), sigma_clipped_mean(s))
    True
    """
    n, ny, nx = stack.shape
    out = np.empty((ny, nx), np.float32)
    for rows in row_bands(ny, n * nx * 8 * 4, max_bytes):  # float64 band and its working copies
        band = np.asarray(stack[:, rows])
        out[rows] = sigma_clipped_mean(band, sigma) if reducer is None else reducer(band)
    return out


def master_input(
    kind: str, frame_e: np.ndarray, exptime: float, bias=None, dark=None, flat=None
) -> np.ndarray:
    """What a master combines from one frame: bias (e-), dark rate (e-/s), flat (unit
    median, after bias and scaled dark), or for a ``skydark`` the rate of what a science
    frame holds beyond its sky (see :func:`sky_dark_input`)."""
    if kind == "bias":
        return frame_e
    if kind == "skydark":
        return sky_dark_input(frame_e, exptime, bias, flat)
    d = frame_e - (0.0 if bias is None else bias)
    if kind == "dark":
        return d / float(exptime)
    if kind == "flat":
        d = d - (0.0 if dark is None else dark * float(exptime))
        return d / np.median(d)
    raise ValueError(f"unknown master kind {kind!r}")


def sky_dark_input(
    frame_e, exptime: float, bias=None, flat=None, nsigma: float = 3.0, grow: int = 3
) -> np.ndarray:
    """Dark current and glow (e-/s) left in a science frame once its sky is removed.

    The sky is modelled as a constant times the flat (what illumination does); what remains
    beyond it, with sources masked (NaN, grown by ``grow`` pixels), is additive signal that
    a dark frame would have measured. Combined over a night's frames by a median, it stands
    in for missing darks.

    Examples
    --------
    >>> import numpy as np
    >>> glow = np.tile(np.linspace(0, 50, 40), (30, 1))
    >>> frame = 1000.0 + glow; frame[10, 10] = 9e4  # a star
    >>> r = sky_dark_input(frame, 100.0)
    >>> bool(np.isnan(r[10, 10])), round(float(np.nanmax(r) - np.nanmin(r)), 2)
    (True, 0.5)
    """
    from scipy.ndimage import binary_dilation

    d = np.asarray(frame_e, float) - (0.0 if bias is None else bias)
    f = 1.0 if flat is None else np.where(np.isfinite(flat) & (flat > 0.05), flat, 1.0)
    resid = d - np.nanmedian(d / f) * f
    sigma = 1.4826 * np.nanmedian(np.abs(resid - np.nanmedian(resid)))
    sources = binary_dilation(
        resid - np.nanmedian(resid) > nsigma * max(sigma, 1e-9), iterations=grow
    )
    rate = resid / float(exptime)
    rate[sources] = np.nan
    return rate


def nan_median(stack: np.ndarray) -> np.ndarray:
    """Median along axis 0 ignoring NaN; NaN (without a warning) where every value is NaN."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        return np.nanmedian(stack, axis=0)


def smooth_map(data: np.ndarray, box: int = 64) -> np.ndarray:
    """Large-scale structure of a map with NaN holes: sep's background mesh, interpolated."""
    import sep

    bad = ~np.isfinite(data)
    filled = np.where(bad, np.nanmedian(data), data)
    bkg = sep.Background(
        np.ascontiguousarray(filled, np.float64), mask=bad, bw=box, bh=box, fw=3, fh=3
    )
    return bkg.back()


def sample(image: np.ndarray, max_pixels: float = 4e6) -> np.ndarray:
    """A regular grid of at most about ``max_pixels`` of ``image`` (a view; the image
    itself when smaller): robust statistics of a large frame without frame-sized copies.

    Examples
    --------
    >>> import numpy as np
    >>> sample(np.zeros((4000, 3000))).shape, sample(np.zeros((100, 100))).shape
    ((2000, 1500), (100, 100))
    """
    step = max(1, int(np.ceil(np.sqrt(image.size / max_pixels))))
    return image[::step, ::step]


def pedestal(data_e: np.ndarray, read_noise: float, box: int = 1024) -> tuple[float, dict]:
    """The additive offset (e-) left in a frame read with no bias frames and no overscan,
    from its sky: a sky of S e- above the offset has a variance of S + read noise²
    (Poisson), so offset = level - variance + read noise². The variance comes from
    differences of neighbouring pixels (blind to gradients and, through the MAD, to
    stars) in the central ``box`` x ``box`` pixels. Uncorrected pixel-to-pixel response
    (no flat) counts as noise, so the offset is if anything too small: the error model
    then matches the scatter measured.

    Returns the offset (0 to the sky level) and the numbers behind it.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(2)
    >>> frame = 1800.0 + rng.poisson(300.0, (400, 400)) + rng.normal(0, 6.0, (400, 400))
    >>> off, info = pedestal(frame, 6.0)
    >>> bool(abs(off - 1800) < 40)
    True
    """
    ny, nx = data_e.shape
    y0, x0 = max((ny - box) // 2, 0), max((nx - box) // 2, 0)
    crop = np.asarray(data_e[y0 : y0 + box, x0 : x0 + box], float)
    level = float(np.nanmedian(crop))
    d = np.diff(crop, axis=1).ravel()
    d = d[np.isfinite(d)]
    var = (1.4826 * float(np.median(np.abs(d - np.median(d))))) ** 2 / 2.0
    off = float(np.clip(level - var + read_noise**2, 0.0, level))
    return off, {"level": level, "variance": var}


def master_noise(first: np.ndarray, combined: np.ndarray, n: int) -> float:
    """Per-pixel 1-sigma error of a master combined from ``n`` frames (its units).

    One input frame differs from the mean of N by noise of variance
    ``sigma^2 (1 - 1/N)``; the mean's error is ``sigma / sqrt(N)``. The robust spread (MAD)
    ignores stars and hits.
    """
    if n < 2:
        return float("nan")
    d = np.asarray(sample(first), float) - sample(combined)
    sigma = 1.4826 * np.nanmedian(np.abs(d - np.nanmedian(d))) / np.sqrt(1.0 - 1.0 / n)
    return float(sigma / np.sqrt(n))


def hot_pixels(dark_rate: np.ndarray, nsigma: float = 8.0, min_rate: float = 1.0) -> np.ndarray:
    """Boolean map of hot pixels: dark rate far above the robust spread and ``min_rate``."""
    rates = np.asarray(sample(dark_rate), float)
    med = np.nanmedian(rates)
    mad = 1.4826 * np.nanmedian(np.abs(rates - med))
    return (dark_rate > med + nsigma * mad) & (dark_rate > med + min_rate)


def bad_flat_pixels(flat: np.ndarray, low: float = 0.5, high: float = 1.5) -> np.ndarray:
    """Boolean map of pixels whose flat response is outside [low, high] or not finite."""
    return ~np.isfinite(flat) | (flat < low) | (flat > high)


def calibrate_frame(
    data_e: np.ndarray,
    exptime: float,
    read_noise: float,
    saturated: np.ndarray,
    bias: np.ndarray | None = None,
    dark: np.ndarray | None = None,
    flat: np.ndarray | None = None,
    bad: np.ndarray | None = None,
    master_errors: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calibrate one overscan-corrected, trimmed frame in electrons.

    Parameters
    ----------
    data_e : ndarray
        Frame in electrons (gain applied), overscan removed and trimmed.
    exptime, read_noise : float
        Exposure time (s) and read noise (e-).
    saturated : ndarray of int
        ``SATURATED`` and ``NONLINEAR`` bits judged in raw ADU (see :func:`assemble`); a
        boolean array marks saturation only.
    bias, dark, flat : ndarray, optional
        Masters: bias (e-), dark current (e-/s), flat (unit median). Missing masters
        are skipped (the caller flags the frame).
    bad : ndarray of bool, optional
        Bad pixels from the masters.
    master_errors : (float, float, float)
        Per-pixel 1-sigma errors of the bias (e-), dark (e-/s) and flat (relative)
        masters, propagated into ERR.

    Returns
    -------
    sci, err, mask : ndarray
        Electrons, their 1-sigma error from the CCD equation, and bit flags.

    Examples
    --------
    >>> import numpy as np
    >>> sci, err, mask = calibrate_frame(np.full((2, 2), 110.0), 10.0, 5.0,
    ...                                  np.zeros((2, 2), bool), bias=np.full((2, 2), 10.0))
    >>> float(sci[0, 0]), float(err[0, 0])
    (100.0, 11.180339887498949)
    """
    nonfinite = ~np.isfinite(data_e)
    if nonfinite.any():  # a few NaN/inf pixels: masked and filled with the median
        data_e = np.where(nonfinite, np.nanmedian(data_e), data_e)
    sci = data_e - (0.0 if bias is None else bias)
    dark_e = 0.0 if dark is None else dark * exptime
    sci = sci - dark_e
    var = np.maximum(sci + np.maximum(dark_e, 0.0), 0.0) + read_noise**2
    e_bias, e_dark, e_flat = (0.0 if not np.isfinite(v) else v for v in master_errors)
    var = var + e_bias**2 * (bias is not None) + (e_dark * exptime) ** 2 * (dark is not None)
    mask = np.zeros(sci.shape, np.int32)
    if saturated.dtype == bool:
        mask[saturated] |= Flag.SATURATED
    else:
        mask |= saturated.astype(np.int32) & (Flag.SATURATED | Flag.NONLINEAR)
    mask[nonfinite] |= Flag.BAD_PIXEL
    if bad is not None:
        mask[bad] |= Flag.BAD_PIXEL
    if flat is not None:
        good = np.isfinite(flat) & (flat > 0.05)
        f = np.where(good, flat, 1.0)
        sci = sci / f
        var = var / f**2 + (sci * e_flat) ** 2
        mask[~good] |= Flag.BAD_PIXEL
    return sci, np.sqrt(var), mask


def point_sources(
    image: np.ndarray,
    mask: np.ndarray | None = None,
    thresh: float = 5.0,
    max_sharpness: float = 0.5,
    min_roundness: float = 0.3,
    grow: int = 2,
    background=None,
) -> np.ndarray:
    """Boolean map of the pixels of every source shaped like the image's point spread
    function (or saturated): what cosmic-ray cleaning must never touch.

    Sources are found with sep and judged on the 3 x 3 pixels about their peak (sky
    removed): their *sharpness* (peak over the sum) and *roundness* (the smaller over
    the larger eigenvalue of the light's second moments there). A star is round (a
    cosmic-ray track of 2-3 pixels is a line, roundness 0) and no sharper than the
    image's stars allow: a pixel-integrated Gaussian of FWHM 1.2 px has a sharpness of
    0.45 at most, a one-pixel hit 1, a two-pixel hit 0.5. The limit is ``max_sharpness``
    or, when the image's bright round sources give a softer reference (well-sampled
    seeing), their median plus 0.15. A source with a saturated or masked pixel (``mask``)
    is always kept. Each kept source's pixels are grown by ``grow`` pixels.
    ``background``: the image's ``sep.Background`` when already made (64 px meshes).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> img = rng.normal(100.0, 5.0, (64, 64)).astype(np.float32)
    >>> yy, xx = np.mgrid[:64, :64]
    >>> img += 3000 * np.exp(-((xx - 20.3) ** 2 + (yy - 30.6) ** 2) / (2 * 0.65**2))  # FWHM 1.5
    >>> img[45, 50:53] += 1000.0  # a three-pixel track
    >>> keep = point_sources(img)
    >>> bool(keep[31, 20]), bool(keep[45, 51])
    (True, False)
    """
    import sep
    from scipy.ndimage import binary_dilation

    data = np.ascontiguousarray(image, np.float32)
    bad = None if mask is None else np.ascontiguousarray(mask, bool)
    bkg = background if background is not None else sep.Background(data, mask=bad, bw=64, bh=64)
    sub = data - bkg.back(dtype=np.float32)
    try:
        objs, seg = sep.extract(
            sub, thresh, err=bkg.globalrms, mask=bad, minarea=3, segmentation_map=True
        )
    except Exception:  # sep's buffers overflowed (a crowded field): protect everything
        return np.ones(data.shape, bool)
    if len(objs) == 0:
        return np.zeros(data.shape, bool)
    ny, nx = data.shape
    xp, yp = np.clip(objs["xpeak"], 1, nx - 2), np.clip(objs["ypeak"], 1, ny - 2)
    d = np.array([(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], float)
    box = np.maximum(np.stack([sub[yp + int(dy), xp + int(dx)] for dx, dy in d], axis=1), 0)
    total = np.maximum(box.sum(axis=1), 1e-30)
    sharp = box[:, 4] / total
    w = box / total[:, None]
    mx, my = w @ d[:, 0], w @ d[:, 1]
    ixx, iyy, ixy = w @ d[:, 0] ** 2 - mx**2, w @ d[:, 1] ** 2 - my**2, w @ (d[:, 0] * d[:, 1])
    ixy = ixy - mx * my
    half, root = (ixx + iyy) / 2, np.sqrt(((ixx - iyy) / 2) ** 2 + ixy**2)
    roundness = np.where(half + root > 0, (half - root) / np.maximum(half + root, 1e-30), 0.0)
    round_ = roundness >= min_roundness
    bright = round_ & (sharp < max_sharpness) & (objs["peak"] > 20 * bkg.globalrms)
    limit = max_sharpness
    if bright.sum() >= 5:
        limit = min(max_sharpness, float(np.median(sharp[bright])) + 0.15)
    star = round_ & (sharp <= limit)
    if bad is not None:
        touched = np.zeros(len(objs) + 1, bool)
        touched[np.unique(seg[bad])] = True
        star |= touched[1:]
    keep = np.zeros(len(objs) + 1, bool)
    keep[1:] = star
    return binary_dilation(keep[seg], iterations=grow)


def laplacian_candidates(
    image: np.ndarray,
    read_noise: float,
    sigclip: float,
    bad: np.ndarray | None = None,
    background=None,
) -> np.ndarray:
    """Boolean map of the pixels that can pass L.A.Cosmic's first test: everywhere else
    a pass of it finds nothing, so it need not be run there.

    L.A.Cosmic's Laplacian of a pixel ``p`` (the image subsampled 2 x 2, convolved with
    the Laplacian kernel, negative values clipped, binned back) is the mean over its four
    sub-pixels of ``max(2 p - h - v, 0)``, ``h`` a left or right and ``v`` an upper or
    lower neighbour; a cosmic ray needs it above ``2 * sigclip`` times the pixel's noise.
    The noise here is the sky's (sep's background map plus the read noise, in e-), which
    is never above L.A.Cosmic's own local estimate except where the sky dips below the
    background map: the limit is lowered by 10 % for that. ``background``: the image's
    ``sep.Background`` when already made.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.random.default_rng(1).normal(100.0, 10.0, (64, 64)).astype(np.float32)
    >>> img[30, 40] += 500.0
    >>> c = laplacian_candidates(img, 10.0, 4.5)
    >>> bool(c[30, 40]), int(c.sum()) < 5
    (True, True)
    """
    import sep

    data = np.ascontiguousarray(image, np.float32)
    bkg = background if background is not None else sep.Background(data, mask=bad, bw=64, bh=64)
    noise = np.sqrt(np.maximum(bkg.back(dtype=np.float32), 0) + np.float32(read_noise) ** 2)
    p = np.pad(data, 1, mode="edge")
    twice = 2 * data
    lap = np.zeros_like(data)
    for h in (p[1:-1, :-2], p[1:-1, 2:]):
        for v in (p[:-2, 1:-1], p[2:, 1:-1]):
            lap += np.maximum(twice - h - v, 0)
    found = lap / 4 > 0.9 * 2 * sigclip * noise
    return found if bad is None else found & ~bad


def _stamps(ys, xs, shape, reach: int = 8, margin: int = 8, cell: int = 4):
    """(core, padded) box pairs covering every pixel within ``reach`` of the pixels
    ``(ys, xs)``, near ones merged; each padded by ``margin`` (clipped to ``shape``)."""
    from scipy import ndimage

    ny, nx = shape
    grid = np.zeros((-(-ny // cell), -(-nx // cell)), bool)
    grid[np.asarray(ys) // cell, np.asarray(xs) // cell] = True
    square = np.ones((3, 3), bool)
    grid = ndimage.binary_dilation(grid, square, iterations=-(-reach // cell))
    boxes = []
    for sy, sx in ndimage.find_objects(ndimage.label(grid, square)[0]):
        core = (
            slice(sy.start * cell, min(sy.stop * cell, ny)),
            slice(sx.start * cell, min(sx.stop * cell, nx)),
        )
        boxes.append((core, _padded(core, shape, margin)))
    return boxes


def _padded(core, shape, margin):
    return tuple(
        slice(max(s.start - margin, 0), min(s.stop + margin, n))
        for s, n in zip(core, shape, strict=True)
    )


def clean_cosmic_rays(
    sci: np.ndarray,
    mask: np.ndarray,
    read_noise: float,
    saturation_e: float,
    *,
    sigclip: float = 4.5,
    objlim: float = 5.0,
    niter: int = 4,
    max_bytes: float = 64e6,
    overlap: int = 32,
    out: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Find cosmic rays with L.A.Cosmic (astroscrappy); return the cleaned image and mask.

    Pixels found are replaced by astroscrappy's interpolation and get ``COSMIC_RAY``,
    except on point sources (:func:`point_sources`): L.A.Cosmic takes the cores of
    undersampled stars (FWHM of 2 px or less) for hits, and no star is ever cleaned.

    L.A.Cosmic is local (a pass at a pixel reads some 8 pixels about it), and costs
    about a microsecond per pixel per pass, so it is run only where it can find
    something: ``niter`` passes (astroscrappy's iterations, one call each), the first
    about the pixels that can pass its Laplacian test (:func:`laplacian_candidates`,
    outside the point sources), each later one about the pixels the pass before it
    cleaned, on stamps padded by the reach of a pass (8 pixels). When the first pass's stamps would
    cover half the frame it is run on the whole frame, in bands of about ``max_bytes``
    that see ``overlap`` rows of their neighbours. Memory stays bounded; ``out=(image,
    mask)`` receives the result and may be ``(sci, mask)`` themselves (cleaned in place).

    Examples
    --------
    >>> import numpy as np
    >>> img = np.random.default_rng(1).normal(100.0, 10.0, (64, 64)).astype(np.float32)
    >>> img[30, 40] += 5000.0  # a one-pixel hit
    >>> clean, m = clean_cosmic_rays(img, np.zeros(img.shape, np.int32), 10.0, 1e9)
    >>> bool(m[30, 40] & Flag.COSMIC_RAY), float(clean[30, 40]) < 200.0
    (True, True)
    """
    import astroscrappy
    import sep

    ny, nx = sci.shape
    image, mask_out = out if out is not None else (np.array(sci, np.float32), mask.copy())
    masked = Flag.SATURATED | Flag.BAD_PIXEL
    bands = row_bands(ny, nx * 4, max(max_bytes, overlap * nx * 4))
    stars = np.zeros(sci.shape, bool)
    seeds = []
    for rows in bands:
        pad = _padded((rows,), (ny,), overlap)[0]
        band = np.ascontiguousarray(sci[pad], np.float32)
        bad = any_set(mask[pad], masked)
        keep = slice(rows.start - pad.start, rows.stop - pad.start)
        bkg = sep.Background(band, mask=bad, bw=64, bh=64)
        stars[rows] = point_sources(band, bad, background=bkg)[keep]
        ys, xs = np.nonzero(laplacian_candidates(band, read_noise, sigclip, bad, bkg)[keep])
        seeds.append((ys + rows.start, xs))
    ys, xs = (np.concatenate(c) for c in zip(*seeds, strict=True))
    outside = ~stars[ys, xs]
    ys, xs = ys[outside], xs[outside]
    kwargs = {
        "gain": 1.0,
        "readnoise": float(read_noise),
        "satlevel": float(saturation_e),
        "sigclip": sigclip,
        "objlim": objlim,
        "niter": 1,
    }
    for i in range(niter):
        if len(ys) == 0:
            break
        # A first pass finds the candidates and their neighbours; a later one, anything
        # within its reach of what the pass before changed.
        boxes = _stamps(ys, xs, sci.shape, reach=2 if i == 0 else 8)
        area = sum((p[0].stop - p[0].start) * (p[1].stop - p[1].start) for _, p in boxes)
        if i == 0 and area > 0.5 * ny * nx:
            every = slice(0, nx)
            boxes = [((r, every), (_padded((r,), (ny,), overlap)[0], every)) for r in bands]
        found = []
        for core, pad in boxes:
            crmask, cleaned = astroscrappy.detect_cosmics(
                np.asarray(image[pad], np.float32), inmask=any_set(mask[pad], masked), **kwargs
            )
            inner = tuple(
                slice(c.start - p.start, c.stop - p.start) for c, p in zip(core, pad, strict=True)
            )
            new = crmask[inner].astype(bool) & ~stars[core]
            new &= ~any_set(mask_out[core], Flag.COSMIC_RAY)
            y, x = np.nonzero(new)
            found.append((y + core[0].start, x + core[1].start, cleaned[inner][new]))
        ys, xs, values = (np.concatenate(c) for c in zip(*found, strict=True))
        image[ys, xs] = values
        mask_out[ys, xs] |= Flag.COSMIC_RAY
    return image, mask_out


class UnusableFrame(ValueError):
    """A raw frame (or one of its amplifiers) that cannot be calibrated; the message says
    why (the calibrate stage adds the file name)."""


def raw_electrons(amps, row: dict, overscan: dict, nonlinearity_adu=None):
    """Raw amplifiers -> overscan-subtracted, trimmed, assembled electrons; the saturation
    map (raw ADU); and the (x, y) offset of the result in raw pixels.

    ``amps`` are (data, header) pairs (:func:`fieldphot.io.read_amplifiers`). A
    multi-extension frame is one amplifier per extension, each with its own TRIMSEC or
    DATASEC, BIASSEC, GAIN and DETSEC; a single image uses the manifest ``row``'s values
    (and its ``amplifiers`` when several share the image). ``overscan``: config
    ``calibration.overscan``.

    Raises
    ------
    UnusableFrame
        No finite pixels, constant, mostly saturated, or an amplifier without DETSEC.

    Examples
    --------
    >>> import numpy as np
    >>> raw = np.full((4, 6), 1100.0); raw[:, 4:] = 100.0
    >>> row = {"trimsec": "[1:4,1:4]", "biassec": "[5:6,1:4]", "gain": 2.0, "saturate": None}
    >>> data, sat, offset = raw_electrons([(raw, {})], row, {"mode": "median", "order": 0})
    >>> float(data.mean()), offset
    (2000.0, (0, 0))
    """
    if len(amps) == 1 and row.get("amplifiers"):  # several amplifiers in one image
        specs = [
            {
                **a,
                "data": amps[0][0],
                "saturate": row.get("saturate"),
                "nonlinear": nonlinearity_adu,
            }
            for a in json.loads(row["amplifiers"])
        ]
        offset = (0, 0)
    elif len(amps) == 1:
        specs = [
            {
                "data": amps[0][0],
                "trimsec": row.get("trimsec"),
                "biassec": row.get("biassec"),
                "gain": row["gain"],
                "saturate": row.get("saturate") if is_number(row.get("saturate")) else None,
                "nonlinear": nonlinearity_adu,
            }
        ]
        rows, cols = (
            parse_section(row["trimsec"])
            if row.get("trimsec")
            else (slice(0, None), slice(0, None))
        )
        offset = (cols.start, rows.start)
    else:
        specs = [_amp_spec(data, h, row, nonlinearity_adu) for data, h in amps]
        offset = (0, 0)
    for spec in specs:
        problem = raw_problem(spec["data"], spec.get("saturate"))
        if problem:
            raise UnusableFrame(problem)
    data, saturated = assemble(specs, overscan["mode"], overscan["order"])
    return data, saturated, offset


def _amp_spec(data, h, row, nonlinear) -> dict:
    kw = headers.DEFAULT_PROFILE.keywords
    spec = {
        "data": data,
        "trimsec": headers.first(h, kw["trimsec"]),
        "biassec": headers.first(h, kw["biassec"]),
        "detsec": h.get("DETSEC"),
        "gain": headers.to_float(headers.first(h, kw["gain"])) or row["gain"],
        "saturate": headers.to_float(headers.first(h, kw["saturate"])) or row.get("saturate"),
        "nonlinear": nonlinear,
    }
    if not spec["detsec"]:
        raise UnusableFrame(f"amplifier extension {h.get('EXTNAME', '?')} has no DETSEC")
    return spec


def is_number(v) -> bool:
    """A finite int or float (a manifest value that is there).

    >>> is_number(3.0), is_number(None), is_number(float("nan"))
    (True, False, False)
    """
    return v is not None and isinstance(v, int | float) and math.isfinite(v)
