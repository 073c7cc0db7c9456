"""One function per workflow stage: read inputs through :mod:`fieldphot.io`, call the
science, write the output. The Snakemake scripts, the benchmarks and the tests all run
the pipeline through these functions, so there is one code path.

Each per-frame table carries the frame's metadata and every stage's diagnostics in its
Parquet metadata; a science failure (no stars, no WCS, too few calibration stars) is
written as an empty table with a ``status`` and ``reason``, never raised.

Examples
--------
>>> import tempfile, os
>>> from fieldphot import synthetic
>>> d = tempfile.mkdtemp()
>>> night = synthetic.simulate_night(d, synthetic.SimConfig(nx=96, ny=96, n_science=1,
...     n_bias=2, n_dark=2, n_flat=2, seed=5))
>>> m = manifest(sorted(night.raw_dir.iterdir()), os.path.join(d, "manifest.parquet"))
>>> sorted(m["kind"].value_counts().items())
[('bias', 2), ('dark', 2), ('flat', 2), ('science', 1)]
"""

import contextlib
import json
import logging
import math
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from astropy.io import fits

from . import (
    bands,
    bayer,
    camera_raw,
    catalog_query,
    ephemeris,
    headers,
    io,
    layout,
    lightcurves,
    measure,
    report,
    season,
    steps,
    wcsmodel,
)
from . import calibration as cal
from . import config as cfgmod
from . import export as xport
from . import extract as ext
from . import manifest as mf
from . import refcat as rcat
from . import solve as sol
from . import starlist as sl
from . import zeropoint as zpt
from .flags import Flag, any_set

log = logging.getLogger("fieldphot")

#: Frame metadata carried in calibrated-frame headers: dict key -> FITS keyword.
FRAME_CARDS = {
    "frame": "FP_FRAME",
    "night": "FP_NIGHT",
    "filter": "FP_FILT",
    "exptime": "FP_EXPT",
    "mjd_utc_mid": "FP_MJD",
    "bjd_tdb": "FP_BJD",
    "airmass": "FP_AIRM",
    "read_noise": "FP_RN",
    "gain": "FP_GAIN",
    "ra": "FP_RA",
    "dec": "FP_DEC",
    "object": "FP_OBJ",
    "saturation_e": "FP_SATE",
    "pixel_scale": "FP_SCALE",
    "site_lat": "FP_LAT",
    "site_lon": "FP_LON",
    "site_elev": "FP_ELEV",
    "cal_flags": "FP_CALFL",
    "exposure": "FP_EXPO",
    "channel": "FP_CHAN",
}


@contextlib.contextmanager
def logged(path):
    """Send the ``fieldphot`` log to ``path`` (a rule's log file) while the block runs."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield log
    except Exception:
        log.exception("failed")
        raise
    finally:
        log.removeHandler(handler)
        handler.close()


def progress(i: int, n: int, what: str) -> None:
    """Log that item ``i`` (0-based) of ``n`` is done, at about every tenth: long steps
    show their progress in their log."""
    if (i + 1) % max(1, n // 10) == 0 or i + 1 == n:
        log.info("%s: %d of %d (%.0f %%)", what, i + 1, n, 100.0 * (i + 1) / n)


def load_profile(path) -> headers.Profile:
    """An instrument profile from a YAML file (the generic profile when ``path`` is empty)."""
    if not path:
        return headers.DEFAULT_PROFILE
    return headers.profile_from_dict(cfgmod.read_file(path), str(path))


# ----------------------------------------------------------------------------- manifest
def manifest(
    raw_paths,
    out,
    profile_path: str = "",
    observatory: dict | None = None,
    sky_dark_min_frames: int = 5,
    raw_dir=None,
    raw_state: str = "",
    pointing: dict | None = None,
):
    """Read every raw header once and write the manifest table; returns it. With
    ``raw_dir``, what in it could not be looked at (:func:`fieldphot.manifest.scan_raw`)
    is listed too, as ``bad`` rows with the cause. Each file's content digest is a column
    (``digest``); ``raw_state`` (:func:`fieldphot.manifest.raw_state`, what made the
    workflow remake the manifest) is recorded with it; ``pointing`` (``ra``, ``dec``) is the
    field centre of frames whose headers give none."""
    items = (
        [(p, io.FrameError(f"{p}: {why}")) for p, why in mf.scan_raw(raw_dir)[1]] if raw_dir else []
    )
    for p in raw_paths:
        try:
            items.append((str(p), io.read_header(p)))
        except io.FrameError as exc:
            items.append((str(p), exc))
    digests = mf.content_digests(raw_paths, Path(out).parent / ".raw_digests.json")
    df = mf.build_manifest(
        items, load_profile(profile_path), observatory, sky_dark_min_frames, digests, pointing
    )
    measure_camera(df)
    for reason in df.loc[df["status"] != "ok", "reason"]:
        log.warning(reason)
    for note in df.attrs.get("notes", []):
        log.warning(note)
    counts = df[df["status"] == "ok"].groupby(["night", "kind", "filter"]).size()
    log.info("manifest: %d frames\n%s", len(df), counts.to_string())
    meta = {"profile": profile_path or "generic", "observatory": observatory}
    meta["raw_state"] = raw_state
    io.write_table(out, df, {**meta, "notes": df.attrs.get("notes", [])})
    return df


def measure_camera(df: pd.DataFrame, n_pairs: int = 4) -> None:
    """Where the headers give no saturation level or gain (``guessed``), measure them
    from the frames of each binning and readout, and say so in a note (the manifest is
    updated in place; what cannot be measured keeps the profile's default):

    - saturation: the pile-up of star peaks on ``2 * n_pairs`` science frames
      (:func:`fieldphot.calibration.saturation_level`);
    - gain (and its error, column ``gain_err``): photon transfer on pairs of consecutive
      flats, or science frames when there are no flats
      (:func:`fieldphot.calibration.gain_from_pairs`), the bias level and read noise from
      two bias frames when there are.
    """
    guessed = df["guessed"].fillna("")
    todo = guessed.str.contains("saturate|gain") & (df["status"] == "ok")
    trim = dict(zip(df["path"], df["trimsec"], strict=True))
    for binning, readout in (
        df.loc[todo, ["binning", "readout"]].drop_duplicates().itertuples(index=False)
    ):
        group = (df["binning"] == binning) & (df["readout"] == readout) & (df["status"] == "ok")
        setup = f"({binning}, {readout})"
        wants = set(",".join(guessed[group & todo]).split(","))
        sci = df[group & (df["kind"] == "science")].sort_values("mjd_utc_mid")
        sci = sci.drop_duplicates("path")  # a colour frame's channels share its file
        pairs = _consecutive_pairs(sci, n_pairs)
        flats = df[group & (df["kind"] == "flat")].sort_values("mjd_utc_mid")
        flat_pairs = _consecutive_pairs(flats, n_pairs)  # uniform and bright: the better
        images = {p: _single_image(p, trim[p]) for pair in pairs + flat_pairs for p in pair}
        if "saturate" in wants:
            peaks = [cal.local_peaks(images[p]) for p in sci["path"] if images.get(p) is not None]
            level = cal.saturation_level(np.concatenate(peaks)) if peaks else None
            if level is not None:
                note = (
                    f"no saturation level in the headers {setup}: measured {level:.0f} ADU "
                    "from the pile-up of star peaks"
                )
                _measured(df, group & guessed.str.contains("saturate"), "saturate", level, note)
        if "gain" in wants:
            bias = df[group & (df["kind"] == "bias")]["path"][:2]
            gain, err, how = _measure_gain(
                flat_pairs or pairs,
                images,
                [_single_image(p, trim[p]) for p in bias],
                colour=(df.loc[group, "bayer"] != "").any(),
            )
            if np.isfinite(gain):
                where = group & guessed.str.contains("gain")
                df.loc[where, "gain_err"] = err
                note = f"no gain in the headers {setup}: measured {gain:.3f} +- {err:.3f} e-/ADU"
                _measured(df, where, "gain", gain, f"{note} by photon transfer ({how})")


def _measured(df: pd.DataFrame, where, key: str, value: float, note: str) -> None:
    """Set a measured camera value where it was guessed, and say so once."""
    df.loc[where, key] = value
    df.loc[where, "guessed"] = [
        ",".join(q for q in str(v).split(",") if q != key) for v in df.loc[where, "guessed"]
    ]
    df.attrs.setdefault("notes", []).append(note)


def _consecutive_pairs(rows: pd.DataFrame, n: int) -> list[tuple[str, str]]:
    """Up to ``n`` pairs of frames taken one after the other (same filter and exposure),
    spread over ``rows`` (in time order)."""
    paths = rows["path"].tolist()
    same = [
        i
        for i in range(len(rows) - 1)
        if rows["filter"].iloc[i] == rows["filter"].iloc[i + 1]
        and rows["exptime"].iloc[i] == rows["exptime"].iloc[i + 1]
    ]
    pick = (
        [same[k] for k in np.unique(np.linspace(0, len(same) - 1, min(n, len(same))).astype(int))]
        if same
        else []
    )
    return [(paths[i], paths[i + 1]) for i in pick]


def _single_image(path, trimsec=None):
    """A raw frame's one image (ADU; its TRIMSEC when given), or None for an unreadable
    or multi-amplifier file."""
    try:
        amps, _ = io.read_amplifiers(path)
    except io.FrameError:
        return None
    if len(amps) != 1:
        return None
    return amps[0][0][cal.parse_section(trimsec)] if trimsec else amps[0][0]


def _measure_gain(pairs, images: dict, biases: list, colour=False) -> tuple[float, float, str]:
    """Gain and error from frame pairs; the bias level and read noise from two bias frames
    (images) when there are, else from the spread of the pairs' levels. A ``colour``
    sensor's pairs are measured channel by channel (each pixel parity of its 2 x 2 tile:
    the channels' levels differ, and the noise of their mixture is no one level's)."""
    known = len(biases) == 2 and all(b is not None for b in biases)
    level, read_var = cal.pair_noise(*biases) if known else (0.0, None)
    parts = [(slice(r, None, 2), slice(c, None, 2)) for r in (0, 1) for c in (0, 1)]
    stats = [
        cal.pair_noise(images[a][part], images[b][part], level)
        for a, b in pairs
        if images[a] is not None and images[b] is not None
        for part in (parts if colour else [(slice(None), slice(None))])
    ]
    if not stats:
        return float("nan"), float("nan"), ""
    levels, variances = (np.array(v) for v in zip(*stats, strict=True))
    if known:
        g, err = cal.gain_from_pairs(levels, variances, level, read_var)
        return g, err, f"{len(stats)} frame pairs, bias from 2 bias frames"
    g, err = cal.gain_from_pairs(levels, variances)
    return g, err, f"{len(stats)} frame pairs of different levels, no bias frames"


def reference_catalog(manifest_path, out, cfg: dict, transport: dict):
    """The run's reference catalog: the local file ``cfg["path"]`` standardized, or, when
    there is none, the stars of every pointing from VizieR through the catalog cache
    (:func:`fieldphot.catalog_query.field_reference`). When no catalog can be had (offline and
    nothing cached, or no catalog covers the field), an empty catalog with the reason: the
    night runs on the stars of its own frames (instrumental and differential light curves,
    no zeropoint). ``cfg``: :func:`fieldphot.steps.reads` ``("reference_catalog", ...)``;
    ``transport``: the :data:`fieldphot.steps.TRANSPORT` settings."""
    if cfg["path"]:
        table = rcat.standardize(io.read_any_table(cfg["path"]), cfg["columns"])
        meta = {
            "source": str(cfg["path"]),
            "magnitude_system": cfg["magnitude_system"] or "Vega",
            "band": cfg["columns"]["mag"],
        }
    else:
        m, _ = io.read_table(manifest_path)
        sci = m[(m["kind"] == "science") & (m["status"] == "ok")]
        band = cfg["band"] or _bands(sci["filter"])
        try:
            table, meta = catalog_query.field_reference(
                rcat.fields(sci, cfg["radius_deg"]),
                {**cfg, **transport},
                band,
                transport["cache_dir"],
            )
        except (catalog_query.CatalogError, rcat.NoPointing) as exc:
            reason = (
                f"{exc}; the night runs without a catalog (no zeropoints): set "
                "reference_catalog.path to a local catalog file for calibrated magnitudes"
            )
            log.warning(reason)
            table = rcat.empty()
            meta = {"source": "none", "band": band, "magnitude_system": None, "reason": reason}
    log.info("reference catalog %s: %d stars", meta.get("source", meta.get("catalog")), len(table))
    io.write_table(out, table, {**meta, "config": cfg})


def _bands(filters: pd.Series) -> str | list[str]:
    """The reference band of each FILTER value (:func:`fieldphot.bands.reference_band`):
    one band, or a list for several filters."""
    names = sorted({bands.reference_band(f) for f in filters.dropna().unique()} or {"G"})
    return names[0] if len(names) == 1 else names


# ------------------------------------------------------------------------- calibration


def load_raw_electrons(path, row: dict, cfg: dict):
    """A raw frame in electrons (:func:`fieldphot.calibration.raw_electrons`), its
    saturation map, its header and the offset of the result in raw pixels.

    Raises :class:`fieldphot.io.FrameError`, naming the file, when it cannot be used.
    """
    amps, header = io.read_amplifiers(path)
    try:
        data, saturated, offset = cal.raw_electrons(
            amps, row, cfg["overscan"], cfg["nonlinearity_adu"]
        )
    except cal.UnusableFrame as exc:
        raise io.FrameError(f"{path}: {exc}") from None
    return data, saturated, header, offset


def _read_optional(path, rows: slice = slice(None)):
    return io.read_master(path, rows) if path else (None, None, None)


def usable_master(path, header=None) -> str:
    """``path``, or ``""`` when that master could not be made (none of its frames was
    usable: ``FP_STAT = 'bad'``, the cause in ``FP_WHY``, said here once per use).
    ``header``: the master's, when it has been read."""
    if not path:
        return ""
    header = io.read_header(path) if header is None else header
    if header.get("FP_STAT", "ok") == "bad":
        log.warning("%s: not used: %s", path, header.get("FP_WHY", ""))
        return ""
    return path


def master(
    kind: str, rows: list[dict], out, *, cfg: dict, memory_mb: float, bias="", dark="", flat=""
):
    """Combine raw bias, dark or flat frames (``rows`` from the manifest) into a master.

    ``skydark``: the dark current and glow of a night without darks, from its science
    frames (each one's sky removed as a constant times the flat, sources masked), median
    combined and smoothed to its large-scale structure.

    Frames are prepared one at a time; when the stack exceeds half of ``memory_mb`` it is
    kept on disk (a scratch file beside ``out``) and combined a band of rows at a time.
    ``cfg``: :func:`fieldphot.steps.reads` ``("master", ...)``; ``bias``, ``dark``,
    ``flat``: the masters its frames are calibrated with.
    A frame that cannot be used (unreadable, constant, saturated; a flat without light) is
    left out with a line naming it and why; with none left the master is written as a
    failed one (``FP_STAT = 'bad'``) and the frames it was for are calibrated without it.
    """
    bias_path, dark_path, flat_path = map(usable_master, (bias, dark, flat))
    bias, _, _ = _read_optional(bias_path)
    dark, _, _ = _read_optional(dark_path)
    flat, _, _ = _read_optional(flat_path)
    budget = memory_mb * 1e6
    bias_level = float(np.nanmedian(bias)) if bias is not None and kind == "flat" else 0.0
    dark_rate = float(np.nanmedian(dark)) if dark is not None and kind == "flat" else 0.0
    header = fits.Header()
    header["FP_KIND"] = kind
    with contextlib.ExitStack() as stack_ctx:
        stack, used, levels = None, [], []
        for r in rows:
            try:
                frame = load_raw_electrons(r["path"], r, cfg)[0]
            except io.FrameError as exc:
                log.warning("%s master: left out %s", kind, exc)
                continue
            prepared = cal.master_input(kind, frame, r["exptime"], bias, dark, flat)
            if stack is None:
                shape = (len(rows), *prepared.shape)
                if np.prod(shape) * 4 > budget / 2:
                    stack = stack_ctx.enter_context(io.scratch_stack(out, shape))
                else:
                    stack = np.empty(shape, np.float32)
            stack[len(used)] = prepared
            used.append(r)
            if kind == "flat":  # the light it holds, e-
                levels.append(float(np.nanmedian(frame)) - bias_level - dark_rate * r["exptime"])
            progress(len(used) - 1, len(rows), f"{kind} frames read")
        if kind == "flat" and used:  # a flat without light (shutter shut, lamp off)
            typical = float(np.median(levels))
            keep = [i for i, v in enumerate(levels) if v > 0.05 * typical and v > 0]
            for i in sorted(set(range(len(used))) - set(keep)):
                log.warning(
                    "flat master: left out %s: level %.0f e- against %.0f e- for the others",
                    used[i]["path"],
                    levels[i],
                    typical,
                )
            for j, i in enumerate(keep):
                stack[j] = stack[i]
            used = [used[i] for i in keep]
        header["NCOMBINE"] = len(used)
        inputs = [r["path"] for r in used] + [p for p in (bias_path, dark_path, flat_path) if p]
        for key, value in io.provenance_cards(cfg, inputs):
            header[key] = value
        if not used:
            why = f"no usable {kind} frame among {len(rows)}"
            log.warning("%s: %s", out, why)
            header["FP_STAT"], header["FP_WHY"] = "bad", why
            io.write_fits(out, np.full((1, 1), np.nan), header)
            return
        stack = stack[: len(used)]
        reducer = cal.nan_median if kind == "skydark" else None
        data = cal.combine_in_chunks(stack, cfg["combine_sigma"], budget / 2, reducer)
        noise = cal.master_noise(stack[0], data, len(used))
    if kind == "skydark":  # keep the large-scale glow; per-pixel noise would only add noise
        data, noise = cal.smooth_map(data, cfg["sky_dark_box"]), 0.0
    mask = np.zeros(data.shape, np.int32)
    if kind == "dark":
        mask[cal.hot_pixels(data, cfg["hot_pixel_nsigma"])] |= Flag.BAD_PIXEL
    elif kind == "flat":
        noise = noise / np.nanmedian(data)
        # a colour flat: each channel to its own median (its throughput is its zeropoint's)
        colour = any(r.get("bayer") for r in used)
        data = bayer.normalize_channels(data) if colour else data / np.nanmedian(data)
        mask[cal.bad_flat_pixels(data)] |= Flag.BAD_PIXEL
    header["BUNIT"] = {
        "bias": "electron",
        "dark": "electron/s",
        "skydark": "electron/s",
        "flat": "",
    }[kind]
    header["FP_NOISE"] = (noise if np.isfinite(noise) else 0.0, "per-pixel 1-sigma error")
    log.info(
        "master %s from %d frames: median %.4g, %d bad pixels",
        kind,
        len(used),
        np.nanmedian(data),
        int((mask != 0).sum()),
    )
    io.write_fits(out, data, header, {"MASK": mask})


def calibrate(*, raw, out, row: dict, cfg: dict, bias="", dark="", flat=""):
    """Calibrate one science frame into electrons with ERR and MASK; record provenance.

    An unreadable or unusable frame (no finite pixels, constant, mostly saturated) is
    written as a failed frame (``FP_STAT = 'bad'`` and ``FP_WHY``) that every later
    stage carries forward, so the rest of the night goes on.
    """
    raw_path, bias_path, dark_path, flat_path = raw, bias, dark, flat
    try:
        data, saturated, raw_header, offset = load_raw_electrons(raw_path, row, cfg)
    except io.FrameError as exc:  # the message names the file
        log.warning(str(exc))
        _failed_calibrated(out, row, str(exc))
        return
    cards = [io.read_header(p) if p else {} for p in (bias_path, dark_path, flat_path)]
    paths = bias_path, dark_path, flat_path = tuple(
        usable_master(p, h) for p, h in zip((bias_path, dark_path, flat_path), cards, strict=True)
    )
    cards = [h if p else {} for p, h in zip(paths, cards, strict=True)]
    errors = tuple(float(h.get("FP_NOISE", 0.0)) for h in cards)
    rn = float(row["read_noise"])
    if "read_noise" in str(row.get("guessed") or "") and bias_path:
        # Not in the headers: a bias frame's noise is the read noise (the master's
        # per-pixel error times the square root of the frames combined).
        n = int(cards[0].get("NCOMBINE", 0))
        if n >= 2 and errors[0] > 0:
            rn = errors[0] * math.sqrt(n)
            log.info("%s: read noise %.2f e- measured from %d bias frames", raw_path, rn, n)
    pedestal = 0.0
    real_dark = dark_path and "/skydark_" not in str(dark_path)  # a raw dark holds the offset
    offset_known = row.get("biassec") or row.get("amplifiers") or camera_raw.is_camera_raw(raw_path)
    if not bias_path and not real_dark and not offset_known:  # (a raw file's black level)
        # No bias, no overscan: the camera's offset would stay in the data and in the
        # Poisson term of the errors (2-4 x too large on a real night).
        pedestal, how = cal.pedestal(data, rn)
        data -= np.float32(pedestal)
        log.warning(
            "%s: no bias frames and no overscan: an offset of %.1f e- estimated from the "
            "sky (level %.1f e-, variance %.1f e-2) and subtracted",
            raw_path,
            pedestal,
            how["level"],
            how["variance"],
        )
    # A band of rows at a time, masters read band by band and the electrons calibrated in
    # place: a frame costs its own float32 SCI and ERR and int32 MASK, however large.
    err, mask = np.empty(data.shape, np.float32), np.empty(data.shape, np.int32)
    for rows in cal.row_bands(data.shape[0], data.shape[1] * 4 * 16):
        (bias, bm, _), (dark, dm, _), (flat, fm, _) = (_read_optional(p, rows) for p in paths)
        bad = np.zeros(data[rows].shape, bool)
        for m in (bm, dm, fm):
            if m is not None:
                bad |= m != 0
        data[rows], err[rows], mask[rows] = cal.calibrate_frame(
            data[rows], float(row["exptime"]), rn, saturated[rows], bias, dark, flat, bad, errors
        )
    sci, step = data, 1
    if row.get("channel"):  # a colour frame: its channel's plane, every other pixel
        pattern = bayer.shifted(row["bayer"], offset[1] % 2, offset[0] % 2)  # trimmed
        r0, c0 = bayer.offsets(pattern)[row["channel"]]
        sci, err, mask = (bayer.plane(a, pattern, row["channel"]).copy() for a in (sci, err, mask))
        offset, step = (offset[0] + c0, offset[1] + r0), 2
    sat_e = (
        float(row["saturate"]) * float(row["gain"])
        if cal.is_number(row.get("saturate"))
        else np.inf
    )
    cal_flags = 0
    missing = [
        k for k, p in (("bias", bias_path), ("dark", dark_path), ("flat", flat_path)) if not p
    ]
    if missing or row.get("cal_fallback"):
        cal_flags |= Flag.NO_CALIBRATION
        log.warning(
            "%s: calibrated without %s%s",
            raw_path,
            ", ".join(missing) or "-",
            " (masters from another night)" if row.get("cal_fallback") else "",
        )
    cr = cfg["cosmic_rays"]
    if cr["enabled"]:
        cal.clean_cosmic_rays(
            sci,
            mask,
            rn,
            sat_e if np.isfinite(sat_e) else 1e9,
            out=(sci, mask),
            sigclip=cr["sigclip"],
            objlim=cr["objlim"],
        )
    header = wcsmodel.calibrated_header(raw_header, offset, step)
    meta = {
        **{k: row.get(k) for k in FRAME_CARDS},
        "saturation_e": sat_e,
        "cal_flags": cal_flags,
        "gain": 1.0,
        "read_noise": rn,
    }
    _frame_cards(header, meta)
    header["FP_STAT"] = "ok"
    header["FP_RAWGN"] = (float(row["gain"]), "raw gain e-/ADU (applied)")
    header["FP_PED"] = (pedestal, "e- offset estimated from the sky")
    for key, value in io.provenance_cards(cfg, [raw_path, bias_path, dark_path, flat_path]):
        header[key] = value
    log.info(
        "%s: sky %.1f e-, %d saturated, %d cosmic-ray pixels",
        row["frame"],
        float(np.median(sci)),
        int(any_set(mask, Flag.SATURATED).sum()),
        int(any_set(mask, Flag.COSMIC_RAY).sum()),
    )
    io.write_calibrated(out, sci, err, mask, header)


def _failed_calibrated(out, meta: dict, reason: str) -> None:
    """A failed frame's calibrated product: no pixels, its frame cards (from ``meta``,
    keys of :data:`FRAME_CARDS`), ``FP_STAT = 'bad'`` and the reason in ``FP_WHY``."""
    header = fits.Header()
    _frame_cards(header, {k: meta.get(k) for k in FRAME_CARDS})
    header["FP_STAT"], header["FP_WHY"] = "bad", io.fits_text(reason)
    nan = np.full((1, 1), np.nan)
    io.write_calibrated(out, nan, nan, np.zeros((1, 1), np.int32), header)


def run_frame_step(name: str, inputs: dict, out, params: dict, log_file=None) -> str | None:
    """Run per-frame step ``name`` (:func:`fieldphot.steps.run`); a frame the step cannot
    use (its message names the cause), or an error in fieldphot on this frame, flags the
    frame with the reason (:func:`failed_step`) and returns it, so that the night goes on
    (`fieldphot status` lists it and exits 1). Faults of the disk or memory are raised:
    the job fails. ``log_file`` is named in the reason of an error in fieldphot."""
    try:
        steps.run(name, inputs, out, params)
    except (OSError, MemoryError):
        raise
    except Exception as err:
        log.exception("failed")
        where = f", with {log_file}" if log_file else ""
        reason = (
            str(err)
            if isinstance(err, io.FrameError)
            else f"an error in fieldphot's {name} step on this frame "
            f"({type(err).__name__}: {err}): please report it{where}"
        )
        reason = " ".join(reason.split())
        failed_step(name, inputs, out, params, reason)
        return reason
    return None


def failed_step(name: str, inputs: dict, out, params: dict, reason: str) -> None:
    """Write per-frame step ``name``'s product for a frame it failed on (an error that is
    no fault of the disk or memory), so that the frame is flagged with ``reason`` and the
    night goes on: the step is run again on a failed stand-in for its main input, through
    the path every step takes for a failed frame.

    ``inputs`` and ``params`` are the step's (:func:`fieldphot.steps.run`).
    """
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    if name == "calibrate":
        _failed_calibrated(out, params["row"], reason)
        return
    if name == "zeropoint":
        _, meta = io.read_table(inputs["photometry"], columns=[])
        frame = meta.get("frame", {})
    else:
        try:
            frame = frame_meta(io.read_header(inputs["calibrated"]))
        except (io.FrameError, OSError):
            frame = {}
    with tempfile.TemporaryDirectory(dir=Path(out).parent, prefix=".failed-") as tmp:
        cal, table = Path(tmp) / "c.fits", Path(tmp) / "t.parquet"
        _failed_calibrated(cal, frame, reason)
        failed = {"frame": frame, "status": "bad", "reason": reason}
        if name == "solve":
            extract(calibrated=cal, out=table, cfg={})
            stand_in = {"calibrated": cal, "sources": table}
        elif name == "photometer":
            io.write_table(table, pd.DataFrame(), failed)
            stand_in = {"calibrated": cal, "astrometry": table}
        elif name == "zeropoint":
            io.write_table(table, pd.DataFrame(columns=measure.COLUMNS), failed)
            stand_in = {"photometry": table}
        elif name == "extract":
            stand_in = {"calibrated": cal}
        else:
            raise ValueError(f"no failed product for step {name!r}")
        steps.run(name, {**inputs, **stand_in}, out, params)


def _frame_cards(header: fits.Header, meta: dict) -> None:
    for key, card in FRAME_CARDS.items():
        value = meta.get(key)
        if value is not None and not (isinstance(value, float) and not math.isfinite(value)):
            header[card] = value


def frame_meta(header: fits.Header) -> dict:
    """The frame metadata written by :func:`calibrate`, back as a dict."""
    meta = {k: header.get(card) for k, card in FRAME_CARDS.items()}
    meta["naxis1"], meta["naxis2"] = header.get("NAXIS1"), header.get("NAXIS2")
    return meta


# --------------------------------------------------------------------------- per frame
def extract(*, calibrated, out, cfg: dict):
    """Detect and measure sources on a calibrated frame."""
    sci, err, mask, header = io.read_calibrated(calibrated)
    if header.get("FP_STAT", "ok") != "ok":
        io.write_table(
            out,
            ext.no_sources(),
            {
                "frame": frame_meta(header),
                "extract": {"fwhm": np.nan, "sky": np.nan},
                "status": header["FP_STAT"],
                "reason": header.get("FP_WHY", ""),
                "config": cfg,
                "inputs": [str(calibrated)],
            },
        )
        return
    src, info = ext.extract_sources(
        sci,
        err,
        mask,
        thresh=cfg["thresh"],
        minarea=cfg["minarea"],
        box=cfg["background_box"],
    )
    status = "ok" if len(src) else "no_sources"
    log.info("%s sources, FWHM %.2f px, sky %.1f e-", len(src), info["fwhm"], info["sky"])
    io.write_table(
        out,
        src,
        {
            "frame": frame_meta(header),
            "extract": info,
            "status": status,
            "config": cfg,
            "inputs": [str(calibrated)],
        },
    )


def solve(*, calibrated, sources, refcat, out, cfg: dict, neighbour=None):
    """Solve a frame by the ladder of methods (:func:`fieldphot.solve.solve_frame`).

    ``neighbour`` is the astrometry product of the first frame of the same pointing
    (None for that frame itself); its solution is this frame's hint.
    """
    header = io.read_header(calibrated)
    if header.get("FP_CHAN") and cfg["pixel_scale"]:  # a colour plane: two sensor pixels
        cfg = {**cfg, "pixel_scale": 2.0 * cfg["pixel_scale"]}
    src, meta = io.read_table(sources)
    ref, _ = io.read_table(refcat)
    ref = rcat.at_epoch(ref, header.get("FP_MJD"))
    shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
    if meta.get("status") == "bad":  # the frame itself is unusable: say why, not "no WCS"
        wcs, matched, info = (
            None,
            pd.DataFrame({k: [] for k in sol.MATCH_COLUMNS}),
            {**sol.EMPTY_INFO, "status": "bad", "reason": meta.get("reason", "")},
        )
    else:
        hints = {
            "wcs": wcsmodel.header_wcs(header),
            "neighbour": _solution(neighbour) if neighbour else None,
            "ra": header.get("FP_RA"),
            "dec": header.get("FP_DEC"),
            "pixel_scale": header.get("FP_SCALE"),
        }
        anchor, anchor_meta = io.read_table(neighbour) if neighbour else (None, {})
        relative = str(anchor_meta.get("astrometry", {}).get("method", "")).startswith("rel")
        if len(ref) == 0 or relative:  # the catalog cannot help: no blind solve per frame
            why = "no catalog stars" if len(ref) == 0 else "the pointing's first frame was not"
            wcs, matched = None, pd.DataFrame({k: [] for k in sol.MATCH_COLUMNS})
            info = {**sol.EMPTY_INFO, "reason": f"catalog: {why}", "tried": [f"catalog: {why}"]}
        else:
            # A pointing whose first frame found no blind solution is not solved blind
            # again on every frame (25 s each on a real night).
            failed = anchor_meta.get("astrometry", {})
            blind_failed = failed.get("status") != "ok" and any(
                str(t).startswith("blind") for t in failed.get("tried", [])
            )
            methods = cfg["methods"]
            if blind_failed:
                methods = [m for m in methods if m != "blind"]
            wcs, matched, info = sol.solve_frame(
                src, ref, shape, hints, **{**cfg, "methods": methods}
            )
        on_frame = sol.stars_in_field(ref, shape, hints, cfg["pixel_scale"])
        hopeless = not on_frame or on_frame < 2 * cfg["min_matches"]
        if wcs is None and cfg["relative"] and (hopeless or relative):
            wcs, matched, rel = sol.solve_relative(src, shape, hints, anchor, **cfg)
            info = {**rel, "tried": info["tried"] + rel.get("tried", [])}
            if wcs is None:
                info["reason"] = "; ".join(info["tried"] + [f"relative: {rel['reason']}"])
        elif wcs is None and on_frame:  # the catalog covers the frame, yet did not match
            info["reason"] += f"; {on_frame} catalog stars on the frame, none matched"
    log.info(
        "%s: %s by %s %s, %d matches, rms %.3f px",
        meta["frame"].get("frame"),
        info["status"],
        info.get("method") or "-",
        info.get("reason", ""),
        info["n_match"],
        info.get("rms_px", np.nan),
    )
    meta.update(
        astrometry=info,
        status=info["status"],
        reason=info.get("reason", ""),
        wcs=wcsmodel.wcs_to_string(wcs) if wcs is not None else "",
        config=cfg,
        inputs=[str(p) for p in (calibrated, sources, refcat, neighbour) if p],
    )
    io.write_table(out, matched, meta)


def _solution(astrometry):
    """The WCS an astrometry product holds, or None when its frame is unsolved."""
    _, meta = io.read_table(astrometry, columns=[])
    return wcsmodel.wcs_from_string(meta["wcs"]) if meta.get("wcs") else None


def starlist(refcat_path, rows, out, *, cfg: dict, frame_params: dict, targets=()):
    """The field's master star list (:mod:`fieldphot.starlist`): the reference catalog and
    the sources it lacks on the stack of the field's reference frames, as one table in
    the reference catalog's format. Deep sources have no catalog magnitude (NaN) and an
    estimate ``mag_est`` used for their light on neighbours.

    The reference frames (manifest ``rows``, in time order; their masters are found
    beside ``refcat_path``, in the results folder) are calibrated, extracted and solved
    here, in a scratch folder, with the same functions as every frame: the list depends
    on their raw files and masters only, never on another job's success. Frames without a
    solution are left out; with fewer than two frames the list is the catalog alone.

    ``cfg``, ``frame_params`` and ``targets``: :func:`fieldphot.steps.starlist_params`.
    """
    ref, meta = io.read_table(refcat_path)
    ref = ref.assign(mag_est=ref["mag"])
    results = Path(refcat_path).parent
    stack, used = None, []
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=Path(out).parent, prefix=".starlist-") as tmp:
        first = None
        for row in rows if len(rows) >= 2 else []:
            row = {**row, "anchor": first or row["frame"]}
            # A bad frame comes out of these as a failed frame (no solution), not as an
            # exception: anything raised (a full disk, a bug) fails the job, never a list
            # made of fewer frames than it should be.
            steps.run_frame(row, results, frame_params, ("calibrate", "extract", "solve"), tmp)
            cal_path = steps.frame_output("calibrate", row, tmp)
            ast_path = steps.frame_output("solve", row, tmp)
            _, ameta = io.read_table(ast_path, columns=[])
            if not ameta.get("wcs"):
                log.info("%s: no astrometric solution, not stacked", row["path"])
                continue
            first = first or row["frame"]
            sci, err, mask, _ = io.read_calibrated(cal_path)
            wcs = wcsmodel.wcs_from_string(ameta["wcs"])
            if stack is None:
                stack, epoch = sl.Stack(wcs, sci.shape), ameta["frame"].get("mjd_utc_mid")
            resid = stack.add(sci, err, mask, wcs)
            used.append(str(row["path"]))
            log.info("%s stacked (alignment residual %.3f px)", row["path"], resid)
            del sci, err, mask
    info = {"frames": used, "n_catalog": len(ref), "n_deep": 0}
    if len(used) >= 2:
        tg = pd.DataFrame(list(targets), columns=["ra", "dec"]).assign(mag=np.nan)
        known = pd.concat([rcat.at_epoch(ref, epoch)[["ra", "dec", "mag"]], tg])
        deep, found = sl.deep_sources(*stack.result(), stack.wcs, known, cfg)
        numeric = pd.api.types.is_numeric_dtype(ref["id"]) or len(ref) == 0
        added = pd.DataFrame(
            {
                "id": sl.deep_ids(deep["ra"], deep["dec"], numeric),
                "ra": deep["ra"],
                "dec": deep["dec"],
                "mag": np.nan,
                "mag_err": np.nan,
                "color": np.nan,
                "mag_est": deep["mag_est"],
            }
        )
        ref = pd.concat([ref, added], ignore_index=True) if len(added) else ref
        info.update(found, n_deep=len(added))
        log.info(
            "stack of %d frames: FWHM %.2f px, %d sources, %d catalog stars or targets, %d added",
            len(used),
            found["fwhm"],
            found["n_detected"],
            found["n_known"],
            len(added),
        )
    io.write_table(out, ref, {**meta, "starlist": info, "config": cfg})


def photometer(*, calibrated, astrometry, starlist, out, cfg: dict, targets=(), sources=None):
    """Aperture photometry at every position of the field's star list
    (:func:`starlist`) inside the frame and at every forced target
    (:func:`fieldphot.measure.measure_frame`)."""
    starlist_path = starlist
    _, meta = io.read_table(astrometry, columns=[])
    ref, ref_meta = io.read_table(starlist_path)
    ref, band = rcat.in_band(
        ref, ref_meta, bands.reference_band(meta.get("frame", {}).get("filter"))
    )
    meta.update(
        config={**cfg, "targets": list(targets)},
        inputs=[str(p) for p in (calibrated, astrometry, starlist_path, sources) if p],
        field=f"{Path(starlist_path).parent.name}/{Path(starlist_path).stem}",
        magnitude_system=band["magnitude_system"],
        band=band["band"],
    )
    if not meta.get("wcs"):
        status = "bad" if meta.get("status") == "bad" else "no_wcs"
        meta.update(status=status, reason=meta.get("reason") or "no astrometric solution")
        io.write_table(out, pd.DataFrame(columns=measure.COLUMNS), meta)
        return
    sci, err, mask, _ = io.read_calibrated(calibrated)
    avoid = None
    if sources:
        src, _ = io.read_table(sources, columns=["x", "y"])
        avoid = (src["x"].to_numpy(), src["y"].to_numpy())
    frame = meta["frame"]
    wcs = wcsmodel.wcs_from_string(meta["wcs"])
    indexed = [{**t, "index": i} for i, t in enumerate(targets)]
    table, info = measure.measure_frame(
        sci,
        err,
        mask,
        wcs,
        rcat.at_epoch(ref, frame.get("mjd_utc_mid")),
        meta["extract"].get("fwhm"),
        frame,
        cfg,
        targets=[t for t in indexed if not ephemeris.is_moving(t)],
        avoid_xy=avoid,
    )
    tracks = []
    for t in (t for t in indexed if ephemeris.is_moving(t)):
        try:
            tracks.append((t["name"], t["index"], _track(t, frame)))
        except (io.FrameError, ValueError) as exc:
            log.warning("%s: moving target %s not measured: %s", frame.get("frame"), t["name"], exc)
    if tracks:
        rows = measure.measure_moving(sci, err, mask, wcs, table, tracks, info, frame, cfg)
        table = pd.concat([table, rows], ignore_index=True) if len(rows) else table
    log.info(
        "%d stars and %d targets measured, aperture %.2f px (%s), apcor %.4f from %d stars, "
        "limit %.2f (analytic %.2f) instrumental",
        info["n_stars"],
        info["n_targets"],
        info["r_ap"],
        info["mode"],
        info["apcor"],
        info["growth_n"],
        info["maglim_inst"],
        info["maglim_inst_analytic"],
    )
    meta.update(photometry=info, status="ok", reason="")
    io.write_table(out, table, meta)


def _track(target: dict, frame: dict) -> pd.DataFrame:
    """A moving target's ephemeris at the start, middle and end of the frame's exposure."""
    jd = frame["mjd_utc_mid"] + 2400000.5 + np.array([-0.5, 0.0, 0.5]) * frame["exptime"] / 86400
    site = {
        "lat": frame.get("site_lat"),
        "lon": frame.get("site_lon"),
        "elev": frame.get("site_elev"),
    }
    return ephemeris.at(target, jd, target.get("cache_dir"), site, target.get("server", ""))


def zeropoint(*, photometry, out, cfg: dict):
    """Fit the frame's zeropoint and write calibrated magnitudes (the per-frame catalog)."""
    t, meta = io.read_table(photometry)
    fr = meta.get("frame", {})
    shape = (fr.get("naxis2") or 0, fr.get("naxis1") or 0)
    cat, info = zpt.catalog_magnitudes(t, cfg, shape, float(fr.get("exptime") or 1.0))
    for key in ("frame", "night", "filter", "exptime", "mjd_utc_mid", "bjd_tdb", "airmass"):
        cat[key] = fr.get(key)
    cat["fwhm"] = meta.get("extract", {}).get("fwhm", np.nan)
    if meta.get("status") != "ok":
        info.update(status=meta.get("status"), reason=meta.get("reason", ""))
    ph = meta.get("photometry", {})
    ok = info["status"] == "ok"
    # NaN statistics (no blank sky to measure) come back from the metadata as None.
    for key in ("maglim", "maglim_analytic"):
        inst = ph.get(f"{key.replace('maglim', 'maglim_inst')}")
        info[key] = float(inst) + info["zp"] if ok and inst is not None else np.nan
    k, airmass = cfg["extinction"], fr.get("airmass")
    info["zp_airmass0"] = info["zp"] + k * airmass if None not in (k, airmass) and ok else np.nan
    log.info(
        "%s: zeropoint %s %.4f +- %.4f, colour term %.4f +- %.4f (%s), from %d stars "
        "(rms %.3f, chi2 %.2f), maglim %.2f",
        fr.get("frame"),
        info["status"],
        info["zp"],
        info["zp_err"],
        info["color_term"],
        info["color_term_err"],
        info["color_term_mode"],
        info["n_used"],
        info["rms"],
        info["chi2_red"],
        info["maglim"],
    )
    meta.update(
        zeropoint=info,
        status=info["status"],
        reason=info.get("reason", ""),
        config=cfg,
        inputs=[str(photometry)],
    )
    io.write_table(out, cat, meta)


# ------------------------------------------------------------------------- all frames
def _frame_row(meta: dict) -> dict:
    """One frame's line of the frames table, from its catalog's metadata."""
    zp = meta.get("zeropoint", {})
    return {
        **meta.get("frame", {}),
        "status": meta.get("status"),
        "reason": meta.get("reason", ""),
        "field": meta.get("field", ""),
        "zp": zp.get("zp"),
        "zp_err": zp.get("zp_err"),
        "n_zp_stars": zp.get("n_used"),
        "maglim": zp.get("maglim"),
        "fwhm": meta.get("extract", {}).get("fwhm"),
        "sky": meta.get("extract", {}).get("sky"),
        "astrometry_rms_arcsec": meta.get("astrometry", {}).get("rms_arcsec"),
        "n_match": meta.get("astrometry", {}).get("n_match"),
    }


def _points(catalog) -> pd.DataFrame:
    """A catalog's columns of a light-curve grid (:data:`fieldphot.lightcurves.CATALOG_COLUMNS`;
    one from an older fieldphot may lack a point column)."""
    present = set(io.column_names(catalog))
    columns = [c for c in lightcurves.CATALOG_COLUMNS if c in present]
    return io.read_table(catalog, columns=columns)[0]


def night_light_curves(catalogs, out, cfg: dict, targets=()) -> None:
    """One night's part of the long light-curve table: every star of the master list on
    every frame (a gap flagged ``NO_DATA`` where it has no measurement), with ensemble
    differential magnitudes and, when configured, detrended ones
    (:func:`fieldphot.lightcurves.differential`). The frames (with the ensemble's rms and
    star count) and the stars go into its metadata."""
    det = cfg["detrend"]
    windows = lightcurves.target_windows(targets)  # a target's transit is never detrended
    cfg = {**cfg, "detrend": {**det, "protect": list(det["protect"]) + windows}}
    rows, ids = [], []
    for i, path in enumerate(catalogs):
        progress(i, len(catalogs), "catalog ids read")
        t, meta = io.read_table(path, columns=["id"])
        rows.append({**_frame_row(meta), "catalog": str(path), "measured": "photometry" in meta})
        if rows[-1]["measured"]:  # measured, with or without a zeropoint
            ids.append(t["id"])
        else:
            log.warning("%s has no points: %s %s", path, meta.get("status"), meta.get("reason", ""))
    frames = pd.DataFrame(rows)
    # A colour night: its two green planes summed star by star, as channel G
    frames = pd.concat([frames, bayer.green_frames(frames)], ignore_index=True)
    frames = frames.sort_values("bjd_tdb", kind="stable", ignore_index=True)
    star_ids = pd.unique(pd.concat(ids, ignore_index=True)) if ids else np.array([], np.int64)
    grid = lightcurves.Grid(np.sort(star_ids), frames)
    # Second pass (the ids above size the grid): each catalog's columns into the matrices.
    for f, r in enumerate(frames.itertuples()):
        progress(f, len(frames), "catalogs gathered")
        if r.measured:
            pair = r.catalog if isinstance(r.catalog, tuple) else (r.catalog,)
            tables = [_points(p) for p in pair]
            grid.add(f, bayer.combine_green(*tables) if len(tables) == 2 else tables[0])
    diff = lightcurves.differential(grid, cfg)
    rms = diff["ensemble_rms"]
    frames["ensemble_rms"], frames["ensemble_n"] = rms, diff["ensemble_n"]
    frames["poor"] = diff["poor"]
    frames["nonlinear_fraction"] = diff["nonlinear_fraction"]
    frames["ensemble_order"] = diff["ensemble_order"]
    levels = np.unique(diff["nonlinear_fraction"][np.isfinite(diff["nonlinear_fraction"])])
    if len(levels):
        log.info(
            "%s: non-linear from %s of the saturation level: %d points flagged NONLINEAR",
            Path(out).stem,
            " / ".join(f"{v:.2f}" for v in levels),
            int(np.count_nonzero(grid.flags & int(Flag.NONLINEAR))),
        )
    stars = grid.star.assign(id=grid.ids.to_numpy(), comparison=diff["comparison"])
    meta = {
        "frames": frames.drop(columns=["catalog", "measured"]).to_dict("records"),
        "stars": stars.to_dict("records"),
        "magnitude": lightcurves.light_curve_column(diff),
        "config": cfg,
        "inputs": [str(p) for p in catalogs],
    }
    io.write_table_chunks(out, lightcurves.long_chunks(grid, diff), meta)
    log.info(
        "%s: %d stars x %d frames, %d comparison stars, ensemble order %s, rms median %.4f mag",
        Path(out).stem,
        len(grid.ids),
        len(frames),
        int(diff["comparison"].sum()),
        "/".join(str(k) for k in np.unique(diff["ensemble_order"])) or "-",
        float(np.nanmedian(rms)) if np.isfinite(rms).any() else np.nan,
    )


def plan(manifest_path, out, cfg: dict) -> dict:
    """Write the season's plan (:func:`fieldphot.season.plan`, JSON) and each night's slice
    of the science frames beside the manifest (``manifest/nights/<night>.parquet``). A slice
    whose rows did not change is not rewritten: its time stamp tells the season which
    nights to run again. ``cfg``: :func:`fieldphot.steps.plan_params`."""
    manifest_table, _ = io.read_table(manifest_path)
    the_plan, slices = season.plan(manifest_table, cfg)
    results = Path(manifest_path).parent
    for night, rows in slices.items():
        path = results / layout.path("night_slice", night=night)
        digest = season.slice_digest(rows)
        if path.exists() and io.read_meta(path).get("digest") == digest:
            continue
        io.write_table(path, rows, {"night": night, "digest": digest})
    io.write_text(out, json.dumps(the_plan, default=lambda v: v.item()))
    log.info(
        "plan: %d nights, %d fields, %d masters",
        len(the_plan["nights"]),
        len(the_plan["fields"]),
        len(the_plan["masters"]),
    )
    return the_plan


def night_run(night_slice, out, config: dict, snakefile, cores: int, nested_log) -> None:
    """A season's night job: the per-frame workflow of one night (``config["night"]``,
    :func:`fieldphot.season.night_config`) as a nested Snakemake run of ``snakefile`` in
    this folder, its output in ``nested_log``; then the night's record ``out`` (JSON: the
    night's light curves, catalogs and calibrated frames, as the workflow names them),
    which the season's cross-night steps read. A nested run that fails (a frame's job
    killed) fails the job, naming its log: a rerun redoes only what it left missing."""
    night = config["night"]
    results = config["results_dir"]
    frames = io.read_table(night_slice, ["frame"])[0]["frame"].tolist()
    cfg_path = Path(nested_log).with_suffix(".config.yaml")
    io.write_text(cfg_path, yaml.safe_dump(config, sort_keys=False))
    command = season.night_command(snakefile, cfg_path, os.getcwd(), cores)
    log.info("night %s: %d frames: %s", night, len(frames), shlex.join(command))
    with open(nested_log, "w") as fh:
        code = subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise RuntimeError(f"night {night}: its run failed (exit {code}); see {nested_log}")

    def paths(product):
        return [os.path.join(results, layout.path(product, night=night, frame=f)) for f in frames]

    record = {
        "night": night,
        "night_lightcurves": os.path.join(results, layout.path("night_lightcurves", night=night)),
        "catalogs": paths("catalogs"),
        "calibrated": paths("calibrated"),
    }
    io.write_text(out, json.dumps(record, indent=1))


def night_products(paths, product: str) -> list[str]:
    """``paths`` with each night record (:func:`night_run`, ``.json``) replaced by its
    ``product`` files: the season's cross-night steps take the records of its night jobs,
    a one-night run the files themselves.

    Examples
    --------
    >>> night_products(["lightcurves/nights/20240101.parquet"], "night_lightcurves")
    ['lightcurves/nights/20240101.parquet']
    """
    out = []
    for p in map(str, paths):
        if p.endswith(".json"):
            record = io.read_json(p)
            out.extend([record[product]] if isinstance(record[product], str) else record[product])
        else:
            out.append(p)
    return out


def light_curves(nights, outdir, cfg: dict, names=(), moving=()) -> None:
    """Across nights: the per-star summary, the frames table (with the nights'
    extinction fits), the rms-magnitude diagram and, per forced target, its light curve
    as ECSV (an astropy ``TimeSeries``), PNG and AAVSO extended file (``names``: the
    targets')."""
    outdir = Path(outdir)
    metas = [io.read_meta(p) for p in nights]
    frames = pd.DataFrame([f for m in metas for f in m.get("frames", [])])
    stars = pd.DataFrame([s for m in metas for s in m.get("stars", [])])
    column = metas[0].get("magnitude", "mag_ens") if metas else "mag_ens"
    lc = io.read_tables(nights, ["id", "filter", "bjd_tdb", column, "mag_ens_err", "flags"])
    summary = lightcurves.summarize(
        lc,
        column,
        periodograms=cfg["periodograms"],
        bls=cfg["bls"],
        max_frequencies=cfg["max_frequencies"],
        min_period=cfg["min_period_d"],
    )
    del lc
    if len(stars):
        info = stars.drop_duplicates("id").drop(columns="comparison")
        comp = stars.groupby("id")["comparison"].any()
        summary = summary.merge(info, on="id", how="left")
        summary["comparison"] = summary["id"].map(comp).fillna(False).astype(bool)
    meta = {
        "n_frames": len(frames),
        "n_skipped": int((frames["status"] != "ok").sum()) if len(frames) else 0,
        "magnitude": column,
        "extinction": zpt.night_extinction(frames),
        "config": cfg,
    }
    io.write_table(outdir / "summary.parquet", summary, meta)
    io.write_table(outdir / "frames.parquet", frames, meta)
    n_ok = int((frames["status"] == "ok").sum()) if len(frames) else 0
    io.save_figure(
        lightcurves.rms_figure(summary, f"{n_ok} frames ({column})"), outdir / "rms_mag.png"
    )
    site = {
        k: next(iter(frames[f"site_{k}"].dropna()), None) if f"site_{k}" in frames else None
        for k in ("lat", "lon", "elev")
    }
    xport.target_products(nights, outdir, list(names), column, cfg, summary, moving, site)
    log.info(
        "light curves: %d stars, %d frames (%d skipped)",
        len(summary),
        len(frames),
        meta["n_skipped"],
    )


def export(catalogs, outdir, cfg: dict, targets: bool) -> list[str]:
    """Every calibrated catalog row of the frames that succeeded, in each of
    ``cfg["formats"]``: ``catalog.<fmt>`` (with ``cfg["catalog"]``) and, with ``targets``,
    the forced targets' rows as ``targets.<fmt>`` and a GCN-circular table ``gcn.txt``.
    Returns the names written (:func:`fieldphot.layout.export_names`)."""
    outdir = Path(outdir)
    tables, meta = [], {}
    for i, path in enumerate(catalogs):
        progress(i, len(catalogs), "catalogs read")
        t, m = io.read_table(path)
        if m.get("status") == "ok":
            tables.append(t)
            meta = meta or m
    rows = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    nsig = meta.get("photometry", {}).get("limit_sigma", 5.0)
    parts = {"catalog": rows}
    if targets:
        parts["targets"] = rows[rows["target"] != ""] if len(rows) else rows
    names = layout.export_names(cfg["formats"], cfg["catalog"], targets)
    for name in names:
        kind, fmt = name.split(".")
        if name == "gcn.txt":
            rows_t = parts["targets"]
            text = xport.gcn_table(rows_t, meta, cfg["t0_mjd"], nsig) if len(rows_t) else ""
            io.write_text(outdir / name, text or "no target was measured on any frame\n")
            continue
        df = parts[kind]
        io.write_export(
            outdir / name,
            xport.catalog_table(df, meta),
            fmt,
            xport.json_document(df, meta) if fmt == "json" else None,
        )
    log.info("exported %s (%d rows, %d frames)", ", ".join(names), len(rows), len(tables))
    return names


def frame_image(*, calibrated, sources, astrometry, photometry, out):
    """Draw one frame with its detected, matched and target sources (``debug: true``)."""
    sci = io.read_calibrated(calibrated)[0]
    src = io.read_table(sources, columns=["x", "y"])[0]
    ast = io.read_table(astrometry, columns=["x", "y", "used"])[0]
    phot = io.read_table(photometry, columns=["x", "y", "target"])[0]
    fig = report.frame_figure(
        sci,
        src,
        ast[ast["used"].astype(bool)],
        phot[phot["target"] != ""],
        f"{Path(calibrated).stem}: {len(src)} detected, {int(ast['used'].sum())} matched",
    )
    io.save_figure(fig, out)


def report_pages(results, nights, pages: dict, run_cmd: str, excluded=(), config_targets=()):
    """The report's pages (:mod:`fieldphot.report`) from the products under ``results``,
    written to ``pages`` (a path for each of :data:`REPORT_PAGES`): the per-frame
    diagnostics, the failed/flagged frames (with ``run_cmd``, the command that ran the
    night), the targets' relative flux (a transit fit for those of ``config_targets``,
    the config's, that give an ephemeris), the comparison stars' light curves and the
    field of the sharpest good frame with the comparison stars' and targets' apertures,
    and the front page of Snakemake's report (the night's summary and diagnostics)."""
    results = Path(results)
    frames, _ = io.read_table(results / layout.path("frames"))
    io.save_figure(report.diagnostics_figure(frames), pages["diagnostics"])
    status = report.frame_status(results, excluded)
    cats = [
        str(results / layout.path("catalogs", night=n, frame=f))
        for n, f in zip(status["night"], status["frame"], strict=True)
    ]
    io.write_text(pages["problems"], report.problems_html(status, cats, run_cmd))
    column = io.read_meta(nights[0]).get("magnitude", "mag_ens") if nights else "mag_ens"
    lc = io.read_tables(nights, filters=[("target", "!=", "")]) if nights else pd.DataFrame()
    fig, fits = report.targets_figure(lc, column, config_targets)
    io.save_figure(fig, pages["targets"])
    for name, f in fits.items():
        log.info(
            "%s: transit depth %.5f +- %.5f, mid-time BJD_TDB %.5f +- %.5f "
            "(chi2_red %.2f, %d points)",
            name,
            f["depth"],
            f["depth_err"],
            f["t0"],
            f["t0_err"],
            f["chi2_red"],
            f["n"],
        )
    comp = (
        io.read_tables(
            nights,
            ["id", "bjd_tdb", column, "mag_ens_err", "comparison"],
            filters=[("comparison", "==", True)],
        )
        if nights
        else pd.DataFrame()
    )
    io.save_figure(report.comparisons_figure(comp, column), pages["comparisons"])
    io.save_figure(_field_figure(results, frames, nights), pages["field"])
    io.write_text(
        pages["landing"],
        report.landing_rst(report.night_summary(frames), [report.png_tag(pages["diagnostics"])]),
    )
    log.info("report pages: %d frames, %d failed or flagged", len(frames), len(status))


#: The report's pages (``layout.path("report_" + name)``).
REPORT_PAGES = ("diagnostics", "problems", "targets", "comparisons", "field", "landing")


def standalone_report(results, out, run_cmd: str, excluded=(), config_targets=()) -> None:
    """The report as one self-contained HTML page without Snakemake (``fieldphot
    report``): the night's summary and diagnostics, the targets, the field, the
    rms-magnitude diagram and the failed or flagged frames, from a finished run's
    ``results`` (the report pages are drawn anew into ``results/report/``)."""
    results = Path(results)
    nights = sorted((results / "lightcurves" / "nights").glob("*.parquet"))
    pages = {k: results / layout.path(f"report_{k}") for k in REPORT_PAGES}
    report_pages(results, nights, pages, run_cmd, excluded, config_targets)
    frames, _ = io.read_table(results / layout.path("frames"))
    problems = Path(pages["problems"]).read_text()
    sections = [
        ("The night", report.night_summary(frames) + report.png_tag(pages["diagnostics"])),
        ("Targets", report.png_tag(pages["targets"])),
        ("Comparison stars", report.png_tag(pages["comparisons"])),
        ("The field", report.png_tag(pages["field"])),
        (
            "Every star: rms against magnitude",
            report.png_tag(results / "lightcurves" / "rms_mag.png"),
        ),
        (
            "Failed and flagged frames",
            problems[problems.find("<body>") + 6 : problems.rfind("</body>")],
        ),
    ]
    io.write_text(out, report.html_page(f"fieldphot: {results.resolve()}", sections))


def _field_figure(results: Path, frames: pd.DataFrame, nights):
    """The sharpest measured frame (with or without a zeropoint) with its comparison
    stars' and targets' apertures."""
    fwhm = pd.to_numeric(frames["fwhm"], errors="coerce")
    sharp = report.measured(frames) & np.isfinite(fwhm)
    if not sharp.any():
        return report.field_figure(np.zeros((2, 2)), pd.DataFrame(), "no measured frame")
    best = frames.loc[fwhm[sharp].idxmin()]
    night, frame = str(best["night"]), str(best["frame"])
    sci = io.read_calibrated(results / layout.path("calibrated", night=night, frame=frame))[0]
    cat = io.read_table(
        results / layout.path("catalogs", night=night, frame=frame),
        columns=["id", "x", "y", "r_ap", "target"],
    )[0]
    stars = pd.DataFrame(
        next((io.read_meta(p).get("stars", []) for p in nights if Path(p).stem == night), [])
    )
    comparison = set(stars.loc[stars["comparison"], "id"]) if len(stars) else set()
    kind = np.where(cat["target"].astype(str) != "", "target", "")
    kind = np.where(cat["id"].isin(comparison), "comparison", kind)
    return report.field_figure(
        sci, cat.assign(kind=kind)[kind != ""], f"{night}/{frame} (FWHM {best['fwhm']:.1f} px)"
    )
