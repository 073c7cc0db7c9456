"""WCS models: read from headers, built from a pointing, fitted to matched stars, stored.

Pixels are 0-based as astropy uses them; FITS cards stay 1-based.

Examples
--------
>>> w = nominal_wcs(150.0, 20.0, 1.5, (100, 200))
>>> round(pixel_scale_arcsec(w), 3), w.wcs.crpix.tolist()
(1.5, [100.5, 50.5])
>>> wcs_from_string(wcs_to_string(w)).wcs.crval.tolist()
[150.0, 20.0]
"""

import warnings

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning, Sip
from astropy.wcs.utils import proj_plane_pixel_scales

from .headers import to_float


def is_wcs_key(key: str) -> bool:
    """Whether a header keyword belongs to a celestial WCS (linear part, SIP, TPV).

    Examples
    --------
    >>> is_wcs_key("CRVAL1"), is_wcs_key("A_2_0"), is_wcs_key("EXPTIME")
    (True, True, False)
    """
    return bool(key) and (
        key[:2] in ("CR", "CD", "PC", "PV", "A_", "B_", "AP", "BP")
        or key.startswith(("CTYPE", "CUNIT", "WCSAXES"))
        or key in ("EQUINOX", "EPOCH", "LONPOLE", "LATPOLE")
    )


def header_wcs(header: fits.Header) -> WCS | None:
    """A celestial WCS from a header, reading numbers stored as quoted strings; else None.

    Examples
    --------
    >>> h = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": "124.6",
    ...                  "CRVAL2": "25.3", "CRPIX1": 10, "CRPIX2": 10,
    ...                  "CD1_1": "-2.7e-4", "CD1_2": 0, "CD2_1": 0, "CD2_2": 2.7e-4})
    >>> header_wcs(h).wcs.crval.tolist()
    [124.6, 25.3]
    """
    h = header.copy()
    for key in list(h.keys()):
        if is_wcs_key(key):
            val = h[key]
            if isinstance(val, str) and to_float(val) is not None:
                h[key] = to_float(val)
    ctype = str(h.get("CTYPE1", ""))
    if not (ctype.startswith("RA") or ctype.startswith("GLON")):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            w = WCS(h, naxis=2, relax=True)
        except (ValueError, KeyError, MemoryError):
            return None
    if not w.has_celestial or not np.all(np.isfinite(w.wcs.crval)):
        return None
    try:
        scale = proj_plane_pixel_scales(w)
    except (ValueError, np.linalg.LinAlgError):
        return None
    return w if np.all(scale > 0) and np.all(np.isfinite(scale)) else None


def wcs_to_string(w: WCS) -> str:
    """Header cards of a WCS (with SIP when present) as one string."""
    return w.to_header(relax=True).tostring()


def wcs_from_string(text: str) -> WCS:
    """Inverse of :func:`wcs_to_string`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(fits.Header.fromstring(text), relax=True)


def pixel_scale_arcsec(w: WCS) -> float:
    """Mean pixel scale of a WCS in arcsec."""
    return float(np.mean(proj_plane_pixel_scales(w.celestial)) * 3600.0)


def _design(u, v, order: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    terms = [(p, q) for n in range(order + 1) for p in range(n, -1, -1) for q in [n - p]]
    return np.column_stack([u**p * v**q for p, q in terms]), terms


def fit_tan_sip(x, y, ra, dec, crval, crpix, sip_degree: int | None = None) -> WCS:
    """Least-squares TAN (or TAN-SIP) WCS through matched pixel/sky pairs.

    The tangent point is fixed at ``crval`` and the reference pixel at ``crpix`` (both
    0-based pixel and degrees). The intermediate world coordinates are fitted by a
    polynomial in pixel offsets (degree 1, or ``sip_degree``), which is exactly the
    TAN-SIP model: its linear part is the CD matrix, the rest the SIP ``A``/``B`` terms.
    The tangent point is then moved to the fitted world position of ``crpix`` and the fit
    repeated once, so the constant term vanishes.
    """
    order = max(1, int(sip_degree or 1))
    crval = np.asarray(crval, float)
    for _ in range(2):
        base = WCS(naxis=2)
        base.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        base.wcs.crval = crval
        base.wcs.crpix = [1.0, 1.0]
        base.wcs.cd = np.eye(2)
        xi, eta = base.wcs_world2pix(ra, dec, 0)  # intermediate world coordinates, degrees
        u, v = np.asarray(x) - crpix[0], np.asarray(y) - crpix[1]
        # Offsets scaled to about 1 in the design: u**5 of a wide frame's corner would
        # otherwise be 1e13 times u, past what double precision solves.
        s = max(float(np.max(np.abs(np.concatenate([u, v])), initial=0.0)), 1.0)
        design, terms = _design(u / s, v / s, order)
        powers = s ** np.array([p + q for p, q in terms], float)
        cxi = np.linalg.lstsq(design, xi, rcond=None)[0] / powers
        ceta = np.linalg.lstsq(design, eta, rcond=None)[0] / powers
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval = crval
        w.wcs.crpix = [crpix[0] + 1.0, crpix[1] + 1.0]
        cd = np.array([[cxi[1], cxi[2]], [ceta[1], ceta[2]]])
        w.wcs.cd = cd
        w.wcs.crpix = w.wcs.crpix - np.linalg.solve(cd, [cxi[0], ceta[0]])
        if order > 1:
            a = np.zeros((order + 1, order + 1))
            b = np.zeros((order + 1, order + 1))
            inv = np.linalg.inv(cd)
            for k, (p, q) in enumerate(terms):
                if p + q >= 2:
                    a[p, q], b[p, q] = inv @ [cxi[k], ceta[k]]
            w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
            w.sip = Sip(a, b, None, None, w.wcs.crpix)
        w.wcs.set()
        crval = np.array(w.wcs_pix2world([[crpix[0], crpix[1]]], 0)[0])
    return w


def nominal_wcs(ra: float, dec: float, scale_arcsec: float, shape) -> WCS:
    """North-up, east-left TAN WCS centred on (ra, dec) at the given pixel scale."""
    ny, nx = shape
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [(nx + 1) / 2.0, (ny + 1) / 2.0]
    w.wcs.cd = np.diag([-scale_arcsec / 3600.0, scale_arcsec / 3600.0])
    return w


def calibrated_header(raw_header: fits.Header, offset, step: int = 1) -> fits.Header:
    """The raw header without its structure cards, its WCS (read by :func:`header_wcs`,
    numbers fixed) shifted by ``offset`` (x, y), where the trimmed array starts in raw
    pixels, and with ``step`` raw pixels to one pixel (a colour frame's channel plane
    takes every other pixel: 2; its SIP terms are dropped): the calibrated frame's header.

    Examples
    --------
    >>> h = fits.Header({"NAXIS": 2, "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN",
    ...     "CRVAL1": 10.0, "CRVAL2": 20.0, "CRPIX1": 50.0, "CRPIX2": 60.0,
    ...     "CDELT1": -1e-4, "CDELT2": 1e-4, "OBJECT": "M1"})
    >>> out = calibrated_header(h, (8, 0))
    >>> out["CRPIX1"], out["OBJECT"], "NAXIS" in out
    (42.0, 'M1', False)
    >>> out = calibrated_header(h, (1, 0), 2)
    >>> out["CRPIX1"], out["CDELT1"]
    (25.0, -0.0002)
    """
    h = fits.Header()
    skip = {
        "SIMPLE",
        "BITPIX",
        "NAXIS",
        "NAXIS1",
        "NAXIS2",
        "EXTEND",
        "BZERO",
        "BSCALE",
        "EXTNAME",
        "XTENSION",
        "PCOUNT",
        "GCOUNT",
        "CHECKSUM",
        "DATASUM",
    }
    for card in raw_header.cards:
        if card.keyword not in skip and card.keyword not in ("", "COMMENT", "HISTORY"):
            h.append(card, end=True)
    wcs = header_wcs(raw_header)
    for key in [k for k in h if is_wcs_key(k)]:
        del h[key]
    if wcs is not None:
        wcs.wcs.crpix = (wcs.wcs.crpix - 1.0 - np.asarray(offset, float)) / step + 1.0
        if step != 1:
            if wcs.wcs.has_cd():
                wcs.wcs.cd = wcs.wcs.cd * step
            else:
                wcs.wcs.cdelt = wcs.wcs.cdelt * step
            wcs.sip = None
            wcs.wcs.ctype = [c.removesuffix("-SIP") for c in wcs.wcs.ctype]
        h.update(wcs.to_header(relax=True))
    return h
