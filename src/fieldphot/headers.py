"""Normalize FITS headers through an instrument profile.

An instrument profile (``config/instruments/*.yaml``) lists, for each normalized
quantity, the header keywords to try. :func:`normalize` turns one header into a flat
dict of plain Python values with the same keys whatever the observatory wrote, and a
list of what it could not find.

Examples
--------
>>> from astropy.io import fits
>>> h = fits.Header({"IMAGETYP": "Light Frame", "EXPTIME": "30", "FILTNAME": "V",
...                  "DATE-OBS": "2024-03-15", "UTCSTART": "03:00:00"})
>>> meta, missing = normalize(h, DEFAULT_PROFILE)
>>> meta["frame_type"], meta["exptime"], meta["filter"], meta["date_obs"]
('science', 30.0, 'V', '2024-03-15T03:00:00.000')
"""

import re
from dataclasses import dataclass

import astropy.units as u
import numpy as np
import yaml
from astropy.coordinates import Angle
from astropy.time import Time

from . import bayer
from .workflow_files import INSTRUMENTS, SCHEMAS

PROFILE_DIR = INSTRUMENTS

KINDS = ("bias", "dark", "flat", "science")


@dataclass(frozen=True)
class Profile:
    """An instrument profile: keyword lists, frame-type words, defaults, time convention."""

    name: str
    keywords: dict
    frame_types: dict
    defaults: dict
    time_convention: str = "start"
    utc_offset_hours: float = 0.0
    longitude_sign: int = 0
    amplifiers: tuple = ()
    bayer: str | None = None
    gain_per_iso: dict | None = None


SCHEMA = SCHEMAS / "instrument.schema.yaml"


def profile_from_dict(d: dict, source: str = "profile") -> Profile:
    """Build a :class:`Profile` from a parsed profile YAML document, validated first.

    Raises ``ValueError`` naming ``source`` and the offending key when it breaks the schema.
    """
    import jsonschema

    with open(SCHEMA) as fh:
        schema = yaml.safe_load(fh)
    try:
        jsonschema.validate(d, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ValueError(f"{source}: invalid instrument profile at {where}: {exc.message}") from exc
    return Profile(
        name=d["name"],
        keywords=d["keywords"],
        frame_types=d["frame_types"],
        defaults=d.get("defaults", {}),
        time_convention=d.get("time_convention", "start"),
        utc_offset_hours=float(d.get("utc_offset_hours", 0.0)),
        longitude_sign=int(d.get("longitude_sign", 0)),
        amplifiers=tuple(d.get("amplifiers", ())),
        bayer=d.get("bayer"),
        gain_per_iso={float(k): float(v) for k, v in d.get("gain_per_iso", {}).items()},
    )


def _load_builtin() -> Profile:
    with open(PROFILE_DIR / "generic.yaml") as fh:
        return profile_from_dict(yaml.safe_load(fh), str(PROFILE_DIR / "generic.yaml"))


DEFAULT_PROFILE = _load_builtin()


def first(header, keys):
    """Value of the first of ``keys`` present (and not blank) in ``header``, else None."""
    for k in keys:
        if k in header:
            v = header[k]
            if v is None or (isinstance(v, str) and not v.strip()):
                continue
            return v
    return None


def to_float(value):
    """A header value as float: numbers, numbers stored as quoted strings; else None.

    Examples
    --------
    >>> to_float("124.6185920672"), to_float(3), to_float("n/a")
    (124.6185920672, 3.0, None)
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(str(value).strip())
    except ValueError:
        return None
    return out if np.isfinite(out) else None


def classify(value, frame_types: dict) -> str | None:
    """Map a frame-type header value to one of ``bias``, ``dark``, ``flat``, ``science``.

    Examples
    --------
    >>> classify("SKYFLAT", DEFAULT_PROFILE.frame_types)
    'flat'
    >>> classify("Dark Frame", DEFAULT_PROFILE.frame_types)
    'dark'
    """
    if value is None:
        return None
    words = re.split(r"[^a-z0-9]+", str(value).strip().lower())
    joined = "".join(words)
    for kind in KINDS:
        for w in frame_types.get(kind, []):
            if w in words or joined == w or joined.startswith(w):
                return kind
    return None


def classify_name(name: str, frame_types: dict) -> str | None:
    """The frame type a file name spells as a whole word (``dark_300s_001.fits``), or None.

    Examples
    --------
    >>> classify_name("lux-180.000secs.Bias.Open.00000046.fit.gz", DEFAULT_PROFILE.frame_types)
    'bias'
    >>> classify_name("wasp12_0001.fits", DEFAULT_PROFILE.frame_types) is None
    True
    """
    words = set(re.split(r"[^a-z]+", name.lower()))
    for kind in KINDS:
        if words & set(frame_types.get(kind, [])):
            return kind
    return None


def parse_angle(value, hours: bool) -> float | None:
    """Degrees from a header angle: a number (degrees) or a sexagesimal string.

    Sexagesimal right ascensions (``hours=True``) are read as hours.

    Examples
    --------
    >>> round(parse_angle("07:27:36.0", hours=True), 6)
    111.9
    >>> parse_angle("+34:02:48", hours=False)
    34.04666666666667
    """
    num = to_float(value)
    if num is not None:
        return num
    if value is None:
        return None
    text = str(value).strip()
    try:
        return float(Angle(text, unit="hourangle" if hours else "deg").deg)
    except ValueError:
        return None


def parse_binning(header, profile: Profile) -> str:
    """Binning as ``"XxY"`` from CCDSUM-like (``'2 2'``) or XBINNING/YBINNING cards."""
    b = first(header, profile.keywords.get("binning", []))
    if b is not None:
        parts = re.findall(r"\d+", str(b))
        if len(parts) >= 2:
            return f"{int(parts[0])}x{int(parts[1])}"
        if len(parts) == 1:
            return f"{int(parts[0])}x{int(parts[0])}"
    xb = to_float(first(header, profile.keywords.get("xbin", [])))
    yb = to_float(first(header, profile.keywords.get("ybin", [])))
    return f"{int(xb or 1)}x{int(yb or xb or 1)}"


_DATETIME = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(\.\d*)?)?)?"
    r"\s*(Z|UTC?|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)
_CLOCK = re.compile(
    r"(\d{1,2}):(\d{2})(?::(\d{2})(\.\d*)?)?\s*(Z|UTC?|[+-]\d{2}(?::?\d{2})?)?", re.I
)


def _offset_hours(zone: str | None) -> float | None:
    """Hours east of UTC of an ISO zone designator; None when there is none."""
    if not zone:
        return None
    if zone.upper() in ("Z", "UT", "UTC"):
        return 0.0
    sign = -1.0 if zone[0] == "-" else 1.0
    digits = zone[1:].replace(":", "")
    return sign * (int(digits[:2]) + (int(digits[2:4]) / 60.0 if len(digits) > 2 else 0.0))


def _clock_time(date: str, h, mi, sec, frac, zone):
    """(UTC Time, resolution in s, explicit zone) of a date and a time of day."""
    res = 60.0 if sec is None else 10.0 ** -(len(frac) - 1) if frac and len(frac) > 1 else 1.0
    iso = f"{date}T{int(h):02d}:{mi}:{sec or '00'}{frac or ''}".rstrip(".")
    t = Time(iso, format="isot", scale="utc")
    offset = _offset_hours(zone)
    return (t - offset * u.hour if offset else t), res, offset is not None


def parse_time_value(value, date: str | None = None):
    """A header time as (UTC Time, resolution in s, whether its zone was explicit).

    ISO-8601 date-times with or without a UTC offset (``-0700``, ``+02:00``, ``Z``), a
    time of day on ``date`` (``YYYY-MM-DD``); None when it is neither.

    Examples
    --------
    >>> t, res, explicit = parse_time_value("2017-12-19T18:33:43.317-0700")
    >>> t.isot, res, explicit
    ('2017-12-20T01:33:43.317', 0.001, True)
    >>> parse_time_value("02:27:31.13", "2019-03-26")[0].isot
    '2019-03-26T02:27:31.130'
    """
    if value is None:
        return None
    text = str(value).strip()
    try:
        m = _DATETIME.fullmatch(text)
        if m:
            y, mo, d, h, mi, sec, frac, zone = m.groups()
            if h is None or not 1950 <= int(y) <= 2100:
                return None  # a date alone is not a time; nor is the year 3000
            return _clock_time(f"{y}-{int(mo):02d}-{int(d):02d}", h, mi, sec, frac, zone)
        m = _CLOCK.fullmatch(text)
        if m and date:
            return _clock_time(date, *m.groups())
    except ValueError:
        return None
    return None


def _mjd_time(value):
    """(UTC Time, resolution in s, True) of an MJD header value, its resolution from the
    decimals written."""
    mjd = to_float(value)
    if mjd is None or not 33282 <= mjd <= 88069:  # 1950 to 2100
        return None
    decimals = str(value).strip().split(".")[1] if "." in str(value) else ""
    return Time(mjd, format="mjd", scale="utc"), 86400.0 * 10.0 ** -len(decimals), True


def time_candidates(header, profile: Profile) -> list[tuple[str, Time, float, bool]]:
    """Every start time the header gives: (source, UTC Time, resolution s, explicit zone).

    Sources are DATE-OBS with a time, a time card (alone when it holds a date, else on
    DATE-OBS's date) and MJD-OBS. Times without a zone are taken as UTC, less the
    profile's ``utc_offset_hours``.
    """
    kw = profile.keywords
    out = []
    date_key = next((k for k in kw.get("date_obs", []) if first(header, [k]) is not None), None)
    date = first(header, [date_key]) if date_key else None
    day = None
    if date is not None:
        m = _DATETIME.match(str(date).strip())
        day = f"{m.group(1)}-{int(m.group(2)):02d}-{int(m.group(3)):02d}" if m else None
        found = parse_time_value(date)
        if found:
            out.append((date_key, *found))
    time_key = next((k for k in kw.get("time_obs", []) if first(header, [k]) is not None), None)
    if time_key:
        found = parse_time_value(first(header, [time_key]), day)
        if found:
            out.append((time_key if found[0] is None else f"{date_key}+{time_key}", *found))
    mjd_key = next((k for k in kw.get("mjd_obs", []) if first(header, [k]) is not None), None)
    if mjd_key:
        found = _mjd_time(first(header, [mjd_key]))
        if found:
            out.append((mjd_key, *found))
    if profile.utc_offset_hours:
        out = [
            (src, t if explicit else t - profile.utc_offset_hours * u.hour, res, explicit)
            for src, t, res, explicit in out
        ]
    return out


def parse_start(header, profile: Profile) -> tuple[str | None, str]:
    """ISO start time (UTC) of the most precise source, and a note when the sources
    disagree by more than their resolution.

    When a time without a zone disagrees with one that has an explicit zone (or with
    MJD-OBS, always UTC) by a whole number of quarter hours, it is a local clock: it is
    shifted by that offset and kept for its precision; otherwise the explicit time wins.

    Examples
    --------
    >>> h = {"DATE-OBS": "2017-12-19T18:33:43.317-0700", "MJD-OBS": 58107.065}
    >>> parse_start(h, DEFAULT_PROFILE)
    ('2017-12-20T01:33:43.317', '')
    >>> iso, note = parse_start({"DATE-OBS": "2017-12-19T18:33:43", "MJD-OBS": 58107.065},
    ...                         DEFAULT_PROFILE)
    >>> iso, note
    ('2017-12-20T01:33:43.000', 'DATE-OBS is 7.00 h behind MJD-OBS: read as local time')
    """
    found = time_candidates(header, profile)
    if not found:
        return None, ""
    best = min(found, key=lambda c: c[2])
    tol = lambda c: max(c[2], best[2]) + 1.0  # noqa: E731
    off = [c for c in found if abs((c[1] - best[1]).sec) > tol(c)]
    if not off:
        return best[1].isot, ""
    explicit = [c for c in found if c[3]]
    if not best[3] and explicit:
        ref = min(explicit, key=lambda c: c[2])
        shift = (ref[1] - best[1]).sec
        hours = round(shift / 900.0) / 4.0
        if abs(shift - hours * 3600.0) <= tol(ref):
            note = f"{best[0]} is {hours:.2f} h behind {ref[0]}: read as local time"
            return (best[1] + hours * u.hour).isot, note
        best = ref
    listed = ", ".join(f"{c[0]} {c[1].isot}" for c in found)
    return best[1].isot, f"start times disagree: {listed}; using {best[0]}"


def amplifier_layout(header, profile: Profile) -> tuple[str, list[str]]:
    """The profile's amplifier list resolved against one header, as JSON ('' when none).

    Each field is taken literally when it is a section or a number, else read from the
    header keyword it names. Returns the JSON and the keywords that were missing.

    Examples
    --------
    >>> import json
    >>> p = Profile("x", {}, {}, {}, amplifiers=({"trimsec": "[1:10,1:5]", "biassec": "B1",
    ...                                           "detsec": "[1:10,1:5]", "gain": 2.0},))
    >>> layout, missing = amplifier_layout({"B1": "[11:14,1:5]"}, p)
    >>> json.loads(layout)[0]["biassec"], missing
    ('[11:14,1:5]', [])
    """
    import json

    amps, missing = [], []
    for amp in profile.amplifiers:
        resolved = {}
        for key, value in amp.items():
            literal = isinstance(value, int | float) or str(value).strip().startswith("[")
            resolved[key] = value if literal else header.get(value)
            if resolved[key] is None:
                missing.append(f"amplifier {key} (keyword {value})")
            elif key in ("gain", "read_noise"):
                resolved[key] = to_float(resolved[key])
        amps.append(resolved)
    return (json.dumps(amps) if amps else ""), missing


def _scale_from_optics(pixel_um, focal_mm) -> float | None:
    """Pixel scale (arcsec) from a pixel size in micron and a focal length in mm.

    >>> round(_scale_from_optics(9.0, 1000.0), 3)
    1.856
    """
    p, f = to_float(pixel_um), to_float(focal_mm)
    return 206.264806 * p / f if p and f and p > 0 and f > 0 else None


def normalize(header, profile: Profile = DEFAULT_PROFILE) -> tuple[dict, list[str]]:
    """Normalized values of one header, and the names of required values not found.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The frame's header (primary merged with the first image extension).
    profile : Profile
        Which keywords to read.

    Returns
    -------
    meta : dict
        ``frame_type, exptime, filter, gain, read_noise, saturate, date_obs, binning,
        ra, dec, object, trimsec, biassec, site_lat, site_lon, site_elev, airmass``.
    missing : list of str
        Human-readable ``"QUANTITY (tried K1/K2)"`` entries for values that are
        required for this frame type and absent or unreadable.
    """
    kw = profile.keywords
    get = lambda name: first(header, kw.get(name, []))  # noqa: E731
    missing = []
    raw_type = get("frame_type")
    frame_type = classify(raw_type, profile.frame_types)
    exptime = to_float(get("exptime"))
    flt = get("filter")
    meta = {
        "frame_type": frame_type,
        "exptime": exptime,
        "filter": str(flt).strip() if flt is not None else None,
        "gain": _positive(get("gain")) or to_float(profile.defaults.get("gain")),
        "read_noise": _or(to_float(get("read_noise")), profile.defaults.get("read_noise")),
        "saturate": _or(to_float(get("saturate")), profile.defaults.get("saturate")),
        "date_obs": None,
        "binning": parse_binning(header, profile),
        "ra": parse_angle(get("ra"), hours=True),
        "dec": parse_angle(get("dec"), hours=False),
        "object": str(get("object")).strip() if get("object") is not None else "",
        "trimsec": _str_or_none(get("trimsec")),
        "biassec": _str_or_none(get("biassec")),
        "site_lat": parse_angle(get("site_lat"), hours=False),
        "site_lon": _signed(parse_angle(get("site_lon"), hours=False), profile.longitude_sign or 1),
        "lst": parse_angle(get("lst"), hours=True),
        "site_elev": to_float(get("site_elev")),
        "airmass": to_float(get("airmass")),
        "pixel_scale": _or(
            to_float(get("pixel_scale")),
            _or(
                _scale_from_optics(get("pixel_size"), get("focal_length")),
                profile.defaults.get("pixel_scale"),
            ),
        ),
    }
    meta["bayer"] = _bayer(header, profile)
    meta["iso"] = to_float(get("iso"))
    if _positive(get("gain")) is None and meta["iso"] in (profile.gain_per_iso or {}):
        meta["gain"] = profile.gain_per_iso[meta["iso"]]
    meta["date_obs"], meta["notes"] = parse_start(header, profile)
    meta["amplifiers"], amp_missing = amplifier_layout(header, profile)
    missing += amp_missing
    from_table = meta["iso"] in (profile.gain_per_iso or {})
    meta["guessed"] = ",".join(
        q
        for q in ("gain", "read_noise", "saturate")
        if (to_float(get(q)) is None or (q == "gain" and not _positive(get(q))))
        and profile.defaults.get(q) is not None
        and not (q == "gain" and from_table)
    )
    if to_float(get("gain")) is not None and not _positive(get("gain")):
        meta["notes"] = _join(meta["notes"], f"GAIN = {get('gain')} is no gain: not used")
    # Coordinates and values no sky or camera can have are not used (one absurd header
    # value must not stop the night): said in the notes.
    for key, lo, hi in (("ra", 0.0, 360.0), ("dec", -90.0, 90.0)):
        if meta[key] is not None and not lo <= meta[key] <= hi:
            meta["notes"] = _join(
                meta["notes"], f"{key.upper()} {meta[key]:g} is outside {lo:g}..{hi:g}: not used"
            )
            meta[key] = None
    if frame_type is None:
        missing.append(f"frame type (tried {'/'.join(kw['frame_type'])}, value {raw_type!r})")
    if exptime is None:
        missing.append(f"exposure time (tried {'/'.join(kw['exptime'])})")
    elif exptime < 0 or (exptime == 0 and frame_type not in (None, "bias")):
        missing.append(f"exposure time {exptime} s is not positive")
    elif exptime > 1e6:
        missing.append(f"exposure time {exptime:g} s is not a real exposure")
    if meta["date_obs"] is None:
        keys = kw["date_obs"] + kw["time_obs"] + kw["mjd_obs"]
        found = [f"{k} = {header[k]!r}" for k in keys if k in header]
        missing.append(
            f"start time (tried {'/'.join(keys)}"
            + (f"; {', '.join(found)} is not a real date from 1950 to 2100)" if found else ")")
        )

    if meta["filter"] is None and frame_type in ("flat", "science"):
        missing.append(f"filter (tried {'/'.join(kw['filter'])})")
    return meta, missing


def _bayer(header, profile: Profile) -> str:
    """The Bayer pattern of the stored array (:func:`fieldphot.bayer.stored_pattern`),
    the profile's when it gives one, ``""`` for a monochrome sensor.

    Examples
    --------
    >>> _bayer({"BAYERPAT": "RGGB", "ROWORDER": "BOTTOM-UP", "NAXIS2": 10}, DEFAULT_PROFILE)
    'GBRG'
    """
    if profile.bayer:
        return "" if profile.bayer == "none" else profile.bayer
    kw = profile.keywords
    get = lambda name: first(header, kw.get(name, []))  # noqa: E731
    pattern = bayer.stored_pattern(
        get("bayer"),
        to_float(get("bayer_xoffset")) or 0,
        to_float(get("bayer_yoffset")) or 0,
        get("row_order"),
        int(to_float(header.get("NAXIS2")) or 0),
    )
    return pattern or ""


def _join(*notes) -> str:
    return "; ".join(n for n in notes if n)


def _positive(value) -> float | None:
    """A header number when it is above zero, else None."""
    v = to_float(value)
    return v if v is not None and v > 0 else None


def _or(value, default):
    return value if value is not None else to_float(default)


def _str_or_none(v):
    return None if v is None else str(v).strip()


def _signed(v, sign):
    return None if v is None else sign * v
