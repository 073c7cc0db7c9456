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
from scipy.spatial import cKDTree

from .flags import Flag


def _c(a, dtype=np.float64):
    return np.ascontiguousarray(a, dtype=dtype)


def annulus_sky(
    sci: np.ndarray, bad: np.ndarray, x, y, r_in: float, r_out: float, clip: float = 3.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sigma-clipped median sky per position, its error, and the pixel count used.

    The error is ``1.2533 * std / sqrt(n)`` (the standard error of a median).
    """
    ny, nx = sci.shape
    sky = np.full(len(x), np.nan)
    sky_err = np.full(len(x), np.nan)
    nsky = np.zeros(len(x), int)
    ro = int(np.ceil(r_out))
    oy, ox = np.mgrid[-ro : ro + 1, -ro : ro + 1]
    for i, (xi, yi) in enumerate(zip(x, y, strict=True)):
        xc, yc = int(round(xi)), int(round(yi))
        ya, yb, xa, xb = (
            max(yc - ro, 0),
            min(yc + ro + 1, ny),
            max(xc - ro, 0),
            min(xc + ro + 1, nx),
        )
        if ya >= yb or xa >= xb:
            continue
        cy = oy[ya - yc + ro : yb - yc + ro, xa - xc + ro : xb - xc + ro] + yc - yi
        cx = ox[ya - yc + ro : yb - yc + ro, xa - xc + ro : xb - xc + ro] + xc - xi
        r2 = cx**2 + cy**2
        sel = (r2 >= r_in**2) & (r2 <= r_out**2) & ~bad[ya:yb, xa:xb]
        v = sci[ya:yb, xa:xb][sel]
        for _ in range(5):
            if v.size < 5:
                break
            med, std = np.median(v), np.std(v)
            keep = np.abs(v - med) < clip * std
            if keep.all():
                break
            v = v[keep]
        if v.size >= 5:
            sky[i], sky_err[i], nsky[i] = np.median(v), 1.2533 * np.std(v) / np.sqrt(v.size), v.size
    return sky, sky_err, nsky


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

    Returns a table with ``flux, flux_err, sky, sky_err, n_sky, area, flags``.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    out = pd.DataFrame(
        {
            "flux": np.full(n, np.nan),
            "flux_err": np.nan,
            "sky": np.nan,
            "sky_err": np.nan,
            "n_sky": 0,
            "area": np.pi * r_ap**2,
            "flags": np.zeros(n, np.int32),
        }
    )
    if n == 0:
        return out
    bad = (mask & (Flag.SATURATED | Flag.BAD_PIXEL | Flag.COSMIC_RAY)) != 0
    sky, sky_err, nsky = annulus_sky(sci, bad, x, y, r_in, r_out)
    s, _, sflag = sep.sum_circle(_c(sci), x, y, r_ap, subpix=0)
    var, _, _ = sep.sum_circle(_c(err**2), x, y, r_ap, subpix=0)
    area = np.pi * r_ap**2
    flux = s - area * sky
    flux_err = np.sqrt(var + (area * sky_err) ** 2)
    flags = np.zeros(n, np.int32)
    for bit in (Flag.SATURATED, Flag.BAD_PIXEL, Flag.COSMIC_RAY, Flag.NONLINEAR):
        hit = sep.sum_circle(_c((mask & bit) != 0), x, y, r_ap, subpix=1)[0] > 0
        flags[hit] |= bit
    ny, nx = sci.shape
    edge = (x - r_ap < -0.5) | (y - r_ap < -0.5) | (x + r_ap > nx - 0.5) | (y + r_ap > ny - 0.5)
    # An annulus cut by the frame edge is fine as long as it keeps enough sky pixels.
    few_sky = nsky < 0.5 * np.pi * (r_out**2 - r_in**2) * 0.5
    flags[edge | few_sky | (sflag != 0)] |= Flag.EDGE
    flags[~np.isfinite(flux) | (flux <= 0)] |= Flag.NEGATIVE_FLUX
    out["flux"], out["flux_err"], out["sky"], out["sky_err"] = flux, flux_err, sky, sky_err
    out["n_sky"], out["area"], out["flags"] = nsky, area, flags
    return out


def _disc_samples(r: float) -> np.ndarray:
    """Offsets of 19 points spread evenly over a disc of radius ``r`` (centre + 2 rings)."""
    pts = [(0.0, 0.0)]
    for rad, n in ((0.45, 6), (0.85, 12)):
        a = 2 * np.pi * (np.arange(n) + 0.5 * (n == 12)) / n
        pts += list(zip(rad * r * np.cos(a), rad * r * np.sin(a), strict=True))
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
    fwhm, r_ap : float
        The frame's FWHM and the aperture radius (px).
    measured : array of bool, optional
        Which stars need the estimate (default all); every star counts as a neighbour.

    Examples
    --------
    >>> f = neighbour_contamination([0, 18], [0, 0], [11.5, 18.9], fwhm=4.0, r_ap=8.0)
    >>> bool(f[1] > 1.0), bool(f[0] < 1e-3)
    (True, True)
    """
    x, y, mag = (np.asarray(v, float) for v in (x, y, mag))
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
    disc = _disc_samples(r_ap)
    dx = x[j][:, None] - (x[i][:, None] + disc[None, :, 0])
    dy = y[j][:, None] - (y[i][:, None] + disc[None, :, 1])
    prof = (beta - 1) / (np.pi * alpha**2) * (1 + (dx**2 + dy**2) / alpha**2) ** (-beta)
    share = np.minimum(prof.mean(axis=1) * np.pi * r_ap**2, 1.0)
    np.add.at(frac, i, share * flux[j] / flux[i])
    return frac


def aperture_correction(
    sci, err, mask, x, y, r_ap, r_big, r_in, r_out, usable, min_stars: int = 3
) -> tuple[float, float, int]:
    """Ratio of large- to small-aperture flux from bright, clean, isolated stars.

    Returns (correction, its error, number of stars); (1, 0, n) when fewer than
    ``min_stars`` stars qualify.
    """
    idx = np.flatnonzero(usable)
    if len(idx) < min_stars:
        return 1.0, 0.0, len(idx)
    small = aperture_photometry(sci, err, mask, x[idx], y[idx], r_ap, r_in, r_out)
    big = aperture_photometry(sci, err, mask, x[idx], y[idx], r_big, r_in, r_out)
    ok = ((small["flags"] == 0) & (big["flags"] == 0) & (small["flux"] > 0)).to_numpy()
    ratio = (big["flux"] / small["flux"]).to_numpy()[ok]
    if len(ratio) < min_stars:
        return 1.0, 0.0, len(ratio)
    # Local background structure, not photon noise, dominates the large aperture's error,
    # so every star gets the same weight: a clipped median with its standard error.
    med = np.median(ratio)
    mad = 1.4826 * np.median(np.abs(ratio - med))
    good = np.abs(ratio - med) < 3 * max(mad, 1e-4)
    med = float(np.median(ratio[good]))
    return med, float(1.2533 * np.std(ratio[good]) / np.sqrt(good.sum())), int(good.sum())


def limiting_flux(sky_sigma_pix: float, area: float, nsigma: float = 5.0) -> float:
    """Flux (e-) detected at ``nsigma`` in an aperture of ``area`` pixels on sky noise.

    Solves ``F / sqrt(F + area * sigma^2) = nsigma``.

    Examples
    --------
    >>> round(limiting_flux(10.0, 100.0), 1)
    512.7
    """
    v = area * sky_sigma_pix**2
    return float((nsigma**2 + np.sqrt(nsigma**4 + 4 * nsigma**2 * v)) / 2.0)
