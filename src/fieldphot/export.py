"""Exports of the calibrated catalogs for other tools: an astropy table with units and
metadata (written as CSV, ECSV, Parquet or FITS), a JSON document, and a GCN-circular
table of the forced targets.

Examples
--------
>>> import pandas as pd
>>> rows = pd.DataFrame({"target": ["AT1", "AT1", "AT1"], "frame": ["a", "b", "c"],
...     "mjd_utc_mid": [60384.1, 60384.2, 60384.3], "filter": "r", "exptime": 60.0,
...     "mag": [18.523, 21.9, 14.2051], "mag_err": [0.031, 0.6, 0.0021],
...     "mag_lim": [20.81, 20.75, 20.8], "detected": [True, False, True]})
>>> text = gcn_table(rows, {"band": "rmag", "magnitude_system": "AB"})
>>> print(text)  # doctest: +NORMALIZE_WHITESPACE
Target  Date-obs mid (UTC)      MJD mid      Filter  Exp (s)  Mag
AT1     2024-03-15 02:24:00.0   60384.10000  r            60  18.52 +/- 0.03
AT1     2024-03-15 04:48:00.0   60384.20000  r            60  > 20.75
AT1     2024-03-15 07:12:00.0   60384.30000  r            60  14.205 +/- 0.002
<BLANKLINE>
Magnitudes: AB system (reference catalog rmag), not corrected for Galactic extinction.
Upper limits: 5-sigma.
"""

import logging

import numpy as np
import pandas as pd
from astropy.table import Column, Table
from astropy.time import Time

from . import asteroid, ephemeris, io, layout, lightcurves, report
from .flags import Flag

log = logging.getLogger("fieldphot")

#: Units of the catalog columns (everything else is dimensionless or text).
UNITS = {
    **dict.fromkeys(["ra", "dec"], "deg"),
    **dict.fromkeys(["x", "y", "r_ap", "fwhm"], "pix"),
    **dict.fromkeys(["flux", "flux_err", "flux_ap", "sky", "sky_err", "flux_lim"], "electron"),
    **dict.fromkeys(
        ["mag", "mag_err", "mag_inst", "mag_inst_err", "mag_cat", "mag_cat_err", "mag_lim"],
        "mag",
    ),
    **dict.fromkeys(["mag_ens", "mag_ens_err", "mag_detrended"], "mag"),
    **dict.fromkeys(["zp", "zp_err", "color"], "mag"),
    **dict.fromkeys(["ra_eph", "dec_eph", "phase_deg"], "deg"),
    **dict.fromkeys(["jd_utc", "jd_ltc"], "d"),
    **dict.fromkeys(["r_au", "delta_au"], "AU"),
    "mag_reduced": "mag",
    "exptime": "s",
    **dict.fromkeys(["mjd_utc_mid", "bjd_tdb"], "d"),
}

#: Frame metadata copied into an export's header.
HEADER_KEYS = ("band", "magnitude_system", "fieldphot_version", "target", "rotation")


def catalog_table(df: pd.DataFrame, meta: dict) -> Table:
    """An astropy table of catalog rows with units (``flux_r{j}`` too) and ``meta``'s
    band, magnitude system and version in its metadata.

    Examples
    --------
    >>> t = catalog_table(pd.DataFrame({"mag": [12.0], "ra": [10.0]}), {"band": "V"})
    >>> str(t["mag"].unit), str(t["ra"].unit), t.meta["band"]
    ('mag', 'deg', 'V')
    """
    t = Table.from_pandas(df.reset_index(drop=True))
    for name in t.colnames:
        if t[name].dtype.kind == "f" and hasattr(t[name], "filled"):
            # NaN, not a mask, for a missing float (as parquet and FITS keep it): astropy
            # writes masked columns one element at a time, 20 x slower.
            t[name] = Column(t[name].filled(np.nan))
        unit = UNITS.get(name) or ("electron" if name.startswith("flux_") else None)
        if unit:
            t[name].unit = unit
    t.meta.update({k: meta[k] for k in HEADER_KEYS if meta.get(k) is not None})
    return t


def json_document(df: pd.DataFrame, meta: dict) -> dict:
    """A JSON-ready document: ``meta``, ``units`` per column and ``rows`` as records
    (NaN as null).

    Examples
    --------
    >>> doc = json_document(pd.DataFrame({"mag": [12.0, np.nan]}), {"band": "V"})
    >>> doc["rows"], doc["units"]
    ([{'mag': 12.0}, {'mag': None}], {'mag': 'mag'})
    """
    t = catalog_table(df, meta)
    clean = df.reset_index(drop=True).astype(object).where(df.notna().to_numpy(), None)
    return {
        "meta": dict(t.meta),
        "units": {c: str(t[c].unit) for c in t.colnames if t[c].unit is not None},
        "rows": [
            {k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
            for r in clean.to_dict("records")
        ],
    }


def gcn_table(rows: pd.DataFrame, meta: dict, t0_mjd: float | None = None, nsigma=5.0) -> str:
    """Forced-target photometry as a plain-text table for a GCN circular: one line per
    target and frame, in time order; a detection as ``mag +/- err``, a non-detection as
    ``> limit``. ``t0_mjd`` (a trigger time) adds a ``T-T0 (d)`` column.
    """
    t = rows.sort_values(["target", "mjd_utc_mid"])
    iso = Time(t["mjd_utc_mid"].to_numpy(float), format="mjd", scale="utc").iso
    lines = []
    for (_, r), when in zip(t.iterrows(), np.atleast_1d(iso), strict=True):
        if bool(r["detected"]) and np.isfinite(r["mag"]):
            d = 3 if r["mag_err"] < 0.01 else 2  # 0.002 mag is not "+/- 0.00"
            value = f"{r['mag']:.{d}f} +/- {r['mag_err']:.{d}f}"
        elif np.isfinite(r["mag_lim"]):
            value = f"> {r['mag_lim']:.2f}"
        else:
            continue
        cells = [str(r["target"]), when[:21], f"{r['mjd_utc_mid']:.5f}"]
        if t0_mjd is not None:
            cells.append(f"{r['mjd_utc_mid'] - t0_mjd:.4f}")
        cells += [str(r["filter"]), f"{r['exptime']:.0f}", value]
        lines.append(cells)
    head = ["Target", "Date-obs mid (UTC)", "MJD mid"]
    head += ["T-T0 (d)"] if t0_mjd is not None else []
    head += ["Filter", "Exp (s)", "Mag"]
    width = [max(len(c) for c in col) for col in zip(head, *lines, strict=True)]
    exp = head.index("Exp (s)")

    def fmt(cells):
        out = [
            c.rjust(w) if i == exp else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, width, strict=True))
        ]
        return "  ".join(out).rstrip()

    system = meta.get("magnitude_system") or "Vega"
    note = [
        f"Magnitudes: {system} system (reference catalog {meta.get('band', '?')}), "
        "not corrected for Galactic extinction.",
        f"Upper limits: {nsigma:g}-sigma.",
    ]
    return "\n".join([fmt(head), *map(fmt, lines), "", *note]) + "\n"


def time_series(rows: pd.DataFrame, meta: dict):
    """One star's light curve as an astropy ``TimeSeries``: ``time`` (BJD_TDB, mid-exposure)
    and every column of ``rows`` with units; readable back with
    ``TimeSeries.read(path, format="ascii.ecsv")``.

    Examples
    --------
    >>> ts = time_series(pd.DataFrame({"bjd_tdb": [2460384.6, 2460384.7], "mag_ens": [12.0, 12.1]}),
    ...                  {"band": "V"})
    >>> ts.time.scale, ts.time.format, str(ts["mag_ens"].unit)
    ('tdb', 'jd', 'mag')
    """
    from astropy.timeseries import TimeSeries

    t = catalog_table(rows.drop(columns=["bjd_tdb"]), meta)
    time = Time(rows["bjd_tdb"].to_numpy(float), format="jd", scale="tdb")
    return TimeSeries(data=t, time=time)


#: AAVSO filter codes of common filter names (others are written as they are).
AAVSO_FILTERS = {
    **{b: b for b in ("U", "B", "V", "R", "I", "J", "H", "K")},
    **{"Rc": "R", "Ic": "I", "g": "SG", "r": "SR", "i": "SI", "z": "SZ", "u": "SU"},
    **{"g'": "SG", "r'": "SR", "i'": "SI", "z'": "SZ", "sdss_g": "SG", "sdss_r": "SR"},
    "CV": "CV",
    "CR": "CR",
    **{g: "TG" for g in ("G1", "G2", "G")},  # a colour camera's greens: AAVSO's tricolour G
}
#: Names cameras give to no filter (any case): AAVSO's CV (clear, V zeropoint).
UNFILTERED = {"clear", "c", "open", "none", "l", "lum", "luminance", "unfiltered", "empty"}


def aavso_filter(name) -> str:
    """The AAVSO filter code of a FILTER value.

    >>> aavso_filter("Open"), aavso_filter("Rc"), aavso_filter("Halpha")
    ('CV', 'R', 'Halpha')
    """
    name = str(name).strip()
    return "CV" if name.lower() in UNFILTERED else AAVSO_FILTERS.get(name, name)


def aavso_extended(rows: pd.DataFrame, name: str, obscode: str, software: str, n_comp: int) -> str:
    """A target's points in the AAVSO Extended File Format (version 1.2): JD (UTC,
    mid-exposure; AAVSO takes no BJD), magnitude and error, filter, airmass; a
    non-detection as ``<limit``. The comparison is the ensemble (``CNAME=ENSEMBLE``).

    Examples
    --------
    >>> rows = pd.DataFrame({"mjd_utc_mid": [60384.1], "mag": [12.3456], "mag_err": [0.0123],
    ...     "filter": ["V"], "airmass": [1.234], "detected": [True], "mag_lim": [18.0]})
    >>> print(aavso_extended(rows, "V1234 Her", "XYZ", "fieldphot 0.1", 40), end="")
    #TYPE=EXTENDED
    #OBSCODE=XYZ
    #SOFTWARE=fieldphot 0.1
    #DELIM=,
    #DATE=JD
    #OBSTYPE=CCD
    #NAME,DATE,MAG,MERR,FILT,TRANS,MTYPE,CNAME,CMAG,KNAME,KMAG,AMASS,GROUP,CHART,NOTES
    V1234 Her,2460384.60000,12.346,0.012,V,NO,STD,ENSEMBLE,na,na,na,1.234,na,na,ensemble of 40 stars
    """
    head = [
        "#TYPE=EXTENDED",
        f"#OBSCODE={obscode or 'na'}",
        f"#SOFTWARE={software}",
        "#DELIM=,",
        "#DATE=JD",
        "#OBSTYPE=CCD",
        "#NAME,DATE,MAG,MERR,FILT,TRANS,MTYPE,CNAME,CMAG,KNAME,KMAG,AMASS,GROUP,CHART,NOTES",
    ]
    lines = []
    for r in rows.sort_values("mjd_utc_mid").itertuples():
        if bool(r.detected) and np.isfinite(r.mag):
            mag, err = f"{r.mag:.3f}", f"{r.mag_err:.3f}"
        elif np.isfinite(r.mag_lim):
            mag, err = f"<{r.mag_lim:.3f}", "na"
        else:
            continue
        airmass = f"{r.airmass:.3f}" if np.isfinite(r.airmass) else "na"
        cells = [name.replace(",", " ")[:30], f"{r.mjd_utc_mid + 2400000.5:.5f}", mag, err]
        cells += [aavso_filter(r.filter), "NO", "STD", "ENSEMBLE"]
        cells += ["na", "na", "na", airmass, "na", "na", f"ensemble of {n_comp} stars"]
        lines.append(",".join(cells))
    return "\n".join(head + lines) + "\n"


def target_products(nights, outdir, names, column, cfg, summary, moving=(), site=None) -> None:
    """Per forced target: ``targets/<name>.ecsv`` (TimeSeries), ``.png`` and ``_aavso.txt``;
    per moving target (``moving``: :func:`fieldphot.steps.moving_targets`) also its
    ephemeris columns in the ECSV, its rotation period, ``_phased.png`` and
    ``_alcdef.txt`` (:func:`moving_products`, seen from ``site``: ``lat``, ``lon``,
    ``elev``)."""
    from . import __version__

    if not names:
        return
    rows = io.read_tables(nights, filters=[("target", "in", list(names))])
    n_comp = int(summary["comparison"].sum()) if "comparison" in summary else 0
    movers = {m["name"]: m for m in moving}
    for name in names:
        t = rows[rows["target"].astype(str) == name].sort_values("bjd_tdb")
        t = t.drop(columns=["target", "comparison"]).reset_index(drop=True)
        t = t.assign(**{c: t[c].astype(str) for c in ("night", "frame", "filter")})
        suffixes = layout.TARGET_SUFFIXES + (layout.MOVING_SUFFIXES if name in movers else ())
        path = {
            s: outdir.parent / layout.path("target_curve", name=layout.safe_name(name), suffix=s)
            for s in suffixes
        }
        meta = {"target": name}
        if name in movers:
            t, fit = moving_products(t, movers[name], column, cfg, path, site or {})
            meta["rotation"] = {k: v for k, v in fit.items() if k not in ("phase", "model")}
        io.write_export(path[".ecsv"], time_series(t, meta), "ecsv")
        io.save_figure(report.target_figure(t.assign(target=name), column), path[".png"])
        aavso = t.assign(mag=t[column], mag_err=t["mag_ens_err"])
        software = f"fieldphot {__version__}"
        io.write_text(
            path["_aavso.txt"],
            aavso_extended(aavso, name, cfg["aavso_obscode"], software, n_comp),
        )


def moving_products(t: pd.DataFrame, target: dict, column: str, cfg: dict, path: dict, site: dict):
    """A moving target's light curve with its ephemeris at each frame (``jd_utc``,
    ``jd_ltc``: light-time corrected, ``ra_eph``, ``dec_eph``, ``r_au``, ``delta_au``,
    ``phase_deg``, ``mag_reduced``), its rotation period
    (:func:`fieldphot.asteroid.rotation_period` on the points with no bad or
    ``STAR_CROSSING`` flag), the folded curve (``path["_phased.png"]``) and the ALCDEF
    file (``path["_alcdef.txt"]``, one session per night). Returns the table and the fit."""
    jd = t["mjd_utc_mid"].to_numpy(float) + 2400000.5
    try:
        eph = ephemeris.at(target, jd, target.get("cache_dir"), site, target.get("server", ""))
    except (io.FrameError, ValueError) as exc:  # measured on no frame, or offline and uncached
        log.warning("%s: no ephemeris for its products: %s", target["name"], exc)
        eph = pd.DataFrame(np.nan, index=range(len(t)), columns=list(ephemeris.COLUMNS))
    ltc = asteroid.light_time(eph["delta"].to_numpy(float))
    t = t.assign(
        jd_utc=jd,
        jd_ltc=jd - ltc,
        ra_eph=eph["ra"].to_numpy(),
        dec_eph=eph["dec"].to_numpy(),
        r_au=eph["r"].to_numpy(),
        delta_au=eph["delta"].to_numpy(),
        phase_deg=eph["phase"].to_numpy(),
        mag_reduced=asteroid.reduced_mag(t[column], eph["r"], eph["delta"]),
    )
    err = t[f"{column}_err"] if f"{column}_err" in t else t["mag_ens_err"]
    flagged = (t["flags"].to_numpy() & int(Flag.STAR_CROSSING)) != 0
    good = ((t["flags"].to_numpy() & int(lightcurves.BAD_FOR_SUMMARY)) == 0) & ~flagged
    good &= np.isfinite(t[column].to_numpy(float))
    times = np.where(np.isfinite(t["jd_ltc"]), t["jd_ltc"], t["jd_utc"])
    fit = asteroid.rotation_period(
        times[good], t[column][good], err[good], cfg["rotation_period_h"], cfg["fourier_order"]
    )
    shown = good | (flagged & np.isfinite(t[column].to_numpy(float)))
    io.save_figure(
        asteroid.phased_figure(times[shown], t[column][shown], err[shown], flagged[shown], fit,
                               target["name"]),
        path["_phased.png"],
    )  # fmt: skip
    calibrated = bool(np.isfinite(t["mag"].to_numpy(float)).any()) if "mag" in t else False
    sessions = [
        pd.DataFrame(
            {
                "jd": times[sel],
                "mag": t[column][sel],
                "mag_err": err[sel],
                "airmass": t["airmass"][sel] if "airmass" in t else np.nan,
                "ra": t["ra_eph"][sel],
                "dec": t["dec_eph"][sel],
                "phase": t["phase_deg"][sel],
                "ltc": ltc[sel],
                "pab_lon": eph["pab_lon"][sel],
                "pab_lat": eph["pab_lat"][sel],
            }
        )  # fmt: skip
        for night in pd.unique(t["night"])
        if (sel := good & (t["night"] == night).to_numpy()).any()
    ]
    band = str(_first(t, "filter") or "C")
    io.write_text(
        path["_alcdef.txt"],
        asteroid.alcdef(
            sessions,
            {
                "name": target["name"],
                "number": target.get("number"),
                "observers": cfg["observer"],
                "lon": site.get("lon"),
                "lat": site.get("lat"),
                "filter": "C" if aavso_filter(band) == "CV" else band,
                "band": "V" if aavso_filter(band) == "CV" else band,
                "differential": not calibrated,
                "standard": "INTERNAL" if calibrated else "NONE",
            },
        ),
    )
    return t, fit


def _first(t: pd.DataFrame, column: str):
    """The first finite value of a column, or None."""
    if column not in t:
        return None
    v = t[column].dropna()
    return v.iloc[0] if len(v) else None
