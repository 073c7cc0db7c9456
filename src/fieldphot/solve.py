"""Astrometric solution of a frame: a ladder of methods, each ending in a fitted WCS.

:func:`solve_frame` tries, in the configured order, until one succeeds:

``header``
    the header WCS, verified against the reference catalog (:func:`verify`) and kept
    when it is already good, else refined (:func:`refine`);
``neighbour``
    the solution of the first frame of the same pointing, refined; or, if the field
    turned (a meridian flip), used as the hint of an asterism match;
``hint``
    the header's RA/Dec and a nominal pixel scale: asterism matching of the detections
    against the catalog (:mod:`fieldphot.asterism`, any rotation and parity, a few
    percent of scale error, pointing errors up to about half the field), then refined;
``blind``
    a local astrometry.net (:mod:`fieldphot.astrometrynet`), then refined.

:func:`refine` finds the offset between detections and projected catalog stars from
the peak of their pairwise offset histogram, matches mutual nearest neighbours with a
shrinking tolerance, and fits a TAN (TAN-SIP when there are enough matches) WCS with
sigma-clipped outlier rejection (:func:`fieldphot.wcsmodel.fit_tan_sip`). Pixels are
0-based throughout.

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
>>> wcs, matched, info = refine(src, ref, w, (512, 512))
>>> info["status"], info["n_match"], round(info["rms_px"], 3)
('ok', 80, 0.0)
"""

import numpy as np
import pandas as pd
from astropy.wcs import WCS
from scipy.spatial import cKDTree

from . import asterism, astrometrynet
from .config import defaults
from .flags import Flag, any_set
from .wcsmodel import fit_tan_sip, nominal_wcs, pixel_scale_arcsec

MATCH_COLUMNS = ["source", "id", "x", "y", "ra", "dec", "mag", "x_fit", "y_fit", "dx", "dy", "used"]

#: The solve settings' defaults (config ``solve``, from the schema).
DEFAULTS = defaults("solve")

EMPTY_INFO = {
    "status": "unsolved",
    "method": "",
    "reason": "",
    "n_match": 0,
    "rms_px": np.nan,
    "rms_arcsec": np.nan,
    "pixel_scale": np.nan,
    "sip_degree": 0,
}


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


def _empty() -> pd.DataFrame:
    return pd.DataFrame({k: [] for k in MATCH_COLUMNS})


def _candidates(sources, ref, wcs: WCS, shape, c: dict, margin_px: float):
    """Bright clean detections, and the brightest catalog stars projected within
    ``margin_px`` of the frame, as many more as there are saturated detections: the
    detections leave out the saturated stars, so the catalog's list reaches as much
    fainter (on a camera lens's wide field the brightest hundreds can all be saturated)."""
    ny, nx = shape
    flags = sources["flags"].to_numpy()
    saturated = int(any_set(flags, Flag.SATURATED).sum())
    det = sources[
        ~any_set(flags, Flag.SATURATED | Flag.EDGE) & (sources["snr"].to_numpy() >= c["min_snr"])
    ].nlargest(int(c["n_bright"]), "flux")
    # The catalog about the frame first, by the WCS's linear part (defined everywhere: a
    # wide field's SIP polynomial diverges far outside the frame).
    m = margin_px + 0.2 * max(nx, ny)
    xl, yl = wcs.wcs_world2pix(ref["ra"].to_numpy(), ref["dec"].to_numpy(), 0)
    ref = ref[(xl > -m) & (xl < nx + m) & (yl > -m) & (yl < ny + m)]
    xr, yr = wcs.world_to_pixel_values(ref["ra"].to_numpy(), ref["dec"].to_numpy())
    m = margin_px
    inside = (xr > -m) & (xr < nx + m) & (yr > -m) & (yr < ny + m)
    refin = ref[inside].assign(xp=xr[inside], yp=yr[inside])
    return det, refin.nsmallest(int(c["n_bright"]) * 3 // 2 + saturated, "mag")


def _matched_on_frame(sources, ref, wcs: WCS, shape, c: dict):
    """:func:`_candidates` on the frame as ``wcs`` places them, paired by
    :func:`match_nearest` within ``match_radius_px``: (det, refin, idet, iref)."""
    det, refin = _candidates(sources, ref, wcs, shape, c, 0.0)
    idet, iref = match_nearest(
        det["x"].to_numpy(),
        det["y"].to_numpy(),
        refin["xp"].to_numpy(),
        refin["yp"].to_numpy(),
        c["match_radius_px"],
    )
    return det, refin, idet, iref


def _matched_table(det, refin, idet, iref, xf, yf, keep) -> pd.DataFrame:
    xd, yd = det["x"].to_numpy()[idet], det["y"].to_numpy()[idet]
    return pd.DataFrame(
        {
            "source": det.index.to_numpy()[idet],
            "id": refin["id"].to_numpy()[iref],
            "x": xd,
            "y": yd,
            "ra": refin["ra"].to_numpy()[iref],
            "dec": refin["dec"].to_numpy()[iref],
            "mag": refin["mag"].to_numpy()[iref],
            "x_fit": xf,
            "y_fit": yf,
            "dx": xd - xf,
            "dy": yd - yf,
            "used": keep,
        }
    )


def _clipped_rms(res: np.ndarray, clip_sigma: float) -> tuple[float, np.ndarray]:
    keep = np.ones(len(res), bool)
    for _ in range(5):
        rms = float(np.sqrt(np.mean(res[keep] ** 2)))
        new = res < max(clip_sigma * rms, 0.05)
        if (new == keep).all() or new.sum() < 3:
            break
        keep = new
    return rms, keep


def verify(
    sources: pd.DataFrame, ref: pd.DataFrame, wcs: WCS, shape: tuple[int, int], **cfg
) -> tuple[pd.DataFrame, dict]:
    """How well a WCS, as it is, puts catalog stars on the detections.

    Catalog stars projected by ``wcs`` are matched to detections within
    ``match_radius_px``; the residuals' clipped rms measures the WCS.

    Returns
    -------
    matched : DataFrame
        :data:`MATCH_COLUMNS`, ``x_fit, y_fit`` being the WCS's prediction.
    info : dict
        As :func:`refine`'s; ``status`` is ``ok`` when there are ``min_matches`` and the
        rms is within ``keep_header_rms_arcsec``.
    """
    c = {**DEFAULTS, **cfg}
    info = dict(EMPTY_INFO)
    det, refin, idet, iref = _matched_on_frame(sources, ref, wcs, shape, c)
    if len(idet) < c["min_matches"]:
        info["reason"] = f"only {len(idet)} catalog stars within {c['match_radius_px']} px"
        return _empty(), info
    xf, yf = refin["xp"].to_numpy()[iref], refin["yp"].to_numpy()[iref]
    res = np.hypot(det["x"].to_numpy()[idet] - xf, det["y"].to_numpy()[idet] - yf)
    rms, keep = _clipped_rms(res, c["clip_sigma"])
    scale = pixel_scale_arcsec(wcs)
    info.update(
        n_match=int(keep.sum()),
        rms_px=rms,
        rms_arcsec=rms * scale,
        pixel_scale=scale,
        sip_degree=int(wcs.sip.a_order) if wcs.sip is not None else 0,
    )
    if info["rms_arcsec"] > c["keep_header_rms_arcsec"] or keep.sum() < c["min_matches"]:
        info["reason"] = f"rms {info['rms_arcsec']:.2f} arcsec over {keep.sum()} stars"
        return _empty(), info
    info["status"] = "ok"
    return _matched_table(det, refin, idet, iref, xf, yf, keep), info


def refine(
    sources: pd.DataFrame, ref: pd.DataFrame, guess: WCS, shape: tuple[int, int], **cfg
) -> tuple[WCS | None, pd.DataFrame, dict]:
    """Refine an approximate WCS by matching ``sources`` to ``ref``.

    Parameters
    ----------
    sources : DataFrame
        Detections with ``x, y`` (0-based), ``flux``, ``snr``, ``flags``.
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
    info = dict(EMPTY_INFO)
    # How far the guess may be off: on a wide field's large pixels, at least a few pixels.
    radius = max(c["search_radius_arcsec"] / pixel_scale_arcsec(guess), c["min_search_px"])
    det, refin = _candidates(sources, ref, guess, shape, c, radius)
    if len(det) < c["min_matches"] or len(refin) < c["min_matches"]:
        info["reason"] = f"too few stars: {len(det)} detected, {len(refin)} in the catalog"
        return None, _empty(), info
    xd, yd = det["x"].to_numpy(), det["y"].to_numpy()
    dx, dy, votes = find_offset(xd, yd, refin["xp"].to_numpy(), refin["yp"].to_numpy(), radius)
    if votes < c["min_matches"]:
        info["reason"] = f"no consistent offset within {c['search_radius_arcsec']} arcsec"
        return None, _empty(), info
    crpix = ((nx - 1) / 2, (ny - 1) / 2)
    crval = guess.wcs_pix2world([crpix], 0)[0]
    xr, yr = refin["xp"].to_numpy() + dx, refin["yp"].to_numpy() + dy
    for tol in (8.0, 4.0, c["match_radius_px"] * 1.5, c["match_radius_px"]):
        idet, iref = match_nearest(xd, yd, xr, yr, tol)
        if len(idet) < c["min_matches"]:
            info["reason"] = f"only {len(idet)} matches within {tol:.1f} px"
            return None, _empty(), info
        wcs, xf, yf, rms, keep, sip = _clipped_fit(det, refin, idet, iref, crval, crpix, c)
        xr, yr = wcs.world_to_pixel_values(refin["ra"].to_numpy(), refin["dec"].to_numpy())
    # By chance alone, this many catalog stars would land within the final tolerance
    # of a detection; a real solution matches many times more.
    chance = len(det) * len(refin) * np.pi * c["match_radius_px"] ** 2 / (nx * ny)
    n_bright = int(keep.sum())
    # Last, every clean detection against every catalog star on the frame, until the
    # matches stop growing: the brightest few hundred leave a wide field's distortion
    # unmeasured over most of it, and each fit reaches further into its corners.
    # A higher SIP order (the lowest above the one fitted) is taken when it lowers the rms
    # by 10 % or more: radial distortion needs odd orders.
    every = {**c, "n_bright": len(sources)}
    for _ in range(6):
        every_match = _matched_on_frame(sources, ref, wcs, shape, every)
        grew = len(every_match[2]) > 1.02 * len(idet)
        if grew:
            det, refin, idet, iref = every_match
            wcs, xf, yf, rms, keep, sip = _clipped_fit(
                det, refin, idet, iref, crval, crpix, {**c, "sip_degree": sip or 0}
            )
        higher = None
        for order in range((sip or c["sip_max_degree"]) + 1, c["sip_max_degree"] + 1):
            if keep.sum() < 10 * (order + 1) * (order + 2):
                break
            trial = _clipped_fit(det, refin, idet, iref, crval, crpix, {**c, "sip_degree": order})
            if trial[3] <= 0.9 * rms:
                higher = trial
                break
        if higher is not None:
            wcs, xf, yf, rms, keep, sip = higher
        elif not grew:
            break
    matched = _matched_table(det, refin, idet, iref, xf, yf, keep)
    scale = pixel_scale_arcsec(wcs)
    info.update(
        n_match=int(keep.sum()),
        rms_px=float(rms),
        rms_arcsec=float(rms * scale),
        pixel_scale=scale,
        sip_degree=int(sip or 0),
    )
    scale_change = scale / pixel_scale_arcsec(guess) - 1.0
    if info["rms_arcsec"] > max(c["max_rms_arcsec"], c["max_rms_px"] * scale):
        info["reason"] = (
            f"fit rms {info['rms_arcsec']:.2f} arcsec ({rms:.2f} px) > {c['max_rms_arcsec']} "
            f"arcsec and {c['max_rms_px']} px"
        )
    elif abs(scale_change) > max(c["scale_error"], 0.02):
        info["reason"] = f"fitted pixel scale {100 * scale_change:+.0f} % from the guess"
    elif n_bright < 5 * chance + 3:
        info["reason"] = f"{n_bright} matches, {chance:.1f} expected by chance"
    else:
        info["status"] = "ok"
        return wcs, matched, info
    return None, matched, info


def _clipped_fit(det, refin, idet, iref, crval, crpix, c):
    """TAN(-SIP) fit of the matched pairs ``idet, iref`` with ``clip_sigma`` rejection:
    the WCS, its positions of the pairs' catalog stars, its rms (px) over the kept pairs,
    which are kept, and the SIP order used."""
    xd, yd = det["x"].to_numpy()[idet], det["y"].to_numpy()[idet]
    ra, dec = refin["ra"].to_numpy()[iref], refin["dec"].to_numpy()[iref]
    sip = c["sip_degree"] if len(idet) >= c["sip_min_matches"] and c["sip_degree"] else None
    keep = np.ones(len(idet), bool)
    for _ in range(5):
        wcs = fit_tan_sip(xd[keep], yd[keep], ra[keep], dec[keep], crval, crpix, sip)
        xf, yf = wcs.world_to_pixel_values(ra, dec)
        res = np.hypot(xf - xd, yf - yd)
        rms = float(np.sqrt(np.mean(res[keep] ** 2)))
        new = res < max(c["clip_sigma"] * rms, 0.05)
        if (new == keep).all() or new.sum() < c["min_matches"]:
            break
        keep = new
    return wcs, xf, yf, rms, keep, sip


def _from_pointing(sources, ref, shape, ra, dec, scale, c):
    """Asterism match around (ra, dec) at ``scale`` arcsec/px, then refine."""
    det, refs, ainfo = asterism.match_field(
        sources,
        ref,
        ra,
        dec,
        scale,
        shape,
        pointing_error=c["pointing_error"],
        scale_error=c["scale_error"],
        **c["asterism"],
    )
    if len(det) == 0:
        return None, _empty(), {**EMPTY_INFO, "reason": ainfo["reason"]}
    ny, nx = shape
    guess = fit_tan_sip(
        det["x"].to_numpy(),
        det["y"].to_numpy(),
        refs["ra"].to_numpy(),
        refs["dec"].to_numpy(),
        (ra, dec),
        ((nx - 1) / 2, (ny - 1) / 2),
    )
    return refine(sources, ref, guess, shape, **c)


def _header(sources, ref, shape, hints, c):
    guess = hints.get("wcs")
    if guess is None:
        return None, _empty(), {**EMPTY_INFO, "reason": "no WCS in the header"}
    matched, info = verify(sources, ref, guess, shape, **c)
    if info["status"] == "ok":
        return guess, matched, {**info, "kept": True}
    return refine(sources, ref, guess, shape, **c)


def _neighbour(sources, ref, shape, hints, c):
    guess = hints.get("neighbour")
    if guess is None:
        return None, _empty(), {**EMPTY_INFO, "reason": "no solved frame of the same pointing"}
    wcs, matched, info = refine(
        sources, ref, guess, shape, **{**c, "search_radius_arcsec": c["neighbour_radius_arcsec"]}
    )
    if wcs is not None:
        return wcs, matched, info
    ny, nx = shape
    ra, dec = guess.wcs_pix2world([[(nx - 1) / 2, (ny - 1) / 2]], 0)[0]
    return _from_pointing(sources, ref, shape, ra, dec, pixel_scale_arcsec(guess), c)


def _hint(sources, ref, shape, hints, c):
    scale = c["pixel_scale"] or hints.get("pixel_scale")
    ra, dec = hints.get("ra"), hints.get("dec")
    if ra is None or dec is None or not scale:
        missing = "RA/Dec" if ra is None or dec is None else "a pixel scale"
        return None, _empty(), {**EMPTY_INFO, "reason": f"no {missing} in the header or config"}
    return _from_pointing(sources, ref, shape, ra, dec, scale, c)


def _blind(sources, ref, shape, hints, c):
    usable = sources[~any_set(sources["flags"].to_numpy(), Flag.EDGE)]
    if len(usable) < c["min_matches"]:
        return None, _empty(), {**EMPTY_INFO, "reason": f"{len(usable)} sources, too few"}
    scale = c["pixel_scale"] or hints.get("pixel_scale")
    ra, dec = hints.get("ra"), hints.get("dec")
    radius = None
    if ra is not None and dec is not None and scale:
        radius = (0.5 + c["pointing_error"]) * max(shape) * scale / 3600.0
    wcs, an = astrometrynet.solve_field(
        usable["x"].to_numpy(),
        usable["y"].to_numpy(),
        usable["flux"].to_numpy(),
        shape,
        ra=ra,
        dec=dec,
        radius_deg=radius,
        scale_arcsec=scale,
        scale_error=max(c["scale_error"], 0.1),
        **c["astrometry_net"],
    )
    if wcs is None:
        return None, _empty(), {**EMPTY_INFO, "reason": an["reason"]}
    fitted, matched, info = refine(sources, ref, wcs, shape, **c)
    if fitted is not None:
        return fitted, matched, info
    # The catalog does not cover the field: keep astrometry.net's own solution.
    scale = pixel_scale_arcsec(wcs)
    return (
        wcs,
        _empty(),
        {
            **EMPTY_INFO,
            "status": "ok",
            "reason": f"astrometry.net solution kept; not refined ({info['reason']})",
            "n_match": an["n_match"],
            "rms_px": an["rms_px"],
            "rms_arcsec": an["rms_px"] * scale,
            "pixel_scale": scale,
            "sip_degree": int(wcs.sip.a_order) if wcs.sip is not None else 0,
        },
    )


METHODS = {"header": _header, "neighbour": _neighbour, "hint": _hint, "blind": _blind}


def solve_frame(
    sources: pd.DataFrame, ref: pd.DataFrame, shape: tuple[int, int], hints: dict, **cfg
) -> tuple[WCS | None, pd.DataFrame, dict]:
    """Solve a frame by the first method of ``methods`` that succeeds.

    Parameters
    ----------
    sources : DataFrame
        The frame's detections.
    ref : DataFrame
        Reference stars (``id, ra, dec, mag``).
    shape : (ny, nx)
        Image shape.
    hints : dict
        What is known: ``wcs`` (the header's, or None), ``neighbour`` (the solution of
        the first frame of the same pointing, or None), ``ra``, ``dec`` (degrees) and
        ``pixel_scale`` (arcsec/px) from the header, each possibly None.
    **cfg
        Overrides of :data:`DEFAULTS`; ``methods`` orders the ladder.

    Returns
    -------
    wcs, matched, info
        As :func:`refine`; ``info["method"]`` names the method that solved the frame
        and ``info["tried"]`` what the methods before it said. An unsolved frame's
        ``reason`` lists every method's.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from fieldphot.wcsmodel import nominal_wcs
    >>> w = nominal_wcs(150.0, 20.0, 0.6, (512, 512))
    >>> rng = np.random.default_rng(2)
    >>> x, y = rng.uniform(0, 512, (2, 60))
    >>> sky = w.pixel_to_world(x, y)
    >>> ref = pd.DataFrame({"id": range(60), "ra": sky.ra.deg, "dec": sky.dec.deg,
    ...                     "mag": rng.uniform(12, 17, 60)})
    >>> src = pd.DataFrame({"x": 511 - x, "y": y, "flux": 10 ** (-0.4 * ref["mag"]),
    ...                     "snr": 100.0, "flags": 0})   # a flipped camera, no header WCS
    >>> hints = {"wcs": None, "ra": 150.01, "dec": 20.02, "pixel_scale": 0.62}
    >>> wcs, matched, info = solve_frame(src, ref, (512, 512), hints,
    ...                                  methods=["header", "hint"])
    >>> info["method"], info["n_match"], info["tried"]
    ('hint', 60, ['header: no WCS in the header'])
    """
    c = {**DEFAULTS, **cfg}
    tried = []
    for method in c["methods"]:
        wcs, matched, info = METHODS[method](sources, ref, shape, hints, c)
        if wcs is not None:
            return wcs, matched, {**info, "status": "ok", "method": method, "tried": tried}
        tried.append(f"{method}: {info['reason']}")
    info = {**EMPTY_INFO, "reason": "; ".join(tried) or "no method configured", "tried": tried}
    return None, _empty(), info


def footprint_wcs(shape: tuple[int, int], hints: dict, pixel_scale=None) -> WCS | None:
    """The best prior guess of where a frame looks: its header WCS, else a north-up one
    at the header's RA/Dec and pixel scale, else None."""
    if hints.get("wcs") is not None:
        return hints["wcs"]
    scale = pixel_scale or hints.get("pixel_scale")
    if None not in (hints.get("ra"), hints.get("dec")) and scale:
        return nominal_wcs(hints["ra"], hints["dec"], scale, shape)
    return None


def stars_in_field(ref: pd.DataFrame, shape: tuple[int, int], hints: dict, pixel_scale=None):
    """How many reference stars fall on the frame by its prior footprint
    (:func:`footprint_wcs`); None when nothing tells where it looks."""
    w = footprint_wcs(shape, hints, pixel_scale)
    if w is None or len(ref) == 0:
        return None if w is None else 0
    x, y = w.wcs_world2pix(ref["ra"].to_numpy(float), ref["dec"].to_numpy(float), 0)
    ny, nx = shape
    return int(np.sum((x >= 0) & (x < nx) & (y >= 0) & (y < ny)))


def own_reference(sources: pd.DataFrame, wcs: WCS, min_snr: float = 10.0) -> pd.DataFrame:
    """A frame's own unsaturated detections as reference stars (:data:`MATCH_COLUMNS`,
    ``mag`` the instrumental magnitude): what the other frames of a pointing the catalog
    cannot solve are solved against.

    Examples
    --------
    >>> w = nominal_wcs(150.0, 20.0, 0.6, (100, 100))
    >>> src = pd.DataFrame({"x": [10.0, 50.0], "y": [20.0, 60.0], "flux": [1e4, 1e3],
    ...                     "snr": [50.0, 5.0], "flags": [0, 0]})
    >>> ref = own_reference(src, w)
    >>> len(ref), round(float(ref["mag"][0]), 2)
    (1, -10.0)
    """
    ok = (sources["snr"].to_numpy(float) >= min_snr) & ~any_set(
        sources["flags"].to_numpy(), Flag.EDGE | Flag.SATURATED
    )  # as the matcher skips them: a saturated star is no reference (its centre is flat)
    det = sources[ok].reset_index()
    ra, dec = wcs.wcs_pix2world(det["x"].to_numpy(float), det["y"].to_numpy(float), 0)
    x, y = det["x"].to_numpy(float), det["y"].to_numpy(float)
    return pd.DataFrame(
        {
            "source": det["index"].to_numpy(),
            "id": det["index"].to_numpy(),
            "x": x,
            "y": y,
            "ra": ra,
            "dec": dec,
            "mag": -2.5 * np.log10(np.maximum(det["flux"].to_numpy(float), 1e-30)),
            "x_fit": x,
            "y_fit": y,
            "dx": 0.0,
            "dy": 0.0,
            "used": True,
        },
        columns=MATCH_COLUMNS,
    )


def solve_relative(
    sources: pd.DataFrame,
    shape: tuple[int, int],
    hints: dict,
    anchor: pd.DataFrame | None = None,
    **cfg,
) -> tuple[WCS | None, pd.DataFrame, dict]:
    """A solution relative to the pointing, for frames the catalog cannot solve (no
    catalog, or its few stars saturated or absent).

    A frame is solved against ``anchor``, the detections of the first frame of its
    pointing (:func:`own_reference`), by the ``neighbour`` and ``header`` methods. The
    first frame itself keeps its header WCS, or, without one, a north-up WCS at the
    header's RA/Dec and pixel scale; its detections become the anchor. Positions are then
    consistent within the pointing (what photometry at fixed positions needs) and as right
    on the sky as the first frame's header. ``info["method"]`` starts with ``relative``.
    """
    c = {**DEFAULTS, **cfg}
    if anchor is not None and len(anchor) >= c["min_matches"]:
        wcs, matched, info = solve_frame(
            sources, anchor, shape, hints, **{**c, "methods": ["neighbour", "header", "hint"]}
        )
        # The same field shows the first frame's brightest stars (those the solution puts
        # on this frame: a dither moves some off): chance matches of noise (a clouded-out
        # frame) do not; a third of them is ten stars where their places say.
        bright = anchor.nsmallest(min(30, max(len(anchor) // 2, c["min_matches"])), "mag")
        if wcs is not None:
            x, y = wcs.wcs_world2pix(bright["ra"].to_numpy(), bright["dec"].to_numpy(), 0)
            bright = bright[(x > 2) & (y > 2) & (x < shape[1] - 3) & (y < shape[0] - 3)]
        seen = float(np.isin(bright["id"], matched["id"]).mean()) if len(bright) else 0.0
        if wcs is not None and seen >= 1 / 3 and len(bright) >= c["min_matches"]:
            return wcs, matched, {**info, "method": f"relative ({info['method']})"}
        why = info["reason"] if wcs is None else f"{100 * seen:.0f} % of its brightest stars seen"
        return None, _empty(), {**EMPTY_INFO, "reason": f"not matched to its pointing: {why}"}
    guess = footprint_wcs(shape, hints, c["pixel_scale"])
    how = "header WCS" if hints.get("wcs") is not None else "north up at RA/Dec"
    if guess is None:
        return None, _empty(), {**EMPTY_INFO, "reason": "no header WCS, or RA/Dec and scale"}
    ref = own_reference(sources, guess, c["min_snr"])
    if len(ref) < c["min_matches"]:
        return None, _empty(), {**EMPTY_INFO, "reason": f"{len(ref)} sources, too few"}
    scale = pixel_scale_arcsec(guess)
    info = {
        **EMPTY_INFO,
        "status": "ok",
        "method": f"relative ({how})",
        "n_match": len(ref),
        "pixel_scale": scale,
        "sip_degree": int(guess.sip.a_order) if guess.sip is not None else 0,
    }
    return guess, ref, info
