"""Where a moving target (asteroid, comet) is at each frame's time: an ephemeris table
read as JPL Horizons or the Minor Planet Center export it, a position at an epoch with
rates, or a designation resolved through JPL Horizons (``astroquery.jplhorizons``) once
per night and kept in the cache, so every run after the first is offline.

A table has one row per epoch: ``jd_utc``, ``ra``, ``dec`` (deg, ICRF) and, where the
source gives them, ``delta`` and ``r`` (au, from the observer and the Sun), ``phase``
(deg, the Sun-target-observer angle), ``vmag``, ``pab_lon`` and ``pab_lat`` (deg, the
phase-angle bisector). :func:`at` interpolates it to any times.

Examples
--------
>>> t = {"name": "rock", "ra": 150.0, "dec": 20.0, "epoch_jd": 2460384.5,
...      "rate_ra": 0.5, "rate_dec": -0.25}
>>> p = at(t, [2460384.5, 2460384.5 + 60 / 1440])
>>> round(float((p["dec"].iloc[1] - 20.0) * 3600), 3)
-15.0
"""

import csv
import fcntl
import functools
import hashlib
import json
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.coordinates import Angle
from astropy.time import Time
from scipy.interpolate import CubicSpline

from . import io
from .io import FrameError

#: Columns of an ephemeris table (those a source does not give are NaN).
COLUMNS = ("jd_utc", "ra", "dec", "delta", "r", "phase", "vmag", "pab_lon", "pab_lat")
#: Horizons column names (their start, spaces and underscores removed) -> ours.
_HORIZONS = {
    "datejdut": "jd_utc",
    "r.a.(icrf)": "ra",
    "r.a.(icrf/j2000.0)": "ra",
    "r.a.(j2000.0)": "ra",
    "dec(icrf)": "dec",
    "dec(icrf/j2000.0)": "dec",
    "dec(j2000.0)": "dec",
    "delta": "delta",
    "r": "r",
    "s-t-o": "phase",
    "apmag": "vmag",
    "t-mag": "vmag",
    "pab-lon": "pab_lon",
    "pab-lat": "pab_lat",
}
#: Minutes of ephemeris between the rows of a Horizons query (positions between them are
#: interpolated by a cubic spline: sub-milliarcsecond for main-belt motion).
QUERY_STEP_MIN = 10


def read(path) -> pd.DataFrame:
    """An ephemeris file as JPL Horizons (its text table, CSV or not, or its API reply) or
    the MPC's ephemeris service export it: :data:`COLUMNS`, sorted by time.

    Raises
    ------
    FrameError
        One line naming the file and what in it could not be read.
    """
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise FrameError(f"{path}: ephemeris file cannot be read ({exc.strerror})") from None
    try:
        return parse(text)
    except ValueError as exc:
        raise FrameError(f"{path}: {exc}") from None


@functools.lru_cache(maxsize=16)
def _read_once(path: str, mtime_ns: int) -> pd.DataFrame:
    """:func:`read`, once per file version in a process (every frame a warm worker
    measures reads the same ephemeris)."""
    return read(path)


def parse(text: str) -> pd.DataFrame:
    """An ephemeris from its text (:func:`read`)."""
    if text.lstrip().startswith("{"):  # the Horizons API's JSON reply
        text = json.loads(text).get("result", "")
    if "$$SOE" in text:
        table = _horizons(text)
    else:
        table = _mpc(text)
    if len(table) == 0:
        raise ValueError("no ephemeris rows (JPL Horizons or MPC format)")
    return table.sort_values("jd_utc", ignore_index=True)


def _horizons(text: str) -> pd.DataFrame:
    lines = text.splitlines()
    soe = next(i for i, s in enumerate(lines) if s.startswith("$$SOE"))
    eoe = next((i for i, s in enumerate(lines) if s.startswith("$$EOE")), len(lines))
    header = next(
        (lines[i] for i in range(soe - 1, -1, -1) if "Date_" in lines[i] or "JDUT" in lines[i]),
        "",
    )
    if "(TT)" in header or "JDTT" in header or "(TDB)" in header:
        raise ValueError("a Horizons table in TT or TDB: export it with times in UT")
    if "," in header:
        names = [_label(h) or f"_{k}" for k, h in enumerate(header.split(","))]
        rows = list(csv.reader(lines[soe + 1 : eoe], skipinitialspace=True))
        raw = pd.DataFrame([r[: len(names)] for r in rows if r], columns=None)
        raw = (
            raw.set_axis(names[: raw.shape[1]], axis=1) if len(raw) else pd.DataFrame(columns=names)
        )
    else:
        raw = _fixed_width(header, lines[soe + 1 : eoe])
    out = pd.DataFrame(index=range(len(raw)))
    for col, ours in _HORIZONS.items():
        if col in raw and ours not in out:
            out[ours] = raw[col].str.strip()
    if "jd_utc" not in out:
        date = next((c for c in raw if c.startswith("date(ut)")), None)
        if date is None:
            raise ValueError("a Horizons table without a UT date or JDUT column")
        out["jd_utc"] = [_calendar_jd(s) for s in raw[date]]
    if "ra" not in out or "dec" not in out:
        raise ValueError("a Horizons table without astrometric R.A. and DEC (quantity 1)")
    out["ra"] = [_angle(s, hours=True) for s in out["ra"]]
    out["dec"] = [_angle(s, hours=False) for s in out["dec"]]
    return _complete(out)


def _label(h: str) -> str:
    """A Horizons column label as a key: spaces and underscores out, lower case."""
    return re.sub(r"[\s_]+", "", h).lower()


#: Marks Horizons writes after the date in its text table (Sun and Moon presence,
#: rise/transit/set): never a value.
_MARKS = re.compile(r"^[*CNAmrtsex]{1,3}$")
_INT2 = re.compile(r"^[-+]?\d{1,3}$")


def _fixed_width(header: str, rows) -> pd.DataFrame:
    """Horizons' default text table (not CSV): the date, then the values in the order of
    the header's labels, a sexagesimal RA/Dec pair (or an hours-minutes-seconds time)
    taking three words each."""
    labels = header.split()[1:]  # after Date__(UT)__HR:MN
    out = []
    for line in rows:
        words = line.split()
        if len(words) < 3:
            continue
        row, i = {"date(ut)hr:mn": f"{words[0]} {words[1]}"}, 2
        while i < len(words) and _MARKS.match(words[i]):
            i += 1
        for lab in labels:
            key = _label(lab)
            if lab.startswith("R.A.") and lab.endswith("DEC"):
                kind = "icrf" if "ICRF" in lab or "J2000" in lab else "a-app"
                sexa = i + 5 < len(words) and all(_INT2.match(w) for w in words[i : i + 2])
                n = 3 if sexa else 1
                row[f"r.a.({kind})"] = " ".join(words[i : i + n])
                row[f"dec({kind})"] = " ".join(words[i + n : i + 2 * n])
                i += 2 * n
            elif re.match(r"^[^_]+_\(.*\)_[^_]+$", lab):  # two values: Azi_(a-appr)_Elev
                i += 2
            elif i + 2 < len(words) and _INT2.match(words[i]) and _INT2.match(words[i + 1]):
                row[key] = " ".join(words[i : i + 3])  # a time as hours minutes seconds
                i += 3
            else:
                row[key] = words[i] if i < len(words) else ""
                i += 1
        out.append(row)
    return pd.DataFrame(out)


def _calendar_jd(s: str) -> float:
    s = s.strip().lstrip("AB.D ").strip()
    for fmt in ("%Y-%b-%d %H:%M:%S.%f", "%Y-%b-%d %H:%M:%S", "%Y-%b-%d %H:%M", "%Y-%b-%d %H"):
        try:
            t = datetime.strptime(s, fmt)
        except ValueError:
            continue
        return _jd(
            t.year, t.month, t.day, t.hour + t.minute / 60 + (t.second + t.microsecond / 1e6) / 3600
        )
    raise ValueError(f"a date {s!r} that is not Horizons' YYYY-Mon-DD HH:MM")


def _jd(year, month, day, hours) -> float:
    return float(Time(f"{year:04d}-{month:02d}-{day:02d}", scale="utc").jd + hours / 24)


def _angle(s: str, hours: bool) -> float:
    s = str(s).strip()
    try:
        return float(s)
    except ValueError:
        a = Angle(
            s.replace(" ", ":", 2) if s.count(" ") >= 2 else s, unit="hourangle" if hours else "deg"
        )
        return float(a.deg)


#: An MPC ephemeris line: date and UT (HH, HHMM or HHMMSS), RA h m s, Dec d m s, then
#: Delta, r, elongation, phase and V.
_MPC_LINE = re.compile(
    r"^\s*(\d{4}) (\d\d) (\d\d)(?:\.(\d+))? ?(\d{2,6})?\s+"
    r"(\d\d \d\d [\d.]+)\s+([+-]?\d\d \d\d [\d.]+)\s+"
    r"([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)"
)


def _mpc(text: str) -> pd.DataFrame:
    rows = []
    for line in text.splitlines():
        m = _MPC_LINE.match(line)
        if not m:
            continue
        y, mo, d, frac, hms, ra, dec, delta, r, _elong, phase, v = m.groups()
        hours = 24 * float(f"0.{frac}") if frac else 0.0
        if hms:
            hms = hms.ljust(6, "0")
            hours = int(hms[:2]) + int(hms[2:4]) / 60 + int(hms[4:]) / 3600
        rows.append(
            {
                "jd_utc": _jd(int(y), int(mo), int(d), hours),
                "ra": _angle(ra, hours=True),
                "dec": _angle(dec, hours=False),
                "delta": float(delta),
                "r": float(r),
                "phase": float(phase),
                "vmag": float(v),
            }
        )
    return _complete(pd.DataFrame(rows))


def _complete(t: pd.DataFrame) -> pd.DataFrame:
    """All :data:`COLUMNS`, as floats (Horizons' ``n.a.`` is NaN)."""
    return pd.DataFrame(
        {c: pd.to_numeric(t[c], errors="coerce") if c in t else np.nan for c in COLUMNS},
        index=t.index,
    ).astype(float)


def linear(ra, dec, epoch_jd, rate_ra, rate_dec, jd) -> pd.DataFrame:
    """Positions moving at constant rates (arcsec/min; ``rate_ra`` is dRA cos(Dec), as
    Horizons and the MPC give it) from (``ra``, ``dec``) at ``epoch_jd`` (UTC)."""
    jd = np.atleast_1d(np.asarray(jd, float))
    minutes = (jd - epoch_jd) * 1440.0
    d = dec + rate_dec * minutes / 3600.0
    r = ra + rate_ra * minutes / 3600.0 / np.cos(np.radians(0.5 * (dec + d)))
    return _complete(pd.DataFrame({"jd_utc": jd, "ra": r % 360.0, "dec": d}))


def interpolate(table: pd.DataFrame, jd) -> pd.DataFrame:
    """An ephemeris table at times ``jd`` (UTC): a cubic spline through RA (unwrapped)
    and Dec, linear in the rest. Times outside the table are an error."""
    jd = np.atleast_1d(np.asarray(jd, float))
    t = table["jd_utc"].to_numpy(float)
    if len(t) < 2 or jd.min() < t[0] - 1e-6 or jd.max() > t[-1] + 1e-6:
        raise ValueError(
            f"the ephemeris covers JD {t[0]:.4f}-{t[-1]:.4f}, not the frames' "
            f"{jd.min():.4f}-{jd.max():.4f}"
        )
    ra = np.degrees(np.unwrap(np.radians(table["ra"].to_numpy(float))))
    kind = CubicSpline if len(t) >= 4 else None
    out = {"jd_utc": jd}
    for col, values in (("ra", ra), ("dec", table["dec"].to_numpy(float))):
        out[col] = kind(t, values)(jd) if kind else np.interp(jd, t, values)
    out["ra"] = out["ra"] % 360.0
    for col in COLUMNS[3:]:
        out[col] = np.interp(jd, t, table[col].to_numpy(float))
    return pd.DataFrame(out)


def horizons(designation: str, location, jd_start: float, jd_stop: float, cache_dir, server=""):
    """The Horizons ephemeris of ``designation`` seen from ``location`` (an MPC observatory
    code, or ``{"lon", "lat", "elevation"}`` in deg, deg, km) over ``jd_start``-``jd_stop``
    (UTC), every :data:`QUERY_STEP_MIN` minutes: asked once and kept in ``cache_dir``
    (a later call for the same span reads the cache; concurrent frames wait for one
    query). ``server``: the Horizons API URL (default astroquery's)."""
    key = json.dumps([designation, location, round(jd_start, 5), round(jd_stop, 5)])
    path = Path(cache_dir) / "horizons" / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            text = _query_horizons(designation, location, jd_start, jd_stop, server)
            with io.atomic_path(path) as tmp:
                Path(tmp).write_text(f"# {key}\n{text}")
    return parse(path.read_text())


def _query_horizons(designation, location, jd_start, jd_stop, server) -> str:
    """Horizons' text reply: astroquery writes the query, sent to ``server``."""
    import requests
    from astroquery.jplhorizons import Horizons, conf

    epochs = {
        "start": f"JD{jd_start:.5f}",
        "stop": f"JD{jd_stop:.5f}",
        "step": f"{QUERY_STEP_MIN}m",
    }
    payload = Horizons(id=designation, location=location, epochs=epochs).ephemerides_async(
        quantities="1,9,19,20,24,43", get_query_payload=True
    )
    url = server or conf.horizons_server
    try:
        reply = requests.get(url, params=payload, timeout=conf.timeout)
        reply.raise_for_status()
    except requests.RequestException as exc:
        raise FrameError(
            f"JPL Horizons ({url}) did not answer for {designation!r}: {type(exc).__name__}; "
            "give the target an ephemeris file (targets[].ephemeris) to run offline"
        ) from None
    text = reply.text
    if "$$SOE" not in text:
        first = next((s for s in text.splitlines() if s.strip()), "")
        raise FrameError(f"JPL Horizons has no ephemeris for {designation!r}: {first[:120]}")
    return text


def is_moving(target: dict) -> bool:
    """True for a target with motion (an ephemeris file, rates or a Horizons designation)."""
    return any(k in target for k in ("ephemeris", "horizons", "rate_ra", "rate_dec"))


def at(target: dict, jd, cache_dir="resources/catalogs", site=None, server="") -> pd.DataFrame:
    """Where moving ``target`` (a config ``targets`` entry) is at times ``jd`` (UTC):
    :data:`COLUMNS`. A ``horizons`` designation is asked once per night (local noon to
    noon at the site's longitude; cached) from ``target["location"]``, else the ``site``
    (``lat``, ``lon`` deg, ``elev`` m), else the geocentre."""
    jd = np.atleast_1d(np.asarray(jd, float))
    if "ephemeris" in target:
        path = Path(target["ephemeris"])
        version = path.stat().st_mtime_ns if path.is_file() else -1  # -1: read() says why
        return interpolate(_read_once(str(path), version), jd)
    if "horizons" in target:
        location = target.get("location") or (
            {"lon": site["lon"], "lat": site["lat"], "elevation": (site.get("elev") or 0) / 1e3}
            if site and None not in (site.get("lat"), site.get("lon"))
            else "500@399"
        )
        # One query per night: from local noon to local noon (the site's longitude).
        lon = (site or {}).get("lon") or 0.0
        night = np.floor(jd + lon / 360.0)
        out = pd.DataFrame(index=range(len(jd)), columns=list(COLUMNS), dtype=float)
        for n in np.unique(night):
            noon = n - lon / 360.0
            table = horizons(str(target["horizons"]), location, noon, noon + 1.0, cache_dir, server)
            out.loc[night == n] = interpolate(table, jd[night == n]).to_numpy()
        return out
    return linear(
        target["ra"],
        target["dec"],
        target["epoch_jd"],
        target.get("rate_ra", 0.0),
        target.get("rate_dec", 0.0),
        jd,
    )
