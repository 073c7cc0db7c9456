"""Colour (Bayer) frames: the mosaic's pattern, its four channel planes and the combined
green channel.

A one-shot-colour sensor puts a 2 x 2 tile of filters over its pixels (``RGGB``,
``BGGR``, ``GRBG`` or ``GBRG``, read along the first row, then the second). fieldphot
never interpolates (demosaics) a colour frame: after calibration on the mosaic each
frame is split into its four channel planes, ``R``, ``G1``, ``G2`` and ``B``, every
other pixel of every other row, at half the resolution (AutoWISP's choice: each plane
pixel is one real pixel, so the noise model stays exact). ``G1`` is the green of the
pattern's first row, ``G2`` that of its second. Each plane is measured as a frame of
its own; :func:`combine_green` adds the two greens of one exposure star by star.

Patterns here are always those of the array as stored (numpy row 0, column 0 first):
:func:`stored_pattern` turns a header's ``BAYERPAT``, its offsets ``XBAYROFF`` /
``YBAYROFF`` and its ``ROWORDER`` into that.

Examples
--------
>>> import numpy as np
>>> mosaic = np.arange(16).reshape(4, 4)
>>> plane(mosaic, "RGGB", "B").tolist()
[[5, 7], [13, 15]]
>>> offsets("GRBG")["R"]
(0, 1)
"""

import numpy as np
import pandas as pd

PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
#: The channel planes of a colour frame, in the order they are listed.
CHANNELS = ("R", "G1", "G2", "B")
#: The channel made of both greens (:func:`combine_green`).
GREEN = "G"


def normalized_pattern(value) -> str | None:
    """A header's pattern value as one of :data:`PATTERNS`, or None (none given, or a
    mosaic fieldphot does not split, such as X-Trans or CMYG).

    Examples
    --------
    >>> normalized_pattern(" rggb"), normalized_pattern("MONO"), normalized_pattern(None)
    ('RGGB', None, None)
    """
    text = str(value or "").strip().upper()
    return text if text in PATTERNS else None


def shifted(pattern: str, dy: int, dx: int) -> str:
    """The pattern seen from pixel (``dy``, ``dx``) of a mosaic with ``pattern``.

    Examples
    --------
    >>> shifted("RGGB", 0, 1), shifted("RGGB", 1, 0), shifted("RGGB", 3, 3)
    ('GRBG', 'GBRG', 'BGGR')
    """
    tile = np.array(list(pattern)).reshape(2, 2)
    return "".join(np.roll(tile, (-dy, -dx), axis=(0, 1)).ravel())


def stored_pattern(value, xoffset=0, yoffset=0, row_order=None, ny: int = 0) -> str | None:
    """The pattern of a stored array (numpy row 0 first) from header values.

    ``value`` (``BAYERPAT``) starts at pixel (``xoffset``, ``yoffset``) (``XBAYROFF``,
    ``YBAYROFF``) of the image read in ``row_order`` (``ROWORDER``): ``TOP-DOWN``, or
    none given, is the order the array is stored in; ``BOTTOM-UP`` counts rows from the
    array's last row (``ny`` rows), as capture programs that flip their frames write it.

    Examples
    --------
    >>> stored_pattern("RGGB"), stored_pattern("RGGB", 1, 0)
    ('RGGB', 'GRBG')
    >>> stored_pattern("RGGB", row_order="BOTTOM-UP", ny=1000)
    'GBRG'
    >>> stored_pattern("RGGB", row_order="BOTTOM-UP", ny=999)
    'RGGB'
    """
    pattern = normalized_pattern(value)
    if pattern is None:
        return None
    dx, dy = int(round(float(xoffset or 0))), int(round(float(yoffset or 0)))
    pattern = shifted(pattern, dy % 2, dx % 2)
    if str(row_order or "").strip().upper().replace("_", "-") == "BOTTOM-UP":
        # Stored row i is row ny-1-i of the pattern's order: the tile flipped, and moved
        # by a row where the count of rows is even.
        tile = np.array(list(pattern)).reshape(2, 2)[::-1]
        pattern = shifted("".join(tile.ravel()), (ny % 2), 0)
    return pattern


def offsets(pattern: str) -> dict[str, tuple[int, int]]:
    """Each channel's first (row, column) in a mosaic with ``pattern``.

    Examples
    --------
    >>> offsets("RGGB")
    {'R': (0, 0), 'G1': (0, 1), 'G2': (1, 0), 'B': (1, 1)}
    """
    out, greens = {}, iter(("G1", "G2"))
    for k, colour in enumerate(pattern):
        out[next(greens) if colour == "G" else colour] = divmod(k, 2)
    return {c: out[c] for c in CHANNELS}


def plane(array: np.ndarray, pattern: str, channel: str) -> np.ndarray:
    """The ``channel`` plane of a mosaic (a view: every other pixel of every other row)."""
    r0, c0 = offsets(pattern)[channel]
    return array[r0::2, c0::2]


def normalize_channels(flat: np.ndarray) -> np.ndarray:
    """A colour flat divided, channel by channel (each pixel parity of the 2 x 2 tile),
    by that channel's median: each channel's own throughput stays in its zeropoint.

    Examples
    --------
    >>> flat = np.tile([[2.0, 4.0], [4.0, 8.0]], (3, 3))
    >>> np.unique(normalize_channels(flat)).tolist()
    [1.0]
    """
    out = np.array(flat, dtype=float)
    for r0 in (0, 1):
        for c0 in (0, 1):
            out[r0::2, c0::2] /= np.nanmedian(out[r0::2, c0::2])
    return out


def _flux(mag):
    return 10 ** (-0.4 * np.asarray(mag, float))


def _mag(flux):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, -2.5 * np.log10(np.where(flux > 0, flux, 1.0)), np.nan)


def combine_green(g1: pd.DataFrame, g2: pd.DataFrame) -> pd.DataFrame:
    """Star-by-star sum of the two green planes' light of one exposure, as a catalog.

    The instrumental fluxes add; the errors add in quadrature; the calibrated magnitude
    uses each plane's own zeropoint (``mag - mag_inst``, per star when a colour term
    applies), so the sum's zeropoint is ``2.5 log10(10^(0.4 zp1) + 10^(0.4 zp2))``.
    Flags are either plane's; positions, ids and star columns are ``g1``'s. A star only
    one plane has is left out.

    Examples
    --------
    >>> t = pd.DataFrame({"id": [1], "mag_inst": [-10.0], "mag_inst_err": [0.01],
    ...                   "mag": [15.0], "mag_err": [0.012], "flags": [0]})
    >>> g = combine_green(t, t)
    >>> round(float(g["mag_inst"][0]), 4), round(float(g["mag"][0]), 4)
    (-10.7526, 15.0)
    >>> round(float(g["mag_inst_err"][0]), 5)
    0.00707
    """
    both = g1.merge(g2, on="id", suffixes=("", "_2"))
    out = both[[c for c in g1.columns]].copy()
    f1, f2 = _flux(both["mag_inst"]), _flux(both["mag_inst_2"])
    e1 = f1 * np.asarray(both["mag_inst_err"], float)
    e2 = f2 * np.asarray(both["mag_inst_err_2"], float)
    total = f1 + f2
    out["mag_inst"] = _mag(total)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.hypot(e1, e2) / total
    out["mag_inst_err"] = rel
    if "mag" in g1:
        zp1 = np.asarray(both["mag"], float) - np.asarray(both["mag_inst"], float)
        zp2 = np.asarray(both["mag_2"], float) - np.asarray(both["mag_inst_2"], float)
        zp = -_mag(_flux(-zp1) + _flux(-zp2))
        out["mag"] = out["mag_inst"] + zp
        # the zeropoints' own errors (in mag_err, beside the star's) are shared by both
        # planes' light: the quadrature sum of the two calibrated errors less the star's
        zp_var = np.clip(
            np.asarray(both["mag_err"], float) ** 2 - np.asarray(both["mag_inst_err"], float) ** 2,
            0,
            None,
        )
        out["mag_err"] = np.sqrt(rel**2 + zp_var)
    if "mag_lim" in g1 and "mag" in g1:  # the sum's noise: the planes' noises in quadrature
        lim1 = _flux(np.asarray(both["mag_lim"], float) - zp1)
        lim2 = _flux(np.asarray(both["mag_lim_2"], float) - zp2)
        out["mag_lim"] = _mag(np.hypot(lim1, lim2)) + zp
    if "snr" in g1:
        with np.errstate(divide="ignore", invalid="ignore"):
            out["snr"] = total / np.hypot(e1, e2)
    for col in ("sky", "peak"):
        if col in g1:
            out[col] = both[col].to_numpy(float) + both[f"{col}_2"].to_numpy(float)
    if "peak" in g1:  # a peak is judged against the saturation level: the larger one
        out["peak"] = np.fmax(both["peak"].to_numpy(float), both["peak_2"].to_numpy(float))
    out["flags"] = both["flags"].to_numpy(np.int64) | both["flags_2"].to_numpy(np.int64)
    if "detected" in g1:
        out["detected"] = both["detected"].to_numpy(bool) | both["detected_2"].to_numpy(bool)
    return out.reset_index(drop=True)


def green_frames(frames: pd.DataFrame) -> pd.DataFrame:
    """The combined-green frames of a night: one per exposure whose ``G1`` and ``G2``
    planes were both measured (``frames``: a night's frames table, with ``exposure``,
    ``channel``, ``measured`` and ``catalog``), as rows of that table: ``G1``'s with
    frame ``<exposure>_G``, filter and channel ``G``, ``catalog`` the pair of catalogs
    (for :func:`combine_green`), the zeropoint of the sum, and the worse status.

    Examples
    --------
    >>> f = pd.DataFrame({"frame": ["a_G1", "a_G2", "a_R"], "exposure": "a",
    ...     "channel": ["G1", "G2", "R"], "filter": ["G1", "G2", "R"], "measured": True,
    ...     "catalog": ["g1.parquet", "g2.parquet", "r.parquet"], "zp": [21.0, 21.0, 20.0],
    ...     "status": "ok"})
    >>> g = green_frames(f)
    >>> g["frame"].tolist(), g["catalog"].tolist(), round(float(g["zp"][0]), 3)
    (['a_G'], [('g1.parquet', 'g2.parquet')], 21.753)
    """
    if "channel" not in frames or not (frames["channel"] == "G1").any():
        return frames.iloc[:0]
    use = frames[frames["measured"].astype(bool)]
    g1 = use[use["channel"] == "G1"].set_index("exposure")
    g2 = use[use["channel"] == "G2"].set_index("exposure")
    both = g1.index.intersection(g2.index)
    out = g1.loc[both].reset_index()
    other = g2.loc[both].reset_index()
    out["frame"] = out["exposure"] + "_" + GREEN
    out["filter"] = out["channel"] = GREEN
    out["catalog"] = list(zip(out["catalog"], other["catalog"], strict=True))
    if "zp" in out:
        zp1, zp2 = out["zp"].astype(float), other["zp"].astype(float)
        out["zp"] = -_mag(_flux(-zp1) + _flux(-zp2))
    if "status" in out:
        out["status"] = np.where(other["status"] != "ok", other["status"], out["status"])
    return out[frames.columns]
