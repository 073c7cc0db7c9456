"""The manifest: every raw frame classified from its header, and its calibration plan.

:func:`build_manifest` turns (path, header) pairs into one table with a row per frame
(normalized header values, night, times) and, for each science frame, the masters it
will be calibrated with. Frames that cannot be used keep their row with
``status='bad'`` and a one-line ``reason`` naming the file and the problem.

Examples
--------
>>> from astropy.io import fits
>>> h = fits.Header({"IMAGETYP": "BIAS", "EXPTIME": 0.0, "DATE-OBS": "2024-03-15T01:00:00"})
>>> m = build_manifest([("raw/b1.fits", h)])
>>> m.loc[0, ["frame", "kind", "night", "status"]].tolist()
['b1', 'bias', '20240314', 'ok']
"""

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from . import bayer, camera_raw, headers, io, timeutil

RAW_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fits.fz", ".fz")


def is_raw_name(name: str) -> bool:
    """Whether a file name looks like a frame: FITS (plain, gzip or fpack) or a camera
    raw file (:data:`fieldphot.camera_raw.SUFFIXES`)."""
    n = name.lower()
    return n.endswith(RAW_SUFFIXES + camera_raw.SUFFIXES) and not n.startswith(".")


def scan_raw(raw_dir) -> tuple[list[Path], list[tuple[str, str]]]:
    """Every FITS-looking file below ``raw_dir`` (sorted, linked folders followed once),
    and what could not be looked at: ``(path, reason)`` for an unreadable folder or file
    and a link to nothing, so that no frame is left out without a word.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); os.symlink(d + "/gone.fits", d + "/a.fits")
    >>> scan_raw(d)[1][0][1]
    'a link to a missing file'
    """
    files, problems, seen = [], [], set()

    def unreadable(exc: OSError) -> None:
        problems.append(
            (exc.filename, f"folder not readable ({exc.strerror}): its frames are not in this run")
        )

    for folder, dirs, names in os.walk(raw_dir, onerror=unreadable, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back to a folder already walked
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in names:
            path = Path(folder) / name
            if not is_raw_name(name):
                continue
            if not path.exists():
                problems.append((str(path), "a link to a missing file"))
            elif not os.access(path, os.R_OK):
                problems.append((str(path), "not readable (permission denied)"))
            elif path.is_file():
                files.append(path)
    return sorted(files), problems


def _stat_key(path) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def raw_state(paths) -> str:
    """A short fingerprint of the raw files' sizes, times and inodes: it changes when a
    file is added, removed or rewritten (a rewrite sets the change time, whatever the
    modification time says), so the manifest is remade (a rule parameter).

    >>> raw_state([]) == raw_state([])
    True
    """
    text = "\n".join(f"{p} {_stat_key(p)}" for p in paths)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def content_digests(paths, cache_path) -> dict[str, str]:
    """SHA-256 of each raw file's bytes, by path; a file whose size, times and inode are
    those of the cache file ``cache_path`` keeps its cached digest, so a file is read for
    it once, not on every run (the cache is rewritten; deleting it costs only time)."""
    from . import io

    try:
        cache = json.loads(Path(cache_path).read_text())
    except (OSError, ValueError):
        cache = {}
    out, fresh = {}, {}
    for p in map(str, paths):
        key = _stat_key(p)
        known = cache.get(p)
        digest = known[1] if known and known[0] == key else io.file_digest(p)
        out[p], fresh[p] = digest, [key, digest]
    io.write_text(cache_path, json.dumps(fresh))
    return out


def safe_name(text: str) -> str:
    """A string made safe for file names: only letters, digits, ``.``, ``_``, ``+``, ``-``.

    Examples
    --------
    >>> safe_name("R/band; rm -rf")
    'R_band_rm_-rf'
    """
    out = re.sub(r"[^A-Za-z0-9._+-]+", "_", str(text)).strip("._")
    return out or "none"


def frame_name(path: str) -> str:
    """Frame identifier: the file name without its FITS/compression suffix, made safe."""
    name = Path(path).name
    for suf in sorted(RAW_SUFFIXES + camera_raw.SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suf):
            name = name[: -len(suf)]
            break
    return safe_name(name)


def excluded_frames(names) -> set[str]:
    """Frame names of ``exclude_frames`` entries, written as names, file names or paths.

    >>> sorted(excluded_frames(["night1/a b.fits.gz", "c"]))
    ['a_b', 'c']
    """
    return {frame_name(str(n)) for n in names or ()}


def science_frames(df: pd.DataFrame, exclude=()) -> pd.DataFrame:
    """The frames a run measures: readable science frames not in ``exclude`` (the
    config's ``exclude_frames``: names, file names or paths). The workflow and the plain
    loop both take them from here.

    >>> m = pd.DataFrame({"frame": ["a", "b", "c"], "kind": ["science", "science", "bias"],
    ...                   "status": "ok"})
    >>> science_frames(m, ["night1/b.fits"])["frame"].tolist()
    ['a']
    """
    sel = (df["kind"] == "science") & (df["status"] == "ok")
    names = excluded_frames(exclude)
    exposure = df["exposure"] if "exposure" in df else df["frame"]
    return df[sel & ~df["frame"].isin(names) & ~exposure.isin(names)]


def _setup(kind: str, filt: str, binning: str, readout: str) -> str:
    """Calibration setup: binning and raw readout shape, and the filter for flats."""
    base = f"{binning}_{readout}"
    return safe_name(f"{filt}_{base}") if kind == "flat" else safe_name(base)


def build_manifest(
    items,
    profile: headers.Profile = headers.DEFAULT_PROFILE,
    observatory: dict | None = None,
    sky_dark_min_frames: int = 5,
    digests: dict | None = None,
    pointing: dict | None = None,
) -> pd.DataFrame:
    """Classify frames and plan their calibration.

    Parameters
    ----------
    items : iterable of (path, header or Exception)
        A header, or the error raised while reading it (the frame becomes ``bad``).
    profile : headers.Profile
        Keyword map of the instrument.
    observatory : dict, optional
        ``lat``, ``lon`` (deg, east positive), ``elev`` (m) overriding the headers.
    sky_dark_min_frames : int
        Where a night has no darks for a setup but at least this many science frames, their
        dark current and glow are estimated from the science frames themselves (a
        ``skydark`` master); 0 turns this off.
    digests : dict, optional
        Each file's content digest by path (:func:`content_digests`): column ``digest``,
        in each frame's row, so a step reruns when its file's bytes change.
    pointing : dict, optional
        ``ra``, ``dec`` (deg): the field centre of frames whose headers give none.

    Returns
    -------
    pandas.DataFrame
        One row per file; see DESIGN.md for the columns.
    """
    rows, missing_of, untyped = [], {}, []
    for path, header in items:
        row = {"path": str(path), "frame": frame_name(path), "status": "ok", "reason": ""}
        if isinstance(header, Exception):
            row.update(status="bad", reason=str(header))
            rows.append(row)
            continue
        meta, missing = headers.normalize(header, profile)
        if (
            meta["frame_type"] is None
            and headers.first(header, profile.keywords["frame_type"]) is None
        ):
            meta["frame_type"] = headers.classify_name(Path(path).name, profile.frame_types)
            if meta["frame_type"] is None:
                untyped.append(len(rows))
            else:
                missing = [m for m in missing if not m.startswith("frame type")]
        row.update(meta)
        row["kind"] = meta["frame_type"]
        row["naxis1"] = int(header.get("NAXIS1", 0) or 0)
        row["naxis2"] = int(header.get("NAXIS2", 0) or 0)
        missing_of[len(rows)] = missing
        rows.append(row)
    notes = []
    if untyped and not any(r.get("kind") in ("bias", "dark", "flat") for r in rows):
        for i in untyped:  # no type anywhere and nothing to calibrate with: all are lights
            rows[i]["kind"] = rows[i]["frame_type"] = "science"
            missing_of[i] = [m for m in missing_of[i] if not m.startswith("frame type")]
            if rows[i]["filter"] is None:
                missing_of[i].append(f"filter (tried {'/'.join(profile.keywords['filter'])})")
        notes.append(
            f"{len(untyped)} frames carry no frame type "
            f"({'/'.join(profile.keywords['frame_type'])}) and there are no calibration "
            "frames: taken as science frames"
        )
    for i, missing in missing_of.items():
        if missing:
            rows[i].update(status="bad", reason=f"{rows[i]['path']}: " + "; ".join(missing))
    df = pd.DataFrame(rows)
    for col, default in _COLUMNS.items():
        if col not in df:
            df[col] = default
        elif isinstance(default, str):  # a bad file's row has none of its header's text
            df[col] = df[col].fillna(default)
        elif default is None:  # absent is None (a column of absent values is no NaN column)
            df[col] = df[col].astype(object).where(df[col].notna(), None)
    df = df[list(_COLUMNS)].copy()
    if observatory:
        for key, col in (("lat", "site_lat"), ("lon", "site_lon"), ("elev", "site_elev")):
            if observatory.get(key) is not None:
                df[col] = float(observatory[key])
    for key in ("ra", "dec"):
        if (pointing or {}).get(key) is not None:
            df[key] = pd.to_numeric(df[key], errors="coerce").fillna(float(pointing[key]))
    df["digest"] = [(digests or {}).get(p, "") for p in df["path"]]
    _dedupe_frames(df)
    _add_times(df, profile, notes, check_site=not (observatory or {}).get("lon"))
    _mark_duplicates(df)
    df["filter"] = df["filter"].fillna("none").astype(str)
    for col in ("naxis1", "naxis2"):
        df[col] = df[col].fillna(0).astype(int)
    df["readout"] = _readouts(df)
    df["setup"] = [
        _setup(k, f, b, r)
        for k, f, b, r in zip(df["kind"], df["filter"], df["binning"], df["readout"], strict=True)
    ]
    _plan_calibration(df)
    _plan_sky_darks(df, sky_dark_min_frames)
    df = split_channels(df)
    df.attrs["notes"] = notes + sorted(set(df.loc[df["notes"] != "", "notes"]))
    return df


_COLUMNS = {
    "path": "",
    "frame": "",
    "kind": None,
    "night": "",
    "status": "ok",
    "reason": "",
    "filter": None,
    "binning": "1x1",
    "exptime": np.nan,
    "date_obs": None,
    "mjd_utc_mid": np.nan,
    "bjd_tdb": np.nan,
    "airmass": np.nan,
    "lst": np.nan,
    "gain": np.nan,
    "gain_err": np.nan,
    "read_noise": np.nan,
    "saturate": np.nan,
    "ra": np.nan,
    "dec": np.nan,
    "object": "",
    "trimsec": None,
    "biassec": None,
    "site_lat": np.nan,
    "site_lon": np.nan,
    "site_elev": np.nan,
    "pixel_scale": np.nan,
    "amplifiers": "",
    "guessed": "",
    "notes": "",
    "digest": "",
    "naxis1": 0,
    "naxis2": 0,
    "bayer": "",
    "iso": np.nan,
}


def _readouts(df: pd.DataFrame) -> list[str]:
    """Each frame's readout: its raw shape, its ISO where the header gives one (a DSLR's
    gain setting), and its TRIMSEC where that differs from the one most frames of that
    shape have (a subframe read out inside the same raw shape must never be calibrated
    with, or combined into, the full frame's masters)."""
    shape = [f"{a}x{b}" for a, b in zip(df["naxis1"], df["naxis2"], strict=True)]
    trim = pd.Series(
        [t.replace(" ", "") if isinstance(t, str) else "" for t in df["trimsec"]], df.index
    )
    ok = df["status"] == "ok"
    out = list(shape)
    for s in set(shape):
        same = np.array([x == s for x in shape])
        usual = trim[same & ok].mode()
        usual = usual.iloc[0] if len(usual) else ""
        for i in np.flatnonzero(same & (trim != usual).to_numpy()):
            out[i] = f"{s}_{safe_name(trim.iloc[i]) if trim.iloc[i] else 'untrimmed'}"
    iso = pd.to_numeric(df["iso"], errors="coerce").to_numpy(float)
    return [f"{r}_iso{v:g}" if np.isfinite(v) else r for r, v in zip(out, iso, strict=True)]


def _dedupe_frames(df: pd.DataFrame) -> None:
    """Make frame names unique: a name that repeats an earlier one (``a b.fits`` and
    ``a_b.fits`` both make ``a_b``) gets the first ``_<n>`` suffix that is no other file's
    name, so ``a_b_1.fits`` keeps its own."""
    taken = set(df["frame"])
    seen: set[str] = set()
    names = []
    for f in df["frame"]:
        name, n = f, 1
        while name in seen:
            while f"{f}_{n}" in taken:
                n += 1
            name = f"{f}_{n}"
            taken.add(name)
        seen.add(name)
        names.append(name)
    df["frame"] = names


def _mark_duplicates(df: pd.DataFrame) -> None:
    """Mark a file whose bytes repeat an earlier file's as ``bad`` ("duplicate of ...").

    Only files that agree in type, start time, exposure, filter and shape are compared,
    so the bytes of a night are read once at most for the few that might repeat.
    """
    key = ["kind", "date_obs", "exptime", "filter", "naxis1", "naxis2"]
    ok = df[(df["status"] == "ok") & df["date_obs"].notna()]
    for _, group in ok.groupby(key, dropna=False):
        if len(group) < 2:
            continue
        first: dict[str, str] = {}
        for i, path in group["path"].sort_values().items():
            digest = df.at[i, "digest"] or io.file_digest(path)
            if digest in first:
                df.loc[i, ["status", "reason"]] = ["bad", f"{path}: duplicate of {first[digest]}"]
            else:
                first[digest] = path


def _add_times(df: pd.DataFrame, profile: headers.Profile, notes: list, check_site=True) -> None:
    ok = df["date_obs"].notna() & df["exptime"].between(0, 1e6)  # 1e30 s: no time at all
    df["night"] = ""
    if not ok.any():
        return
    sub = df[ok]
    mjd = timeutil.mid_exposure_mjd(sub["date_obs"], sub["exptime"], profile.time_convention)
    df.loc[ok, "mjd_utc_mid"] = mjd
    if check_site and profile.longitude_sign == 0:
        _check_longitudes(df, ok, notes)
    df.loc[ok, "night"] = timeutil.night_label(mjd, df.loc[ok, "site_lon"].astype(float).to_numpy())
    sci = ok & (df["kind"] == "science") & df["ra"].notna() & df["dec"].notna()
    nowhere = sci & (df["site_lat"].isna() | df["site_lon"].isna())
    if nowhere.any():
        notes.append(
            f"{int(nowhere.sum())} science frames give no site location (tried "
            f"{'/'.join(profile.keywords['site_lat'])}, {'/'.join(profile.keywords['site_lon'])}"
            "): BJD_TDB from the Earth's centre (up to 21 ms off) and the headers' AIRMASS; "
            "set observatory: {lat, lon, elev} in the config"
        )
    if sci.any():
        s = df[sci]
        args = [
            s[c].astype(float).to_numpy()
            for c in ("ra", "dec", "site_lat", "site_lon", "site_elev")
        ]
        df.loc[sci, "bjd_tdb"] = timeutil.bjd_tdb(s["mjd_utc_mid"].to_numpy(), *args)
        computed = timeutil.airmass(s["mjd_utc_mid"].to_numpy(), *args)
        df.loc[sci, "airmass"] = np.where(np.isfinite(computed), computed, s["airmass"])


def _check_longitudes(df: pd.DataFrame, ok: pd.Series, notes: list) -> None:
    """Read each site's header longitude east- or west-positive, whichever the headers'
    own local sidereal time and airmass agree with (:func:`timeutil.longitude_sign`)."""
    known = ok & df["site_lon"].notna() & df["site_lat"].notna()
    for (lat, lon), g in df[known].groupby(["site_lat", "site_lon"]):
        g = g.iloc[np.linspace(0, len(g) - 1, min(len(g), 20)).astype(int)]
        sign, why = timeutil.longitude_sign(
            g["mjd_utc_mid"].to_numpy(float),
            g["exptime"].to_numpy(float),
            *(g[c].astype(float).to_numpy() for c in ("ra", "dec")),
            lat,
            lon,
            *(g[c].astype(float).to_numpy() for c in ("site_elev", "airmass", "lst")),
        )
        if sign < 0:
            df.loc[known & (df["site_lat"] == lat) & (df["site_lon"] == lon), "site_lon"] = -lon
            notes.append(
                f"site longitude {lon:+.4f} read as west-positive ({-lon:+.4f} east): {why}"
            )


def master_path(night: str, kind: str, setup: str) -> str:
    """Relative path of a master calibration frame (see DESIGN.md)."""
    return f"masters/{night}/{kind}_{setup}.fits"


def _plan_calibration(df: pd.DataFrame) -> None:
    """Choose each frame's masters: same night and setup, else the nearest night."""
    ok = df["status"] == "ok"
    available: dict[tuple[str, str], list[str]] = {}
    for (kind, setup, night), _ in df[ok & df["kind"].isin(["bias", "dark", "flat"])].groupby(
        ["kind", "setup", "night"]
    ):
        available.setdefault((kind, setup), []).append(night)

    def pick(kind, setup, night):
        nights = available.get((kind, setup), [])
        if not nights:
            return "", False
        if night in nights:
            return master_path(night, kind, setup), False
        best = min(nights, key=lambda n: abs(int(n) - int(night)) if n and night else 0)
        return master_path(best, kind, setup), True

    for col in ("bias_master", "dark_master", "flat_master"):
        df[col] = ""
    df["cal_fallback"] = False
    for i in df.index[ok]:
        kind, night, binning = df.at[i, "kind"], df.at[i, "night"], df.at[i, "binning"]
        readout = df.at[i, "readout"]
        needs = {
            "bias": [],
            "dark": ["bias"],
            "flat": ["bias", "dark"],
            "science": ["bias", "dark", "flat"],
        }.get(kind, [])
        for need in needs:
            setup = _setup(need, df.at[i, "filter"], binning, readout)
            path, fallback = pick(need, setup, night)
            df.at[i, f"{need}_master"] = path
            df.at[i, "cal_fallback"] |= fallback


def _plan_sky_darks(df: pd.DataFrame, min_frames: int) -> None:
    """Science frames with no dark master get a ``skydark`` made from their own night."""
    if min_frames <= 0:
        return
    sci = (df["status"] == "ok") & (df["kind"] == "science") & (df["dark_master"] == "")
    sci &= df["bayer"] == ""  # a colour sky is no constant times the flat
    for (night, binning, readout), g in df[sci].groupby(["night", "binning", "readout"]):
        if len(g) >= min_frames:
            setup = _setup("dark", "", binning, readout)
            df.loc[g.index, "dark_master"] = master_path(night, "skydark", setup)


def split_channels(df: pd.DataFrame) -> pd.DataFrame:
    """Each usable colour science frame (a ``bayer`` pattern) as four rows, one per
    channel plane (:mod:`fieldphot.bayer`): frame ``<exposure>_<channel>``, ``filter``
    the channel, ``pixel_scale`` doubled (a plane pixel spans two of the mosaic's). Every
    row gets ``exposure`` (the raw frame's name) and ``channel`` (``""``: monochrome).

    Examples
    --------
    >>> m = pd.DataFrame({"frame": ["a", "b"], "kind": "science", "status": "ok",
    ...                   "bayer": ["RGGB", ""], "filter": "L", "pixel_scale": 1.5})
    >>> split_channels(m)[["frame", "filter", "pixel_scale", "exposure"]].values.tolist()[::2]
    [['a_R', 'R', 3.0, 'a'], ['a_G2', 'G2', 3.0, 'a'], ['b', 'L', 1.5, 'b']]
    """
    df = df.assign(exposure=df["frame"], channel="")
    colour = (df["kind"] == "science") & (df["status"] == "ok") & (df["bayer"] != "")
    n = len(bayer.CHANNELS)
    out = df.loc[df.index.repeat(np.where(colour, n, 1))]  # each colour row n times, in place
    split = colour[out.index].to_numpy()
    channel = np.array(bayer.CHANNELS)[out.groupby(level=0).cumcount().to_numpy() % n][split]
    out = out.reset_index(drop=True)
    out.loc[split, "channel"] = out.loc[split, "filter"] = channel
    out.loc[split, "frame"] = out.loc[split, "frame"] + "_" + channel
    scale = pd.to_numeric(out.loc[split, "pixel_scale"], errors="coerce")
    out.loc[split, "pixel_scale"] = 2.0 * scale
    return out


def pointing_anchors(df: pd.DataFrame, tolerance_arcmin: float = 5.0) -> pd.Series:
    """The first frame of each frame's pointing: its solution is the others' hint.

    Frames of one night with the same binning and readout share a pointing when their
    header RA/Dec lie within ``tolerance_arcmin`` of the pointing's first frame (in
    time), or, with no coordinates, when they name the same object.

    Parameters
    ----------
    df : DataFrame
        Manifest rows (``frame, night, binning, readout, mjd_utc_mid, ra, dec, object``).
    tolerance_arcmin : float
        Largest separation of frames of one pointing.

    Returns
    -------
    Series
        The anchor frame's name, indexed like ``df``.

    Examples
    --------
    >>> df = pd.DataFrame({"frame": ["a", "b", "c"], "night": "20240101", "binning": "1x1",
    ...                    "readout": "1024x1024", "mjd_utc_mid": [3.0, 1.0, 2.0],
    ...                    "ra": [10.0, 10.01, 12.0], "dec": [5.0, 5.0, 5.0], "object": ""})
    >>> pointing_anchors(df).tolist()
    ['b', 'b', 'c']
    """
    anchors = pd.Series(df["frame"].to_numpy(), index=df.index, dtype=object)
    tol = np.radians(tolerance_arcmin / 60.0)
    groups: dict[tuple, list] = {}
    rows = df.sort_values("mjd_utc_mid", kind="stable")
    for i, row in zip(rows.index, rows.itertuples(index=False), strict=True):
        ra, dec = np.radians(float(row.ra)), np.radians(float(row.dec))
        for a_ra, a_dec, a_obj, a_frame in groups.setdefault(
            (row.night, row.binning, row.readout), []
        ):
            if np.isfinite(ra) and np.isfinite(dec) and np.isfinite(a_ra):
                cos = np.sin(dec) * np.sin(a_dec) + np.cos(dec) * np.cos(a_dec) * np.cos(ra - a_ra)
                same = np.arccos(np.clip(cos, -1, 1)) <= tol
            else:
                same = not np.isfinite(ra) and not np.isfinite(a_ra) and bool(row.object)
                same = same and row.object == a_obj
            if same:
                anchors[i] = a_frame
                break
        else:
            groups[(row.night, row.binning, row.readout)].append((ra, dec, row.object, row.frame))
    return anchors


def masters_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per master to build: night, kind, setup, its input frames and masters."""
    ok = (df["status"] == "ok") & df["kind"].isin(["bias", "dark", "flat"])
    rows = []
    for (night, kind, setup), g in df[ok].groupby(["night", "kind", "setup"]):
        rows.append(
            {
                "night": night,
                "kind": kind,
                "setup": setup,
                "path": master_path(night, kind, setup),
                "inputs": list(g["path"]),
                "bias_master": g["bias_master"].iloc[0],
                "dark_master": g["dark_master"].iloc[0],
                "flat_master": "",
                "bayer": g["bayer"].iloc[0],
            }
        )
    sky = (df["status"] == "ok") & df["dark_master"].str.contains("/skydark_", regex=False)
    for path, g in df[sky].groupby("dark_master"):
        rows.append(
            {
                "night": path.split("/")[1],
                "kind": "skydark",
                "setup": path.split("/skydark_")[1].removesuffix(".fits"),
                "path": path,
                "inputs": list(g["path"]),
                "bias_master": g["bias_master"].iloc[0],
                "dark_master": "",
                "flat_master": g["flat_master"].iloc[0],
                "bayer": "",
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "night",
            "kind",
            "setup",
            "path",
            "inputs",
            "bias_master",
            "dark_master",
            "flat_master",
            "bayer",
        ],
    )
