"""Times of observation: mid-exposure UTC, BJD_TDB, airmass and the night label.

All functions are vectorized over frames and work offline: astropy's bundled IERS
tables are used and never refreshed from the network.

Examples
--------
>>> mjd = mid_exposure_mjd(["2024-03-15T03:00:00"], [60.0])
>>> round(float(mjd[0]), 6)
60384.125347
>>> night_label(mjd, [-111.6])[0]
'20240314'
"""

import numpy as np
from astropy import units as u
from astropy.coordinates import AltAz, EarthLocation, SkyCoord
from astropy.time import Time
from astropy.utils import iers

iers.conf.auto_download = False
iers.conf.iers_degraded_accuracy = "warn"


def mid_exposure_mjd(date_obs, exptime, convention: str = "start") -> np.ndarray:
    """MJD (UTC) of mid-exposure from ISO times and exposure times in seconds.

    ``convention`` says whether ``date_obs`` marks the ``start`` or the ``mid`` of
    the exposure.
    """
    t = Time(list(date_obs), format="isot", scale="utc").mjd
    if convention == "mid":
        return np.asarray(t, dtype=float)
    return np.asarray(t, dtype=float) + np.asarray(exptime, dtype=float) / 2.0 / 86400.0


def night_label(mjd_utc, longitude_deg) -> list[str]:
    """``YYYYMMDD`` of the local evening on which each observation's night began.

    Local solar time is UTC plus longitude/15 hours; a night runs noon to noon.
    Unknown longitudes (NaN/None) fall back to UTC.
    """
    lon = np.array([np.nan if v is None else v for v in np.atleast_1d(longitude_deg)], float)
    lon = np.broadcast_to(np.where(np.isfinite(lon), lon, 0.0), np.shape(mjd_utc))
    local = np.asarray(mjd_utc, float) + lon / 360.0 - 0.5
    return [d.replace("-", "") for d in Time(np.floor(local), format="mjd").to_value("iso", "date")]


def _location(lat, lon, elev):
    return EarthLocation.from_geodetic(
        lon=np.asarray(lon, float) * u.deg,
        lat=np.asarray(lat, float) * u.deg,
        height=np.nan_to_num(np.asarray(elev, float)) * u.m,
    )


def bjd_tdb(mjd_utc, ra, dec, lat, lon, elev) -> np.ndarray:
    """Barycentric Julian Date (TDB) of each observation of a target at (ra, dec).

    Uses astropy's built-in solar-system ephemeris. Where the observatory location
    is unknown, the geocentre is used (error below 0.03 s).

    Examples
    --------
    >>> b = bjd_tdb([60384.125], [150.0], [20.0], [31.96], [-111.6], [2100.0])
    >>> bool(2460384.62 < b[0] < 2460384.64)
    True
    """
    mjd = np.atleast_1d(np.asarray(mjd_utc, float))
    lat, lon, elev = (np.broadcast_to(np.asarray(v, float), mjd.shape) for v in (lat, lon, elev))
    known = np.isfinite(lat) & np.isfinite(lon)
    loc = _location(np.where(known, lat, 0.0), np.where(known, lon, 0.0), np.where(known, elev, 0))
    t = Time(mjd, format="mjd", scale="utc", location=loc)
    target = SkyCoord(np.asarray(ra, float) * u.deg, np.asarray(dec, float) * u.deg)
    ltt = t.light_travel_time(target, kind="barycentric")
    out = (t.tdb + ltt).jd
    if not known.all():  # the geocentre's BJD: within 21 ms of any site's
        ra_, dec_ = (np.broadcast_to(np.asarray(v, float), mjd.shape)[~known] for v in (ra, dec))
        out[~known] = np.diagonal(bjd_tdb_of_stars(mjd[~known], ra_, dec_))
    return np.asarray(out, float)


def airmass(mjd_utc, ra, dec, lat, lon, elev) -> np.ndarray:
    """Airmass (sec z, plane-parallel) of (ra, dec) at each time; NaN where unknown or set.

    Examples
    --------
    >>> x = airmass([60384.2], [150.0], [20.0], [31.96], [-111.6], [2100.0])
    >>> bool(1.0 <= x[0] < 1.5)
    True
    """
    mjd = np.atleast_1d(np.asarray(mjd_utc, float))
    lat, lon, elev, ra, dec = (
        np.broadcast_to(np.asarray(v, float), mjd.shape) for v in (lat, lon, elev, ra, dec)
    )
    ok = np.isfinite(lat) & np.isfinite(lon) & np.isfinite(ra) & np.isfinite(dec)
    out = np.full(mjd.shape, np.nan)
    if ok.any():
        loc = _location(lat[ok], lon[ok], elev[ok])
        t = Time(mjd[ok], format="mjd", scale="utc")
        altaz = SkyCoord(ra[ok] * u.deg, dec[ok] * u.deg).transform_to(
            AltAz(obstime=t, location=loc)
        )
        alt = altaz.alt.deg
        out[ok] = np.where(alt > 0, 1.0 / np.sin(np.radians(np.maximum(alt, 1e-3))), np.nan)
    return out


def longitude_sign(mjd_mid, exptime, ra, dec, lat, lon, elev, airmass_hdr, lst_hdr_deg):
    """+1 when a header longitude is east-positive, -1 when the headers' own local
    sidereal time (or, without one, airmass) agree only with it read west-positive.

    Returns the sign and a sentence with the evidence ("" for +1 by default).

    Examples
    --------
    >>> import numpy as np
    >>> mjd = np.array([58404.086])   # MIT Wallace Observatory, 71.48 W
    >>> lst = 15 * (22 + 43 / 60 + 34.7 / 3600)
    >>> longitude_sign(mjd, [180.0], [np.nan], [np.nan], 42.61, 71.485, [np.nan], [np.nan],
    ...                [lst])[0]
    -1
    """
    mjd = np.asarray(mjd_mid, float)
    start = Time(mjd - np.asarray(exptime, float) / 2 / 86400, format="mjd", scale="utc")
    lst_hdr = np.asarray(lst_hdr_deg, float)
    has_lst = np.isfinite(lst_hdr)
    if has_lst.any():
        gmst = start[has_lst].sidereal_time("mean", "greenwich").deg
        err = {
            s: np.median(np.abs((lst_hdr[has_lst] - gmst - s * lon + 180) % 360 - 180))
            for s in (1, -1)
        }
        if err[1] > 5.0 and err[-1] < 3.0:
            return -1, (
                f"the headers' LST is {err[-1] * 4:.1f} min from the sidereal time there, "
                f"{err[1] * 4:.0f} min from it east"
            )
        return 1, ""
    x_hdr = np.asarray(airmass_hdr, float)
    use = np.isfinite(x_hdr) & np.isfinite(np.asarray(ra, float))
    if not use.any():
        return 1, ""
    t = Time(start.mjd[use], format="mjd")
    args = [np.asarray(v, float)[use] for v in (ra, dec)]
    rel = {}
    for s in (1, -1):
        x = airmass(t.mjd, *args, lat, s * lon, np.asarray(elev, float)[use])
        rel[s] = np.nanmedian(np.abs(x / x_hdr[use] - 1)) if np.isfinite(x).any() else np.inf
    if rel[1] > 0.1 and rel[-1] < 0.05:
        return -1, (
            f"the headers' AIRMASS agrees within {100 * rel[-1]:.1f} % there, "
            f"{100 * rel[1]:.0f} % off east"
        )
    return 1, ""


def barycentric_delay_days(mjd_utc, ra, dec) -> np.ndarray:
    """Light-travel time (days) from the geocentre to the solar-system barycentre toward
    each star (rows: ``ra``, ``dec`` in degrees) at each time (columns): the Roemer delay
    that turns a geocentric TDB into BJD_TDB for that star (the observatory's own offset
    from the geocentre adds at most 21 ms and is left out here).

    Examples
    --------
    >>> d = barycentric_delay_days([60384.125], [150.0, 151.0], [20.0, 20.0])
    >>> bool(abs(d[0, 0]) * 86400 < 500), round(float((d[1, 0] - d[0, 0]) * 86400), 1)
    (True, 3.4)
    """
    from astropy.coordinates import get_body_barycentric

    t = Time(np.atleast_1d(np.asarray(mjd_utc, float)), format="mjd", scale="utc").tdb
    r = get_body_barycentric("earth", t).xyz.to(u.lightsecond).value / 86400.0  # (3, n)
    ra, dec = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    n = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=1)
    return n @ r


def bjd_tdb_of_stars(mjd_utc, ra, dec) -> np.ndarray:
    """BJD_TDB (stars x times) of mid-exposure times for each star's own position.

    >>> b = bjd_tdb_of_stars([60384.125], [150.0], [20.0])
    >>> bool(abs(b[0, 0] - bjd_tdb([60384.125], [150.0], [20.0], [np.nan], [np.nan], [0])[0])
    ...      * 86400 < 0.001)
    True
    """
    return tdb_jd(mjd_utc)[None, :] + barycentric_delay_days(mjd_utc, ra, dec)


def tdb_jd(mjd_utc) -> np.ndarray:
    """Julian dates (TDB) of UTC MJDs, at the geocentre."""
    return Time(np.atleast_1d(np.asarray(mjd_utc, float)), format="mjd", scale="utc").tdb.jd
