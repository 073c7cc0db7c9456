"""Asterism matching: where a star field lies in a reference star list, whatever its
rotation, parity and (within bounds) scale.

Each star and pairs of its nearest neighbours form triangles (as in Valdes et al. 1995
and astroalign). A triangle's shape, the ratios of its two shorter sides to the longest,
is unchanged by translation, rotation, scaling and reflection. Detection and reference
triangles of nearly the same shape each propose a similarity transform (with or without
a reflection); the proposal that brings the most stars into coincidence wins and is
refined by least squares on all its pairs. :func:`match_field` matches a frame to the
reference stars around a pointing (RA, Dec) at a nominal pixel scale.

astroalign does the first half of this but fits no reflection (a flipped camera is
common on small telescopes) and needs scikit-image, hence this module.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref = rng.uniform(0, 1000, (60, 2))
>>> z = (ref[:, 0] - 1j * ref[:, 1]) * 1.03 * np.exp(0.7j) + (40 + 25j)  # flipped, rotated
>>> det = np.column_stack([z.real, z.imag])[:40]
>>> m = match(det, ref, scale_range=(0.9, 1.1))
>>> m["n_match"], m["flip"], round(abs(m["a"]), 3)
(40, True, 1.03)
"""

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from .config import defaults
from .flags import Flag, any_set
from .wcsmodel import nominal_wcs

#: The asterism settings' defaults (config ``solve.asterism``, from the schema).
DEFAULTS = defaults("solve", "asterism")


def triangles(xy: np.ndarray, neighbours: int = 5, min_gap: float = 0.02):
    """Triangles of each point with every pair of its nearest neighbours.

    Parameters
    ----------
    xy : (n, 2) array
        Positions.
    neighbours : int
        How many nearest neighbours of each point form triangles with it.
    min_gap : float
        Triangles whose sorted sides differ by less than this fraction of the longest
        are dropped: their vertex order would be ambiguous.

    Returns
    -------
    vertices : (m, 3) int array
        Point indices, ordered by the length of the opposite side (shortest first).
    shape : (m, 2) array
        Shortest and middle side over the longest.
    orientation : (m,) array
        +1 or -1: the sense in which the ordered vertices go round.
    """
    n = len(xy)
    k = min(neighbours, n - 1)
    if k < 2:
        return np.zeros((0, 3), int), np.zeros((0, 2)), np.zeros(0)
    _, nn = cKDTree(xy).query(xy, k + 1)
    i, j = np.triu_indices(k, 1)
    tri = np.column_stack(
        [np.repeat(nn[:, 0], len(i)), nn[:, 1:][:, i].ravel(), nn[:, 1:][:, j].ravel()]
    )
    tri = np.unique(np.sort(tri, axis=1), axis=0)
    p = xy[tri]
    opposite = np.stack(
        [
            np.hypot(*(p[:, 1] - p[:, 2]).T),
            np.hypot(*(p[:, 0] - p[:, 2]).T),
            np.hypot(*(p[:, 0] - p[:, 1]).T),
        ],
        axis=1,
    )
    order = np.argsort(opposite, axis=1)
    sides = np.take_along_axis(opposite, order, axis=1)
    tri = np.take_along_axis(tri, order, axis=1)
    a, b, c = sides.T
    ok = (c > 0) & ((b - a) > min_gap * c) & ((c - b) > min_gap * c)
    tri, a, b, c = tri[ok], a[ok], b[ok], c[ok]
    q = xy[tri]
    cross = (q[:, 1, 0] - q[:, 0, 0]) * (q[:, 2, 1] - q[:, 0, 1]) - (q[:, 1, 1] - q[:, 0, 1]) * (
        q[:, 2, 0] - q[:, 0, 0]
    )
    return tri, np.column_stack([a / c, b / c]), np.sign(cross)


def _similarity(zd: np.ndarray, zr: np.ndarray):
    """Least-squares ``zd = a * zr + b`` over the last axis (complex positions)."""
    md, mr = zd.mean(axis=-1, keepdims=True), zr.mean(axis=-1, keepdims=True)
    a = ((zd - md) * np.conj(zr - mr)).sum(axis=-1) / (np.abs(zr - mr) ** 2).sum(axis=-1)
    return a, (md - a[..., None] * mr)[..., 0]


def _pairs(det_tree: cKDTree, zr: np.ndarray, tol: float):
    """Mutual nearest pairs between detections (tree) and transformed references."""
    dist, idet = det_tree.query(np.column_stack([zr.real, zr.imag]), distance_upper_bound=tol)
    iref = np.flatnonzero(np.isfinite(dist))
    idet = idet[iref]
    # Keep one reference per detection: the closest.
    order = np.argsort(dist[iref])
    _, first = np.unique(idet[order], return_index=True)
    keep = order[first]
    return idet[keep], iref[keep]


def match(
    det: np.ndarray, ref: np.ndarray, scale_range=(0.9, 1.1), max_hypotheses: int = 4000, **cfg
) -> dict | None:
    """Similarity transform (with optional reflection) taking ``ref`` onto ``det``.

    Parameters
    ----------
    det, ref : (n, 2) arrays
        Detected and reference positions (reference already in nominal pixels).
    scale_range : (low, high)
        Allowed scale of the transform.
    max_hypotheses : int
        Most candidate transforms (those most triangles vote for) that are verified.
    **cfg
        Overrides of :data:`DEFAULTS`.

    Returns
    -------
    dict or None
        ``a, b`` (complex: ``det = a * r + b`` with ``r = x + iy``, or its conjugate
        when ``flip``), ``flip``, ``n_match``, ``det_idx``, ``ref_idx``, ``rms_px``;
        None when no proposal reaches ``min_matches``.
    """
    c = {**DEFAULTS, **cfg}
    det, ref = np.asarray(det, float), np.asarray(ref, float)
    if min(len(det), len(ref)) < max(3, c["min_matches"]):
        return None
    td, sd, od = triangles(det, c["neighbours"])
    tr, sr, orr = triangles(ref, c["neighbours"])
    if len(td) == 0 or len(tr) == 0:
        return None
    near = cKDTree(sr).query_ball_point(sd, c["shape_tolerance"])
    i_d = np.repeat(np.arange(len(td)), [len(n) for n in near])
    i_r = np.concatenate([np.asarray(n, int) for n in near]) if len(i_d) else i_d
    if len(i_d) == 0:
        return None
    zdet = det[:, 0] + 1j * det[:, 1]
    zref = ref[:, 0] + 1j * ref[:, 1]
    flip = od[i_d] != orr[i_r]
    zd = zdet[td[i_d]]
    zr = np.where(flip[:, None], np.conj(zref[tr[i_r]]), zref[tr[i_r]])
    a, b = _similarity(zd, zr)
    resid = np.abs(zd - (a[:, None] * zr + b[:, None])).max(axis=1)
    ok = (np.abs(a) >= scale_range[0]) & (np.abs(a) <= scale_range[1]) & (resid < c["match_px"])
    a, b, flip = a[ok], b[ok], flip[ok]
    if len(a) == 0:
        return None
    # Vote: proposals agreeing on the transform reinforce each other; test the most
    # popular first (rounded rotation, log-scale, parity and shift).
    key = np.column_stack(
        [
            np.round(np.angle(a) / 0.02),
            np.round(np.log(np.abs(a)) / 0.01),
            flip,
            np.round(b.real / (4 * c["match_px"])),
            np.round(b.imag / (4 * c["match_px"])),
        ]
    )
    _, first, counts = np.unique(key, axis=0, return_index=True, return_counts=True)
    # One proposal per group, most popular group first (ties: earliest proposal).
    candidates = first[np.lexsort((first, -counts))][:max_hypotheses]
    tree = cKDTree(det)
    best = None
    for h in candidates:
        zr_all = np.conj(zref) if flip[h] else zref
        idet, iref = _pairs(tree, a[h] * zr_all + b[h], c["match_px"])
        if best is None or len(idet) > best[0]:
            best = (len(idet), h)
        if len(idet) >= max(c["min_matches"], 0.5 * min(len(det), len(ref))):
            break
    if best is None or best[0] < c["min_matches"]:
        return None
    h = best[1]
    ah, bh, fh = a[h], b[h], bool(flip[h])
    zr_all = np.conj(zref) if fh else zref
    for _ in range(3):
        idet, iref = _pairs(tree, ah * zr_all + bh, c["match_px"])
        ah, bh = _similarity(zdet[idet], zr_all[iref])
    idet, iref = _pairs(tree, ah * zr_all + bh, c["match_px"])
    if len(idet) < c["min_matches"]:
        return None
    rms = float(np.sqrt(np.mean(np.abs(zdet[idet] - (ah * zr_all[iref] + bh)) ** 2)))
    return {
        "a": complex(ah),
        "b": complex(bh),
        "flip": fh,
        "n_match": int(len(idet)),
        "det_idx": idet,
        "ref_idx": iref,
        "rms_px": rms,
    }


def match_field(
    sources: pd.DataFrame,
    ref: pd.DataFrame,
    ra: float,
    dec: float,
    scale_arcsec: float,
    shape,
    pointing_error: float = 0.6,
    scale_error: float = 0.15,
    **cfg,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Match a frame's detections to the reference stars around a pointing hint.

    Parameters
    ----------
    sources : DataFrame
        Detections (``x, y, flux, flags``; 0-based pixels).
    ref : DataFrame
        Reference stars (``ra, dec, mag``).
    ra, dec : float
        Where the telescope pointed, degrees.
    scale_arcsec : float
        Nominal pixel scale.
    shape : (ny, nx)
        Image shape.
    pointing_error : float
        Largest pointing error searched, as a fraction of the frame's larger side.
    scale_error : float
        Largest fractional error of ``scale_arcsec``.
    **cfg
        Overrides of :data:`DEFAULTS`.

    Returns
    -------
    det, refs : DataFrame
        The matched detections and reference stars, row for row (empty when no match).
    info : dict
        ``n_match``, ``rms_px``, ``flip``, ``rotation_deg``, ``scale_ratio``, ``reason``.
    """
    c = {**DEFAULTS, **cfg}
    ny, nx = shape
    det = sources[~any_set(sources["flags"].to_numpy(), Flag.EDGE)].nlargest(c["n_stars"], "flux")
    nominal = nominal_wcs(ra, dec, scale_arcsec, shape)
    xr, yr = nominal.world_to_pixel_values(ref["ra"].to_numpy(), ref["dec"].to_numpy())
    cx, cy = (nx - 1) / 2.0, (ny - 1) / 2.0
    radius = 0.5 * np.hypot(nx, ny) + pointing_error * max(nx, ny)
    inside = np.hypot(xr - cx, yr - cy) < radius
    near_all = ref.assign(xp=xr, yp=yr)[inside]
    # Catalog stars as deep as the detections: as many per unit area of sky the catalog
    # covers (cells of 1/8 of the frame holding any star) as detections per frame area.
    cell = max(nx, ny) / 8.0
    cells = np.unique(np.floor(near_all[["xp", "yp"]].to_numpy() / cell), axis=0)
    covered = max(len(cells) * cell**2, nx * ny * 0.25)
    info = {"n_match": 0, "rms_px": np.nan, "reason": ""}
    m = None
    for depth in (1.2, 2.5, 0.6):  # magnitude systems differ: try deeper, then shallower
        n_ref = int(min(len(det) * covered / (nx * ny) * depth, 40 * c["n_stars"]))
        near = near_all.nsmallest(n_ref, "mag")
        m = match(
            det[["x", "y"]].to_numpy(),
            near[["xp", "yp"]].to_numpy(),
            scale_range=(1 / (1 + scale_error), 1 + scale_error),
            **c,
        )
        if m is not None:
            break
    if m is None:
        info["reason"] = (
            f"no asterism match ({len(det)} detections, {len(near_all)} catalog stars "
            f"within {radius * scale_arcsec / 3600:.2f} deg)"
        )
        return det.iloc[:0], near_all.iloc[:0], info
    info.update(
        n_match=m["n_match"],
        rms_px=m["rms_px"],
        flip=m["flip"],
        rotation_deg=float(np.degrees(np.angle(m["a"]))),
        scale_ratio=float(abs(m["a"])),
    )
    return det.iloc[m["det_idx"]], near.iloc[m["ref_idx"]], info
