"""Camera raw files (DSLR and mirrorless: CR2, CR3, NEF, ARW, DNG, ...), read through
rawpy (LibRaw) as the undemosaiced sensor array with a FITS header of what their
metadata holds.

The array is the visible area of the sensor in ADU less each channel's black level, so
it is read as a frame without overscan; the header gives ``EXPTIME`` (the shutter time),
``ISO``, ``DATE-OBS`` (the camera's clock: set ``utc_offset_hours`` in the instrument
profile when it keeps local time), ``BAYERPAT`` (the 2 x 2 colour pattern of the array
as stored, ``ROWORDER = 'TOP-DOWN'``), ``SATURATE`` (the white level less the black) and
the camera (``INSTRUME``). Frame types come from the file names (``bias_001.cr2``), or
every frame is a light when there are no calibration frames; the gain, unknown to the
file, is measured by photon transfer from the flats (:func:`fieldphot.stages.measure_camera`).

Examples
--------
>>> import tempfile
>>> from fieldphot import synthetic
>>> path = synthetic.write_dng(tempfile.mkdtemp() + "/light_001.dng", np.full((32, 48), 612),
...                            "RGGB", black=512, white=4095, exptime=30.0, iso=800)
>>> data, header = read(path)
>>> float(data.mean()), header["BAYERPAT"], header["SATURATE"], header["EXPTIME"], header["ISO"]
(100.0, 'RGGB', 3583.0, 30.0, 800.0)
"""

from pathlib import Path

import numpy as np
from astropy.io import fits

from .io import FrameError

#: File name endings of camera raw files (any case).
SUFFIXES = (".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".orf",
            ".rw2", ".pef", ".raf", ".srw", ".3fr", ".iiq", ".erf", ".mrw", ".x3f")  # fmt: skip


def is_camera_raw(path) -> bool:
    """Whether a file name ends as a camera raw file's.

    >>> is_camera_raw("night/IMG_0001.CR2"), is_camera_raw("a.fits")
    (True, False)
    """
    return str(path).lower().endswith(SUFFIXES)


def _open(path):
    """The file opened and unpacked (LibRaw reads its metadata with its pixels)."""
    import rawpy

    raw = rawpy.RawPy()
    try:
        raw.open_file(str(path))
        raw.unpack()
    except (rawpy.LibRawError, OSError) as exc:
        raw.close()
        cause = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise FrameError(f"{path}: not a readable camera raw file (LibRaw: {cause})") from None
    return raw


def _pattern(raw, path) -> str:
    """The 2 x 2 colour pattern of the visible array, as ``RGGB`` etc."""
    tile = raw.raw_pattern
    colours = raw.color_desc.decode()
    if tile is None or np.shape(tile) != (2, 2):
        shape = "x".join(map(str, np.shape(tile))) if tile is not None else "no"
        raise FrameError(
            f"{path}: a {shape} colour filter array (such as Fujifilm's X-Trans), not a 2 x 2 "
            "Bayer pattern: fieldphot measures Bayer sensors only"
        )
    pattern = "".join(colours[i] for i in np.ravel(tile))
    if sorted(pattern) != sorted("RGGB"):
        raise FrameError(f"{path}: colour filters {pattern!r} are no RGGB Bayer pattern")
    return pattern


def read_header(path) -> fits.Header:
    """The FITS header of a camera raw file, from its metadata.

    Raises :class:`fieldphot.io.FrameError` naming the file and the cause.
    """
    raw = _open(path)
    with raw:
        return _header(raw, path)


def _header(raw, path) -> fits.Header:
    other, sizes = raw.other, raw.sizes
    h = fits.Header()
    h["NAXIS"], h["NAXIS1"], h["NAXIS2"] = 2, sizes.width, sizes.height
    h["EXPTIME"] = (float(other.shutter_speed), "s, the shutter time")
    h["ISO"] = float(other.iso_speed)
    if other.timestamp.year > 1970:  # LibRaw's zero: no capture time in the file
        h["DATE-OBS"] = (other.timestamp.isoformat(), "the camera's clock")
    h["FILTER"] = ("none", "a colour camera: its channels are its filters")
    h["BAYERPAT"], h["ROWORDER"] = _pattern(raw, path), "TOP-DOWN"
    black = np.asarray(raw.black_level_per_channel, float)
    h["SATURATE"] = (float(raw.white_level) - float(black.max()), "ADU, the white level less black")
    h["BLACKLVL"] = (float(black.max()), "ADU, subtracted per channel")
    h["INSTRUME"] = Path(path).suffix.lstrip(".").upper() + " camera raw file"
    return h


def read(path) -> tuple[np.ndarray, fits.Header]:
    """The visible sensor array of a camera raw file in ADU less each channel's black
    level (float32), and its header (:func:`read_header`).

    Raises :class:`fieldphot.io.FrameError` naming the file and the cause (damaged,
    unsupported, not a Bayer sensor).
    """
    raw = _open(path)
    with raw:
        header = _header(raw, path)
        data = raw.raw_image_visible.astype(np.float32)
        data -= np.asarray(raw.black_level_per_channel, np.float32)[raw.raw_colors_visible]
    return data, header
