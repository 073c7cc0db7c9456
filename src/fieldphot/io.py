"""All disk access: FITS frames, Parquet tables with metadata, reference-catalog files.

Every writer writes to a hidden temporary name beside the target and renames it, so a
killed job never leaves a half-written product. Nothing here writes next to an input.

Examples
--------
>>> import pandas as pd, tempfile, os
>>> d = tempfile.mkdtemp()
>>> write_table(os.path.join(d, "t.parquet"), pd.DataFrame({"a": [1, 2]}), {"status": "ok"})
>>> df, meta = read_table(os.path.join(d, "t.parquet"))
>>> df["a"].tolist(), meta["status"]
([1, 2], 'ok')
"""

import contextlib
import copy
import hashlib
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.io import fits
from astropy.table import Table
from astropy.units import UnitsWarning

from . import __version__
from .calibration import row_bands

META_KEY = b"fieldphot"


class FrameError(Exception):
    """A raw frame that cannot be used; the message names the file and the reason."""


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.txt")
    >>> with atomic_path(p) as tmp:
    ...     _ = open(tmp, "w").write("hi")
    >>> open(p).read()
    'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class ScratchStack:
    """A (frames, rows, cols) float32 stack kept in a scratch file, read a band at a time.

    Supports ``stack[i] = frame``, ``stack[i]``, ``stack[:, r0:r1]`` and ``stack[:n]`` (a
    view of the first ``n`` frames); plain reads and writes (no memory map), so only what
    is asked for is ever in memory.
    """

    def __init__(self, path, shape):
        self.path, self.shape = Path(path), tuple(int(v) for v in shape)
        self._fh = open(self.path, "w+b")  # noqa: SIM115 - closed by scratch_stack
        self._frame = self.shape[1] * self.shape[2]
        self._fh.truncate(self.shape[0] * self._frame * 4)  # sparse: frames not set read as 0

    def __setitem__(self, i, frame):
        self._fh.seek(int(i) * self._frame * 4)
        self._fh.write(memoryview(np.ascontiguousarray(frame, np.float32)))

    def __getitem__(self, key):
        if isinstance(key, int | np.integer):  # one frame: read only that frame
            self._fh.seek(int(key) * self._frame * 4)
            return np.frombuffer(self._fh.read(self._frame * 4), np.float32).reshape(self.shape[1:])
        if isinstance(key, slice):  # the first frames, as a view of the same file
            start, stop, step = key.indices(self.shape[0])
            if start != 0 or step != 1:
                raise IndexError("a scratch stack's frames are taken from the first")
            view = copy.copy(self)
            view.shape = (stop, *self.shape[1:])
            return view
        _, rows = key
        r0, r1, _ = rows.indices(self.shape[1])
        n, _, nx = self.shape
        out = np.empty((n, r1 - r0, nx), np.float32)
        for i in range(n):
            self._fh.seek((i * self._frame + r0 * nx) * 4)
            out[i] = np.frombuffer(self._fh.read((r1 - r0) * nx * 4), np.float32).reshape(-1, nx)
        return out

    def close(self):
        self._fh.close()


@contextlib.contextmanager
def scratch_stack(beside, shape):
    """A :class:`ScratchStack` in a hidden file beside ``beside``; deleted afterwards.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> with scratch_stack(os.path.join(d, "m.fits"), (3, 4, 5)) as s:
    ...     s[1] = np.ones((4, 5))
    ...     float(s[:, 1:3].sum()), s[1].shape, s[:2].shape
    (10.0, (4, 5), (2, 4, 5))
    >>> os.listdir(d)
    []
    """
    beside = Path(beside)
    beside.parent.mkdir(parents=True, exist_ok=True)
    stack = ScratchStack(beside.with_name(f".{beside.name}.{os.getpid()}.stack"), shape)
    try:
        yield stack
    finally:
        stack.close()
        stack.path.unlink(missing_ok=True)


def _merged_header(hdul) -> fits.Header:
    """The primary header merged with the first image extension's (for MEF frames)."""
    header = hdul[0].header.copy()
    if header.get("NAXIS", 0) == 0:
        for hdu in hdul[1:]:
            if hdu.is_image and hdu.header.get("NAXIS", 0) >= 2:
                header.update({k: v for k, v in hdu.header.items() if k not in ("", "COMMENT")})
                break
    return header


def read_header(path) -> fits.Header:
    """Header of a raw frame: the primary header merged with the first image extension's.

    Raises :class:`FrameError` naming the file for anything unreadable, and for a file
    shorter than its headers say (a truncated copy), found without reading the data. A
    camera raw file's header is made from its metadata (:mod:`fieldphot.camera_raw`).
    """
    from . import camera_raw

    if camera_raw.is_camera_raw(path):
        return camera_raw.read_header(path)
    try:
        with open(path, "rb") as fh:  # gzip, bzip2, zip: astropy finds their truncation
            compressed = fh.read(2) in (b"\x1f\x8b", b"BZ", b"PK")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "File may have been truncated")  # said below
            hdul = fits.open(path, memmap=False)
        with hdul:
            size = os.path.getsize(path)
            for hdu in hdul if not compressed else ():
                # All the data its headers declare (tile-compressed too), short of at most
                # the last block's padding, which some writers leave out.
                info = hdu.fileinfo()
                end = info["datLoc"] + info["datSpan"]
                if size < end - min(info["datSpan"], 2879):
                    raise FrameError(f"{path}: truncated FITS file ({size} of {end} bytes)")
            return _merged_header(hdul)
    except (OSError, ValueError, TypeError, EOFError) as exc:
        raise FrameError(f"{path}: not a readable FITS file ({exc})") from exc


def verify_compressed(path) -> None:
    """Read a gzip-compressed file to its end, where its CRC is checked: astropy stops
    when it has the pixels, so damaged data (a bad copy) would come out as pixels.

    Raises :class:`FrameError` naming the file and the cause; a plain file passes.
    """
    import gzip
    import zlib

    with open(path, "rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            return
    try:
        with gzip.open(path, "rb") as g:
            while g.read(1 << 24):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        raise FrameError(
            f"{path}: damaged gzip data ({exc}): the file was corrupted in a copy; copy it again"
        ) from exc


try:  # what a damaged tile of a tile-compressed (fpack) image raises
    from astropy.io.fits.hdu.compressed._compression import (
        CfitsioException as _DecompressionError,
    )
except ImportError:  # pragma: no cover - astropy moved it
    _DecompressionError = OSError


def read_amplifiers(path) -> tuple[list[tuple[np.ndarray, fits.Header]], fits.Header]:
    """Every 2-D image in a raw file (one per amplifier for multi-extension frames), each
    with its own header, and the merged header of the frame; the file is read once. A
    camera raw file is one image (:func:`fieldphot.camera_raw.read`)."""
    from . import camera_raw

    if camera_raw.is_camera_raw(path):
        data, header = camera_raw.read(path)
        return [(data, header)], header
    try:
        verify_compressed(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # checksum=True: astropy checks CHECKSUM/DATASUM where the file has them
            with fits.open(path, memmap=False, checksum=True) as hdul:
                header = _merged_header(hdul)
                amps = [
                    (np.asarray(h.data, np.float32), h.header.copy())
                    for h in hdul
                    if h.is_image and h.data is not None and h.data.ndim == 2
                ]
    except _DecompressionError as exc:
        raise FrameError(
            f"{path}: damaged tile-compressed data ({exc}): the file was corrupted in a copy; "
            "copy it again"
        ) from exc
    except (OSError, ValueError, TypeError, EOFError) as exc:
        raise FrameError(f"{path}: not a readable FITS file ({exc})") from exc
    for w in caught:
        # DATASUM, not CHECKSUM: a header edited by hand breaks only the latter
        if "Datasum verification failed" in str(w.message):
            raise FrameError(
                f"{path}: its pixels do not match the file's own DATASUM (the file was "
                "damaged after it was written): copy it again from the source"
            )
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not amps:
        raise FrameError(f"{path}: no 2-D image in the file")
    return amps, header


def provenance_cards(config_slice: dict, inputs) -> list[tuple[str, str]]:
    """FITS (keyword, value) cards recording the fieldphot version, config slice and inputs."""
    cards = [("FP_VERS", __version__), ("FP_CONF", json.dumps(config_slice, sort_keys=True))]
    cards += [(f"FP_IN{i:03d}", fits_text(os.path.basename(str(p)))) for i, p in enumerate(inputs)]
    return cards


def fits_text(text) -> str:
    r"""``text`` as a FITS header string: every character outside printable ASCII escaped
    (a file name in any script, a path in a failure reason, fits in a card).

    Examples
    --------
    >>> print(fits_text("M31_étoile_Ω.fits"))
    M31_\xe9toile_\u03a9.fits
    """
    ascii_ = str(text).encode("ascii", "backslashreplace").decode("ascii")
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", ascii_)


def write_fits(path, data: np.ndarray, header: fits.Header, extra: dict | None = None) -> None:
    """Write one image (float32) with ``header``, and optional named image extensions."""
    hdus = [fits.PrimaryHDU(np.asarray(data, np.float32), header=header)]
    for name, arr in (extra or {}).items():
        hdus.append(fits.ImageHDU(arr, name=name))
    with atomic_path(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True, output_verify="silentfix")


def read_master(
    path, rows: slice = slice(None)
) -> tuple[np.ndarray, np.ndarray | None, fits.Header]:
    """A master calibration frame (or a band of its ``rows``): data, its MASK extension (or
    None) and header. Only the band is read from disk."""
    with fits.open(path, memmap=False) as hdul:
        mask = _native(hdul["MASK"].section[rows], np.int32) if "MASK" in hdul else None
        return _native(hdul[0].section[rows], np.float32), mask, hdul[0].header.copy()


def _native(data, dtype) -> np.ndarray:
    """``data`` as a native-byte-order array of ``dtype``: FITS holds big-endian numbers."""
    return np.asarray(data, np.dtype(dtype).newbyteorder("="))


def write_calibrated(path, sci, err, mask, header: fits.Header) -> None:
    """Write a calibrated frame: SCI (e-) primary, ERR (e-) and MASK (bit flags)."""
    header = header.copy()
    header["BUNIT"] = "electron"
    hdus = fits.HDUList(
        [
            fits.PrimaryHDU(np.asarray(sci, np.float32), header=header),
            fits.ImageHDU(np.asarray(err, np.float32), name="ERR"),
            fits.ImageHDU(np.asarray(mask, np.int32), name="MASK"),
        ]
    )
    hdus[0].header["EXTNAME"] = "SCI"
    with atomic_path(path) as tmp:
        hdus.writeto(tmp, overwrite=True, output_verify="silentfix")


def read_calibrated(path) -> tuple[np.ndarray, np.ndarray, np.ndarray, fits.Header]:
    """Read a calibrated frame written by :func:`write_calibrated`: SCI and ERR as float32,
    MASK as int32, each read straight into its native array (one copy of each plane in
    memory, however large the frame)."""
    with fits.open(path, memmap=False) as hdul:
        return (
            _read_plane(hdul[0], np.float32),
            _read_plane(hdul["ERR"], np.float32),
            _read_plane(hdul["MASK"], np.int32),
            hdul[0].header.copy(),
        )


def _read_plane(hdu, dtype, band_bytes: float = 64e6) -> np.ndarray:
    """An image HDU read a band of rows at a time into one native array of ``dtype``."""
    ny, nx = hdu.shape
    out = np.empty((ny, nx), dtype)
    for rows in row_bands(ny, nx * out.itemsize, band_bytes):
        out[rows] = hdu.section[rows]
    return out


def _jsonable(meta: dict) -> dict:
    def conv(v):
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [conv(x) for x in v]
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, float) and not np.isfinite(v):
            return None
        return v

    return {"fieldphot_version": __version__, **conv(meta)}


def write_table(path, df: pd.DataFrame, meta: dict) -> None:
    """Write a Parquet table with ``meta`` (JSON) in the schema metadata."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    md = dict(table.schema.metadata or {})
    md[META_KEY] = json.dumps(_jsonable(meta)).encode()
    table = table.replace_schema_metadata(md)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_table(path, columns=None) -> tuple[pd.DataFrame, dict]:
    """Read a Parquet table and its fieldphot metadata (an empty dict when absent)."""
    table = pq.read_table(path, columns=columns)
    raw = (table.schema.metadata or {}).get(META_KEY)
    return table.to_pandas(), (json.loads(raw) if raw else {})


def write_table_chunks(path, chunks, meta: dict) -> None:
    """Write a Parquet table from an iterator of DataFrames (one row group each, all with
    the first's schema), so a table larger than memory is never held whole."""
    with atomic_path(path) as tmp:
        writer = None
        for df in chunks:
            table = pa.Table.from_pandas(df, preserve_index=False)
            if writer is None:
                md = dict(table.schema.metadata or {})
                md[META_KEY] = json.dumps(_jsonable(meta)).encode()
                writer = pq.ParquetWriter(tmp, table.schema.with_metadata(md))
            writer.write_table(table.replace_schema_metadata(writer.schema.metadata))
        if writer is None:
            raise ValueError(f"{path}: no rows to write")
        writer.close()


def read_tables(paths, columns=None, filters=None) -> pd.DataFrame:
    """Several Parquet tables (the nights of a partitioned table) as one DataFrame, with
    only ``columns`` and the rows ``filters`` keeps (pyarrow's DNF filters)."""
    parts = [pq.read_table(p, columns=columns, filters=filters) for p in paths]
    parts = [t.replace_schema_metadata(None) for t in parts]
    if not parts:
        return pd.DataFrame(columns=columns)
    table = pa.concat_tables(parts, promote_options="permissive")
    del parts
    # self_destruct: each column's Arrow memory is freed as it is converted (half the peak).
    return table.to_pandas(self_destruct=True, split_blocks=True)


def column_names(path) -> list[str]:
    """A Parquet table's column names, from its footer alone."""
    return pq.read_schema(path).names


def read_meta(path) -> dict:
    """A Parquet table's fieldphot metadata alone."""
    raw = (pq.read_schema(path).metadata or {}).get(META_KEY)
    return json.loads(raw) if raw else {}


def file_digest(path) -> str:
    """SHA-256 of a file's bytes, read in 1 MB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_any_table(path) -> pd.DataFrame:
    """A table from Parquet, ECSV, FITS, CSV or VOTable, by file extension."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".parquet"):
        return pd.read_parquet(path)
    if name.endswith(".csv"):
        return pd.read_csv(path)
    fmt = {".ecsv": "ascii.ecsv", ".vot": "votable", ".xml": "votable"}.get(path.suffix.lower())
    with warnings.catch_warnings():  # catalogs often carry non-standard unit strings
        warnings.simplefilter("ignore", UnitsWarning)
        return Table.read(path, format=fmt).to_pandas() if fmt else Table.read(path).to_pandas()


def write_xylist(path, x, y, flux) -> None:
    """A source list for astrometry.net: ``X, Y`` (1-based, FITS convention), ``FLUX``."""
    Table(
        {
            "X": np.asarray(x, float) + 1.0,
            "Y": np.asarray(y, float) + 1.0,
            "FLUX": np.asarray(flux, float),
        }
    ).write(path, overwrite=True)


def read_json(path):
    """A JSON file's content."""
    return json.loads(Path(path).read_text())


def write_text(path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def save_figure(fig, path) -> None:
    """Save a matplotlib figure atomically (format from the suffix) and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)


#: FITS header keywords for an export's metadata (FITS keys are at most 8 characters).
_FITS_KEYS = {"band": "BAND", "magnitude_system": "MAGSYS", "fieldphot_version": "FPVERS"}


def write_export(path, table: Table, fmt: str, document: dict | None = None) -> None:
    """Write an export atomically: ``csv``, ``ecsv``, ``fits`` or ``parquet`` from the
    astropy ``table`` (units kept where the format can), ``json`` from ``document``."""
    with atomic_path(path) as tmp:
        if fmt == "json":
            Path(tmp).write_text(json.dumps(document, allow_nan=False, default=str))
        elif fmt == "fits":
            t = table.copy(copy_data=False)
            t.meta = {_FITS_KEYS.get(k, k): v for k, v in t.meta.items()}
            # 'electron' is not a FITS-standard unit; written as TUNITn = 'electron' (as
            # HST and JWST products do) rather than dropped.
            units = {c: t[c].unit for c in t.colnames}
            for c in t.colnames:
                t[c].unit = None
            hdu = fits.table_to_hdu(t)
            for i, c in enumerate(t.colnames, start=1):
                if units[c] is not None:
                    hdu.header[f"TUNIT{i}"] = str(units[c])
            hdu.writeto(tmp)
        else:
            table.write(tmp, format={"csv": "ascii.csv", "ecsv": "ascii.ecsv"}.get(fmt, fmt))
