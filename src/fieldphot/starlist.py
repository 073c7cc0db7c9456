"""The master star list of a field: the reference catalog plus the deepest detections.

Every frame of a pointing is measured at the same sky positions, so every star has a
measurement or a flagged gap on every frame. The positions are the reference catalog's
stars and the sources the catalog lacks that are found on a *stack* of the pointing's
reference frames: a few frames spread over the pointing's first night, resampled onto the
first one's pixel grid with their astrometric solutions and summed, so the list reaches
deeper than any single frame (by 2.5 log10 sqrt(k) mag for k similar frames).

The list is fixed by those reference frames alone: a new night, or a rerun of any other
frame, leaves it (and every frame's photometry) as it is.

Examples
--------
>>> sci = pd.DataFrame({"night": ["20240101"] * 5 + ["20240102"] * 2,
...     "frame": ["a", "b", "c", "d", "e", "a", "b"], "binning": "1x1", "readout": "r",
...     "mjd_utc_mid": [1.0, 1.1, 1.2, 1.3, 1.4, 2.0, 2.1], "ra": 10.0, "dec": 5.0,
...     "object": ""})
>>> f = fields(sci, k=3, tolerance_arcmin=5.0)
>>> f["field"].unique().tolist(), sci["frame"][f["reference"]].tolist()
(['20240101/a'], ['a', 'c', 'e'])
"""

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

from . import extract as ext
from . import manifest as mf
from .calibration import row_bands
from .flags import Flag, any_set

#: Flags of a pixel left out of the stack.
_BAD = Flag.BAD_PIXEL | Flag.SATURATED | Flag.COSMIC_RAY
#: Offset of the ids of deep sources in a numeric catalog (negative, beyond any target's).
DEEP_ID_BASE = -(2**40)


def fields(sci: pd.DataFrame, k: int, tolerance_arcmin: float) -> pd.DataFrame:
    """Each science frame's field and whether it is one of the field's reference frames.

    A field is a pointing over all nights (frames with the same binning and readout
    within ``tolerance_arcmin``, :func:`fieldphot.manifest.pointing_anchors`), named
    ``night/frame`` after its first frame; its reference frames are ``k`` frames evenly
    spread over that first night's frames of the pointing.

    Parameters
    ----------
    sci : DataFrame
        Science rows of the manifest.
    k : int
        Reference frames per field (0: none, the list is the catalog alone).
    tolerance_arcmin : float
        Largest separation of the frames of one pointing.

    Returns
    -------
    DataFrame
        Indexed like ``sci``: ``field`` (``night/frame`` of its first frame), ``reference``.
    """
    key = sci["night"].astype(str) + "/" + sci["frame"].astype(str)
    field = mf.pointing_anchors(sci.assign(frame=key, night=""), tolerance_arcmin)
    reference = pd.Series(False, index=sci.index)
    first_night = field.str.split("/").str[0]
    for _, rows in sci[sci["night"].astype(str) == first_night].groupby(field):
        rows = rows.sort_values("mjd_utc_mid", kind="stable")
        pick = np.unique(np.linspace(0, len(rows) - 1, min(k, len(rows))).round().astype(int))
        reference[rows.index[pick]] = True
    return pd.DataFrame({"field": field, "reference": reference})


def affine_to(wcs_from, wcs_to, shape, n: int = 8) -> tuple[np.ndarray, np.ndarray, float]:
    """The affine map from pixels (row, column) of the frame solved by ``wcs_from`` to
    pixels of the frame solved by ``wcs_to`` (``shape`` of the first), fitted on an
    ``n`` x ``n`` grid through the sky; and its largest residual (px).

    Examples
    --------
    >>> from astropy.wcs import WCS
    >>> a = WCS(naxis=2); a.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    >>> a.wcs.crval = [10, 5]; a.wcs.crpix = [50, 50]; a.wcs.cdelt = [-1e-4, 1e-4]
    >>> b = a.deepcopy(); b.wcs.crpix = [53.5, 48.0]
    >>> matrix, offset, resid = affine_to(a, b, (100, 100))
    >>> np.round(offset, 3).tolist(), bool(resid < 1e-3)
    ([-2.0, 3.5], True)
    """
    ny, nx = shape
    yy, xx = np.meshgrid(np.linspace(0, ny - 1, n), np.linspace(0, nx - 1, n), indexing="ij")
    src = np.column_stack([yy.ravel(), xx.ravel()])
    x2, y2 = wcs_to.world_to_pixel(wcs_from.pixel_to_world(src[:, 1], src[:, 0]))
    dst = np.column_stack([y2, x2])
    design = np.column_stack([src, np.ones(len(src))])
    coef, *_ = np.linalg.lstsq(design, dst, rcond=None)
    resid = float(np.max(np.hypot(*(design @ coef - dst).T)))
    return coef[:2].T, coef[2], resid


class Stack:
    """The sum of frames resampled onto one frame's pixel grid (bilinear), in electrons.

    A pixel flagged bad, saturated or hit by a cosmic ray in one frame is left out of
    that frame's contribution and the others' are scaled up to the full count, so the
    stack stays a sum of ``n`` frames everywhere (its error likewise).

    Examples
    --------
    >>> from astropy.wcs import WCS
    >>> w = WCS(naxis=2); w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    >>> w.wcs.crval = [10, 5]; w.wcs.crpix = [10, 10]; w.wcs.cdelt = [-1e-4, 1e-4]
    >>> s = Stack(w, (20, 20))
    >>> one = np.ones((20, 20), np.float32); mask = np.zeros((20, 20), np.int32)
    >>> _ = s.add(one, one, mask, w); _ = s.add(3 * one, one, mask, w)
    >>> sci, err, bad = s.result()
    >>> float(sci[5, 5]), round(float(err[5, 5]), 3), int(bad.sum())
    (4.0, 1.414, 0)
    """

    def __init__(self, wcs, shape):
        self.wcs, self.shape, self.n = wcs, tuple(shape), 0
        self.sum = np.zeros(shape, np.float32)
        self.var = np.zeros(shape, np.float32)
        self.cover = np.zeros(shape, np.float32)

    def add(self, sci, err, mask, wcs, band_bytes: float = 64e6) -> float:
        """Add one frame solved by ``wcs``, a band of the stack's rows at a time (each
        warps only the rows of the frame it reaches); returns the alignment's largest
        residual (px)."""
        matrix, offset, resid = affine_to(self.wcs, wcs, self.shape)
        ny, nx = self.shape
        zero = np.float32(0)
        for rows in row_bands(ny, nx * 4 * 8, band_bytes):
            corners = np.array(
                [[rows.start, 0], [rows.start, nx - 1], [rows.stop - 1, 0], [rows.stop - 1, nx - 1]]
            )
            reach = corners @ matrix[0] + offset[0]
            i0 = max(int(np.floor(reach.min())) - 1, 0)
            i1 = min(int(np.ceil(reach.max())) + 2, sci.shape[0])
            if i1 <= i0:
                continue  # this band of the stack lies beyond the frame
            block = slice(i0, i1)
            good = ~any_set(mask[block], _BAD) & np.isfinite(sci[block])
            shift = offset + matrix @ [rows.start, 0] - [i0, 0]

            def warp(plane, shift=shift, rows=rows):
                return ndimage.affine_transform(
                    plane,
                    matrix,
                    shift,
                    output_shape=(rows.stop - rows.start, nx),
                    order=1,
                    mode="grid-constant",  # beyond the frame: 0, interpolated up to it
                )

            self.cover[rows] += warp(good.astype(np.float32))
            self.sum[rows] += warp(np.where(good, sci[block], zero))
            self.var[rows] += warp(np.where(good, err[block], zero) ** 2)
        self.n += 1
        return resid

    def result(self, min_cover: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The stack, its 1-sigma error (e-) and where fewer than ``min_cover`` of the
        frames cover a pixel (True: no data). Made in place from the sums: call it once,
        after the last :meth:`add`."""
        bad = self.cover < min_cover * self.n
        scale = np.maximum(self.cover, 1e-6, out=self.cover)
        np.divide(np.float32(self.n), scale, out=scale)
        scale[bad] = 0
        self.sum *= scale
        self.var *= scale
        err = np.sqrt(self.var, out=self.var)
        err[bad] = 1e15  # finite: sep weights pixels by products with the error
        return self.sum, err, bad


def deep_sources(sci, err, bad, wcs, known: pd.DataFrame, cfg: dict) -> tuple[pd.DataFrame, dict]:
    """Point sources on a stack that no catalog star or target explains.

    Parameters
    ----------
    sci, err : ndarray
        The stack (e-) and its error.
    bad : ndarray of bool
        Pixels without data.
    wcs : astropy.wcs.WCS
        The stack's astrometric solution.
    known : DataFrame
        Catalog stars and targets: ``ra``, ``dec`` (deg), ``mag`` (NaN for targets).
    cfg : dict
        The ``starlist`` config slice: ``thresh`` (detection, pixel sigma), ``minarea``,
        ``min_snr`` (the source's), ``max_elongation`` (a/b).

    Returns
    -------
    sources : DataFrame
        ``ra, dec, x, y, flux, snr`` on the stack and ``mag_est`` (on the catalog's
        scale, :func:`estimated_mag`), brightest first.
    info : dict
        ``fwhm`` of the stack (px), ``n_detected``, ``n_known`` (matched to a known star).
    """
    mask = np.where(bad, np.int32(Flag.BAD_PIXEL), np.int32(0))
    src, info = ext.extract_sources(
        sci,
        err,
        mask,
        thresh=cfg["thresh"],
        minarea=cfg["minarea"],
        box=cfg["background_box"],
    )
    fwhm = info["fwhm"] if np.isfinite(info["fwhm"]) else 3.0
    kx, ky = wcs.world_to_pixel_values(known["ra"].to_numpy(float), known["dec"].to_numpy(float))
    x, y = src["x"].to_numpy(float), src["y"].to_numpy(float)
    near_known, nearest = np.zeros(len(src), bool), np.zeros(len(src), int)
    if len(kx) and len(src):
        d, nearest = cKDTree(np.column_stack([kx, ky])).query(np.column_stack([x, y]))
        near_known = d < 2.0 * fwhm
    flux = src["flux"].to_numpy(float)
    mag_est = estimated_mag(
        flux, flux[near_known], known["mag"].to_numpy(float)[nearest[near_known]]
    )
    sigma = fwhm / 2.3548
    a, b = src["a"].to_numpy(float), src["b"].to_numpy(float)
    point = (b >= 0.3 * sigma) & (a <= cfg["max_elongation"] * np.maximum(b, 1e-6))
    keep = (
        ~near_known
        & point
        & (src["snr"].to_numpy(float) >= cfg["min_snr"])
        & (src["flags"].to_numpy() & ~int(Flag.BLENDED) == 0)
    )
    deep = src[keep]
    sky = wcs.pixel_to_world(x[keep], y[keep])
    out = pd.DataFrame(
        {
            "ra": sky.ra.deg,
            "dec": sky.dec.deg,
            "x": x[keep],
            "y": y[keep],
            "flux": flux[keep],
            "snr": deep["snr"].to_numpy(float),
            "mag_est": mag_est[keep],
        }
    ).sort_values("flux", ascending=False, ignore_index=True)
    info = {
        "fwhm": float(fwhm),
        "n_detected": int(len(src)),
        "n_known": int(near_known.sum()),
        "sky_rms": info["sky_rms"],
    }
    return out, info


def deep_ids(ra, dec, numeric: bool) -> np.ndarray:
    """Ids of deep sources from their positions (0.1 arcsec), unlike any catalog id: below
    :data:`DEEP_ID_BASE` beside numeric catalog ids, else ``deep:J<ra><dec>``.

    Examples
    --------
    >>> deep_ids([10.0], [-5.0], numeric=True).tolist()
    [-3432315047776]
    >>> deep_ids([10.0], [-5.0], numeric=False).tolist()
    ['deep:J10.00000-5.00000']
    """
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    if not numeric:
        return np.array([f"deep:J{r:.5f}{d:+.5f}" for r, d in zip(ra, dec, strict=True)])
    i = np.round(np.mod(ra, 360.0) * 36000).astype(np.int64)
    j = np.round((dec + 90.0) * 36000).astype(np.int64)
    return DEEP_ID_BASE - (i * 6_480_001 + j)


def estimated_mag(flux, cat_flux, cat_mag) -> np.ndarray:
    """Magnitudes of stack fluxes on the catalog's scale: the median offset of the catalog
    stars' magnitudes from their stack fluxes (used for neighbours' light, not science).

    Examples
    --------
    >>> estimated_mag([100.0], [1000.0, 10000.0], [15.0, 12.5]).round(3).tolist()
    [17.5]
    """
    cat_flux, cat_mag = np.asarray(cat_flux, float), np.asarray(cat_mag, float)
    ok = (cat_flux > 0) & np.isfinite(cat_mag)
    zp = np.median(cat_mag[ok] + 2.5 * np.log10(cat_flux[ok])) if ok.any() else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        return zp - 2.5 * np.log10(np.asarray(flux, float))
