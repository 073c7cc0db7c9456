"""Astrometric solution: match detected sources to a reference catalog and fit a WCS.

Starting from an approximate WCS (the header's), :func:`solve` finds the offset
between detections and projected catalog stars from the peak of their pairwise offset
histogram, matches mutual nearest neighbours with a shrinking tolerance, and fits a
TAN (optionally TAN-SIP) WCS with sigma-clipped outlier rejection
(:func:`fit_tan_sip`, linear least squares). Pixels are 0-based throughout.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from astropy.wcs import WCS
>>> w = WCS(naxis=2); w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
>>> w.wcs.crval = [150, 20]; w.wcs.crpix = [257, 257]
>>> w.wcs.cd = [[-1.6e-4, 0], [0, 1.6e-4]]
>>> rng = np.random.default_rng(1)
>>> x, y = rng.uniform(0, 512, 80), rng.uniform(0, 512, 80)
>>> sky = w.pixel_to_world(x, y)
>>> ref = pd.DataFrame({"id": range(80), "ra": sky.ra.deg, "dec": sky.dec.deg,
...                     "mag": rng.uniform(12, 18, 80)})
>>> src = pd.DataFrame({"x": x + 5.0, "y": y - 3.0, "flux": 10 ** (-0.4 * ref["mag"]),
...                     "snr": 100.0, "flags": 0})
>>> wcs, matched, info = solve(src, ref, w, (512, 512))
>>> info["status"], info["n_match"], round(info["rms_px"], 3)
('ok', 80, 0.0)
"""

import warnings

import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning, Sip
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy.spatial import cKDTree

from .flags import Flag, any_set
from .headers import to_float

MATCH_COLUMNS = ["source", "id", "x", "y", "ra", "dec", "mag", "x_fit", "y_fit", "dx", "dy", "used"]

DEFAULTS = {
    "search_radius_arcsec": 60.0,
    "match_radius_px": 2.0,
    "n_bright": 200,
    "min_matches": 6,
    "sip_degree": 3,
    "sip_min_matches": 40,
    "clip_sigma": 3.0,
    "max_rms_arcsec": 1.5,
    "min_snr": 10.0,
}


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


def find_offset(xd, yd, xr, yr, radius: float, bin_px: float = 3.0) -> tuple[float, float, int]:
    """Most common (dx, dy) = detection - reference within ``radius``; and its vote count."""
    tree = cKDTree(np.column_stack([xr, yr]))
    pairs = tree.query_ball_point(np.column_stack([xd, yd]), r=radius)
    dx = np.concatenate([xd[i] - np.asarray(xr)[p] for i, p in enumerate(pairs) if p] or [[]])
    dy = np.concatenate([yd[i] - np.asarray(yr)[p] for i, p in enumerate(pairs) if p] or [[]])
    if len(dx) == 0:
        return 0.0, 0.0, 0
    edges = np.arange(-radius, radius + bin_px, bin_px)
    hist, ex, ey = np.histogram2d(dx, dy, bins=[edges, edges])
    # Sum 2x2 neighbouring bins so an offset on a bin edge still forms one peak.
    h2 = hist[:-1, :-1] + hist[1:, :-1] + hist[:-1, 1:] + hist[1:, 1:]
    i, j = np.unravel_index(np.argmax(h2), h2.shape)
    sel = (dx >= ex[i]) & (dx < ex[i + 2]) & (dy >= ey[j]) & (dy < ey[j + 2])
    return float(np.median(dx[sel])), float(np.median(dy[sel])), int(sel.sum())


def match_nearest(xd, yd, xr, yr, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest-neighbour pairs closer than ``tol``: (detection idx, reference idx)."""
    if len(xd) == 0 or len(xr) == 0:
        return np.array([], int), np.array([], int)
    d_to_r = cKDTree(np.column_stack([xr, yr])).query(
        np.column_stack([xd, yd]), distance_upper_bound=tol
    )
    r_to_d = cKDTree(np.column_stack([xd, yd])).query(np.column_stack([xr, yr]))
    idet = np.flatnonzero(np.isfinite(d_to_r[0]))
    iref = d_to_r[1][idet]
    mutual = r_to_d[1][iref] == idet
    return idet[mutual], iref[mutual]


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
        design, terms = _design(u, v, order)
        cxi, *_ = np.linalg.lstsq(design, xi, rcond=None)
        ceta, *_ = np.linalg.lstsq(design, eta, rcond=None)
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


def solve(
    sources: pd.DataFrame, ref: pd.DataFrame, guess: WCS, shape: tuple[int, int], **cfg
) -> tuple[WCS | None, pd.DataFrame, dict]:
    """Refine an approximate WCS by matching ``sources`` to ``ref``.

    Parameters
    ----------
    sources : DataFrame
        Detections with ``x, y`` (0-based), ``flux``, ``flags``.
    ref : DataFrame
        Reference stars with ``id, ra, dec, mag``.
    guess : astropy.wcs.WCS
        Approximate WCS of the frame (0-based pixels as astropy uses them).
    shape : (ny, nx)
        Image shape.
    **cfg
        Overrides of :data:`DEFAULTS`.

    Returns
    -------
    wcs : WCS or None
        The fitted WCS, None when unsolved.
    matched : DataFrame
        One row per matched pair (:data:`MATCH_COLUMNS`); ``used`` marks those kept by
        the final clipped fit.
    info : dict
        ``status`` (``ok`` or ``unsolved``), ``reason``, ``n_match``, ``rms_px``,
        ``rms_arcsec``, ``pixel_scale``, ``sip_degree``.
    """
    c = {**DEFAULTS, **cfg}
    ny, nx = shape
    info = {
        "status": "unsolved",
        "reason": "",
        "n_match": 0,
        "rms_px": np.nan,
        "rms_arcsec": np.nan,
        "pixel_scale": np.nan,
        "sip_degree": 0,
    }
    empty = pd.DataFrame({k: [] for k in MATCH_COLUMNS})
    det = sources[
        ~any_set(sources["flags"].to_numpy(), Flag.SATURATED | Flag.EDGE)
        & (sources["snr"].to_numpy() >= c["min_snr"])
    ]
    det = det.nlargest(int(c["n_bright"]), "flux")
    scale = pixel_scale_arcsec(guess)
    radius = c["search_radius_arcsec"] / scale
    xr_all, yr_all = guess.world_to_pixel_values(ref["ra"].to_numpy(), ref["dec"].to_numpy())
    inside = (
        (xr_all > -radius) & (xr_all < nx + radius) & (yr_all > -radius) & (yr_all < ny + radius)
    )
    refin = ref[inside].assign(xp=xr_all[inside], yp=yr_all[inside])
    refin = refin.nsmallest(int(c["n_bright"]) * 3 // 2, "mag")
    if len(det) < c["min_matches"] or len(refin) < c["min_matches"]:
        info["reason"] = f"too few stars: {len(det)} detected, {len(refin)} in the catalog"
        return None, empty, info
    xd, yd = det["x"].to_numpy(), det["y"].to_numpy()
    dx, dy, votes = find_offset(xd, yd, refin["xp"].to_numpy(), refin["yp"].to_numpy(), radius)
    if votes < c["min_matches"]:
        info["reason"] = f"no consistent offset within {c['search_radius_arcsec']} arcsec"
        return None, empty, info
    crpix = ((nx - 1) / 2, (ny - 1) / 2)
    crval = guess.wcs_pix2world([crpix], 0)[0]
    wcs = None
    xr, yr = refin["xp"].to_numpy() + dx, refin["yp"].to_numpy() + dy
    for tol in (8.0, 4.0, c["match_radius_px"] * 1.5, c["match_radius_px"]):
        idet, iref = match_nearest(xd, yd, xr, yr, tol)
        if len(idet) < c["min_matches"]:
            info["reason"] = f"only {len(idet)} matches within {tol:.1f} px"
            return None, empty, info
        sip = c["sip_degree"] if len(idet) >= c["sip_min_matches"] and c["sip_degree"] else None
        ra, dec = refin["ra"].to_numpy()[iref], refin["dec"].to_numpy()[iref]
        keep = np.ones(len(idet), bool)
        for _ in range(5):
            wcs = fit_tan_sip(
                xd[idet][keep], yd[idet][keep], ra[keep], dec[keep], crval, crpix, sip
            )
            xf, yf = wcs.world_to_pixel_values(ra, dec)
            res = np.hypot(xf - xd[idet], yf - yd[idet])
            rms = np.sqrt(np.mean(res[keep] ** 2))
            new = res < max(c["clip_sigma"] * rms, 0.05)
            if (new == keep).all() or new.sum() < c["min_matches"]:
                break
            keep = new
        xr, yr = wcs.world_to_pixel_values(refin["ra"].to_numpy(), refin["dec"].to_numpy())
    matched = pd.DataFrame(
        {
            "source": det.index.to_numpy()[idet],
            "id": refin["id"].to_numpy()[iref],
            "x": xd[idet],
            "y": yd[idet],
            "ra": ra,
            "dec": dec,
            "mag": refin["mag"].to_numpy()[iref],
            "x_fit": xf,
            "y_fit": yf,
            "dx": xd[idet] - xf,
            "dy": yd[idet] - yf,
            "used": keep,
        }
    )
    scale = pixel_scale_arcsec(wcs)
    info.update(
        n_match=int(keep.sum()),
        rms_px=float(rms),
        rms_arcsec=float(rms * scale),
        pixel_scale=scale,
        sip_degree=int(sip or 0),
    )
    if info["rms_arcsec"] > c["max_rms_arcsec"]:
        info["reason"] = f"fit rms {info['rms_arcsec']:.2f} arcsec > {c['max_rms_arcsec']}"
        return None, matched, info
    info["status"] = "ok"
    return wcs, matched, info
