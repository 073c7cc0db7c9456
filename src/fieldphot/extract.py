"""Source extraction with sep: background, detection, windowed centroids, FWHM.

Examples
--------
>>> import numpy as np
>>> from fieldphot.synthetic import _stamp, moffat_alpha
>>> rng = np.random.default_rng(0)
>>> img = rng.normal(100.0, 5.0, (64, 64))
>>> x0, y0, st = _stamp(30.3, 20.7, moffat_alpha(3.0, 3.0), 3.0, 15)
>>> img[y0:y0 + st.shape[0], x0:x0 + st.shape[1]] += 2e4 * st
>>> src, info = extract_sources(img, np.full(img.shape, 5.0), np.zeros(img.shape, np.int32))
>>> len(src), round(float(src["x"][0]), 1), round(float(src["y"][0]), 1)
(1, 30.3, 20.7)
>>> 2.6 < info["fwhm"] < 3.4
True
"""

from functools import partial

import numpy as np
import pandas as pd
import sep
from scipy import optimize
from scipy.spatial import cKDTree

from .calibration import row_bands
from .flags import Flag, any_set
from .photometry import moffat_alpha, native

SOURCE_COLUMNS = ["x", "y", "flux", "flux_err", "peak", "a", "b", "theta", "snr", "flags"]


def no_sources() -> pd.DataFrame:
    """A source table without rows, its columns typed as a full one's (float, and int32
    flags), so that every later step treats a frame without detections like any other.

    >>> no_sources().dtypes["flags"]
    dtype('int32')
    """
    return pd.DataFrame(
        {c: pd.Series(dtype=np.int32 if c == "flags" else float) for c in SOURCE_COLUMNS}
    )


def background(data: np.ndarray, mask: np.ndarray, box: int = 64, filter_size: int = 3):
    """sep background model of ``data`` ignoring flagged pixels."""
    return sep.Background(
        native(data), mask=native(mask != 0, bool), bw=box, bh=box, fw=filter_size, fh=filter_size
    )


def _moffat_jacobian(q, xx, yy) -> np.ndarray:
    """Derivatives of ``amp (1 + r^2/alpha^2)^-beta`` on the stamp ``xx, yy`` by (amp,
    dx, dy, alpha, beta): analytic, five times fewer profile evaluations than differences."""
    amp, dx, dy, alpha, beta = q
    r2 = ((xx - dx) ** 2 + (yy - dy) ** 2) / alpha**2
    base = (1.0 + r2) ** -beta
    inner = -beta * amp * base / (1.0 + r2)  # d f / d r2
    return np.column_stack(
        [
            base.ravel(),
            (inner * -2.0 * (xx - dx) / alpha**2).ravel(),
            (inner * -2.0 * (yy - dy) / alpha**2).ravel(),
            (inner * -2.0 * r2 / alpha).ravel(),
            (-np.log1p(r2) * amp * base).ravel(),
        ]
    )


def fwhm_moffat(sub: np.ndarray, x, y, peak, half: int = 8) -> np.ndarray:
    """FWHM (px) of each source from a circular Moffat fit with free centre and index.

    A Moffat profile with free ``beta`` describes seeing-limited stars (Trujillo et al.
    2001, MNRAS 328, 977) and, as ``beta`` grows, a Gaussian; the FWHM is
    ``2 alpha sqrt(2**(1/beta) - 1)``. Counting pixels above half the brightest pixel
    instead is quantised and biased high (the brightest pixel is below the true peak).
    Sources too close to the edge, or whose fit fails, get NaN.

    Examples
    --------
    >>> from fieldphot.synthetic import _stamp, moffat_alpha
    >>> img = np.zeros((40, 40))
    >>> x0, y0, st = _stamp(20.3, 19.6, moffat_alpha(3.5, 3.0), 3.0, 15)
    >>> img[y0:y0 + st.shape[0], x0:x0 + st.shape[1]] += 1e4 * st
    >>> round(float(fwhm_moffat(img, [20.3], [19.6], [img.max()])[0]), 1)  # pixel-integrated
    3.6
    """
    ny, nx = sub.shape
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(float)
    jac = partial(_moffat_jacobian, xx=xx, yy=yy)
    bounds = ([0, -2, -2, 0.3, 1.2], [np.inf, 2, 2, 2.0 * half, 20.0])
    out = np.full(len(x), np.nan)
    for i, (xi, yi, p) in enumerate(zip(x, y, peak, strict=True)):
        xc, yc = int(round(xi)), int(round(yi))
        if xc - half < 0 or yc - half < 0 or xc + half >= nx or yc + half >= ny or p <= 0:
            continue
        cut = (sub[yc - half : yc + half + 1, xc - half : xc + half + 1] / p).ravel()

        def resid(q, cut=cut):
            amp, dx, dy, alpha, beta = q
            return (
                amp * ((1.0 + ((xx - dx) ** 2 + (yy - dy) ** 2) / alpha**2) ** -beta).ravel() - cut
            )

        start = [1.0, xi - xc, yi - yc, 2.0, 3.0]
        # Levenberg-Marquardt (MINPACK) without bounds is some 2x faster than the bounded
        # trust-region fit and reaches the same minimum when that lies inside the bounds;
        # the bounded fit is run only where it does not.
        fit = optimize.least_squares(resid, start, jac=jac, method="lm")
        inside = np.all((fit.x >= bounds[0]) & (fit.x <= bounds[1]))
        if not (fit.success and inside):
            fit = optimize.least_squares(resid, start, jac=jac, bounds=bounds)
        if fit.success:
            alpha, beta = fit.x[3], fit.x[4]
            out[i] = alpha / moffat_alpha(1.0, beta)  # alpha is linear in the FWHM
    return out


def extract_sources(
    sci: np.ndarray,
    err: np.ndarray,
    mask: np.ndarray,
    thresh: float = 5.0,
    minarea: int = 5,
    box: int = 64,
    deblend_cont: float = 0.005,
) -> tuple[pd.DataFrame, dict]:
    """Detect sources and measure them.

    Parameters
    ----------
    sci, err, mask : ndarray
        Calibrated image (e-), its error (e-) and bit-flag mask.
    thresh : float
        Detection threshold in units of the pixel error.
    minarea : int
        Minimum connected pixels.
    box : int
        Background mesh size (pixels).
    deblend_cont : float
        sep deblending contrast.

    Returns
    -------
    sources : pandas.DataFrame
        ``x, y`` (0-based windowed centroids), ``flux`` (auto aperture, e-),
        ``flux_err``, ``peak``, ``a, b, theta``, ``snr``, ``flags``, sorted by flux.
    info : dict
        ``fwhm`` (px, median of bright isolated sources), ``sky`` (e-/px),
        ``sky_rms`` (e-/px), ``n_sources``.
    """
    bad = any_set(mask, Flag.BAD_PIXEL | Flag.SATURATED)
    bkg = background(sci, bad, box)
    # The background-subtracted image and the noise without the sources' own photons, a
    # band of rows at a time (no frame-sized temporaries): sub takes over the sky map.
    sub = native(bkg.back())
    noise = np.empty(sub.shape, sub.dtype)
    for rows in row_bands(sub.shape[0], sub.shape[1] * sub.itemsize * 8):
        sky = sub[rows]
        noise[rows] = np.sqrt(
            np.maximum(err[rows] ** 2 - np.maximum(sci[rows], 0) + np.maximum(sky, 0), 1e-6)
        )
        sky[...] = sci[rows] - sky
    objs = sep.extract(
        sub,
        thresh,
        err=noise,
        mask=bad & ~any_set(mask, Flag.SATURATED),
        minarea=minarea,
        deblend_cont=deblend_cont,
    )
    info = {
        "sky": float(bkg.globalback),
        "sky_rms": float(bkg.globalrms),
        "fwhm": np.nan,
        "n_sources": int(len(objs)),
    }
    if len(objs) == 0:
        return no_sources(), info
    src = _measure(sub, err, mask, objs["x"], objs["y"], objs, 3.0 * np.sqrt(objs["a"] * objs["b"]))
    fwhm = estimate_fwhm(sub, src)
    info["fwhm"] = fwhm
    if np.isfinite(fwhm):
        # Windowed centroids (as SExtractor's XWIN) with a Gaussian window of the frame's FWHM.
        x, y = objs["x"], objs["y"]
        xw, yw, wflag = sep.winpos(sub, x, y, np.full(len(x), fwhm / 2.3548))
        good = (wflag == 0) & np.isfinite(xw) & (np.hypot(xw - x, yw - y) < 0.5 * fwhm)
        src = _measure(
            sub,
            err,
            mask,
            np.where(good, xw, x),
            np.where(good, yw, y),
            objs,
            np.full(len(x), 2.0 * fwhm),
        )
    return src, info


def _measure(sub, err, mask, x, y, objs, radius) -> pd.DataFrame:
    r = np.clip(radius, 3.0, 30.0)
    flux, ferr, fflag = sep.sum_circle(sub, x, y, r, err=native(err), subpix=5)
    sat = sep.sum_circle(any_set(mask, Flag.SATURATED), x, y, r, subpix=1)[0] > 0
    flags = np.where(sat, int(Flag.SATURATED), 0) | np.where(fflag != 0, int(Flag.EDGE), 0)
    snr = np.divide(flux, ferr, out=np.zeros_like(flux), where=ferr > 0)
    src = pd.DataFrame(
        {
            "x": x,
            "y": y,
            "flux": flux,
            "flux_err": ferr,
            "peak": objs["peak"],
            "a": objs["a"],
            "b": objs["b"],
            "theta": objs["theta"],
            "snr": snr,
            "flags": flags.astype(np.int32),
        }
    )
    return src.sort_values("flux", ascending=False, ignore_index=True)


def estimate_fwhm(
    sub: np.ndarray, src: pd.DataFrame, min_snr: float = 30.0, n_max: int = 40
) -> float:
    """Median FWHM (px) of the ``n_max`` brightest unflagged sources with no neighbour."""
    cand = src[(src["flags"] == 0) & (src["snr"] > min_snr)].head(200)
    if len(cand) == 0:
        return float("nan")
    if len(src) > 1:
        nearest = cKDTree(src[["x", "y"]].to_numpy()).query(cand[["x", "y"]].to_numpy(), k=2)[0]
        isolated = nearest[:, 1] > 12
    else:
        isolated = np.ones(len(cand), bool)
    cand = cand[isolated].head(n_max)
    f = fwhm_moffat(sub, cand["x"].to_numpy(), cand["y"].to_numpy(), cand["peak"].to_numpy())
    f = f[np.isfinite(f)]
    return float(np.median(f)) if len(f) else float("nan")
