"""Reference catalogs from VizieR (through astroquery), cached per field.

Each query (catalog, centre, radius, magnitude limit) is written under the cache folder
with a record of what was asked and when, and is read from there on every later run, so
only the first run of a field needs the network. A query is retried with exponential
backoff when the service times out, refuses the connection or answers 5xx; then a cached
query of the same catalog that covers the field is used, then the next catalog. "The
service is unreachable" and "the catalog has no stars here" are different outcomes, and
the final error names what happened to every catalog.

Examples
--------
>>> [s.name for s in covering([*SPECS], dec=-60.0)]
['atlas-refcat2', 'gaia-dr3', 'apass-dr9', 'skymapper-dr4']
"""

import hashlib
import io as _bytes
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from . import bands, refcat
from . import io as fio

log = logging.getLogger("fieldphot")


class CatalogUnavailable(RuntimeError):
    """The service could not be reached or failed (timeouts, connection errors, 5xx)."""


class CatalogError(RuntimeError):
    """No catalog gave stars for the field; the message says what each one did."""


@dataclass(frozen=True)
class Spec:
    """A VizieR catalog: its table, columns, epoch, bands and sky coverage."""

    name: str
    vizier: str
    release: str
    ra: str
    dec: str
    bands: dict  #: band -> (magnitude column, error column)
    id: str = ""
    pm: tuple = ()  #: (pmRA * cos dec, pmDE) columns, mas/yr
    epoch: float | None = None  #: Julian year of the positions
    dec_range: tuple = (-90.0, 90.0)
    limit_band: str = ""  #: band of the magnitude limit (a column filter)
    extra: list = field(default_factory=list)


#: The catalogs known by name. VizieR identifiers and column names as VizieR serves them.
SPECS = {
    s.name: s
    for s in (
        Spec("atlas-refcat2", "J/ApJ/867/105/refcat2", "ATLAS-RefCat2 (Tonry et al. 2018)",
             "RA_ICRS", "DE_ICRS",
             {b: (f"{b}mag", f"e_{b}mag") for b in "grizJ"} | {"G": ("Gmag", ""),
              "BP": ("BPmag", ""), "RP": ("RPmag", "")},
             pm=("pmRA", "pmDE"), epoch=2015.5, limit_band="r"),
        Spec("gaia-dr3", "I/355/gaiadr3", "Gaia DR3 (Gaia Collaboration 2023)",
             "RA_ICRS", "DE_ICRS",
             {"G": ("Gmag", "e_Gmag"), "BP": ("BPmag", "e_BPmag"), "RP": ("RPmag", "e_RPmag")},
             id="Source", pm=("pmRA", "pmDE"), epoch=2016.0, limit_band="G"),
        Spec("apass-dr9", "II/336/apass9", "APASS DR9 (Henden et al. 2016)",
             "RAJ2000", "DEJ2000",
             {"B": ("Bmag", "e_Bmag"), "V": ("Vmag", "e_Vmag"), "g": ("g'mag", "e_g'mag"),
              "r": ("r'mag", "e_r'mag"), "i": ("i'mag", "e_i'mag")},
             id="recno", limit_band="V"),
        Spec("ps1-dr1", "II/349/ps1", "Pan-STARRS1 DR1 (Chambers et al. 2016)",
             "RAJ2000", "DEJ2000", {b: (f"{b}mag", f"e_{b}mag") for b in "grizy"},
             id="objID", dec_range=(-30.0, 90.0), limit_band="r"),
        Spec("skymapper-dr4", "II/379/smssdr4", "SkyMapper DR4 (Onken et al. 2024)",
             "RAICRS", "DEICRS", {b: (f"{b}PSF", f"e_{b}PSF") for b in "uvgriz"},
             id="ObjectId", dec_range=(-90.0, 2.0), limit_band="r"),
    )
}  # fmt: skip


def covering(specs, dec: float, dec_max: float | None = None) -> list[Spec]:
    """The catalogs (names or specs) whose sky coverage includes declination ``dec`` (up
    to ``dec_max`` when given), in the order given."""
    specs = [SPECS[s] if isinstance(s, str) else s for s in specs]
    top = dec if dec_max is None else dec_max
    return [s for s in specs if s.dec_range[0] <= dec and top <= s.dec_range[1]]


def _column(table, name: str) -> str | None:
    """The table's column for a VizieR name (parsers turn ``g'mag`` into ``g_mag``)."""
    norm = name.replace("'", "_")
    for c in table.colnames:
        if c == name or c.replace("'", "_") == norm:
            return c
    return None


def request(spec: Spec, ra: float, dec: float, radius_deg: float, mag_limit) -> dict:
    """What is asked of VizieR, as recorded in the cache."""
    return {
        "catalog": spec.name,
        "vizier": spec.vizier,
        "release": spec.release,
        "ra": round(float(ra), 5),
        "dec": round(float(dec), 5),
        "radius_deg": round(float(radius_deg), 5),
        "mag_limit": None if mag_limit is None else float(mag_limit),
        "limit_band": spec.limit_band if mag_limit is not None else "",
    }


def cache_path(cache_dir, req: dict) -> Path:
    """The cache file of one request: catalog, field and a hash of the whole request."""
    digest = hashlib.sha1(json.dumps(req, sort_keys=True).encode()).hexdigest()[:10]
    return Path(cache_dir) / (
        f"{req['catalog']}_{req['ra']:09.5f}{req['dec']:+09.5f}_"
        f"{req['radius_deg'] * 60:.1f}arcmin_{digest}.parquet"
    )


class CatalogOffline(CatalogUnavailable):
    """The catalog server's name does not resolve or nothing routes to it: offline."""


def _offline(exc: Exception) -> bool:
    """Whether a connection error means no network (DNS or routing), not a busy server."""
    text = repr(exc)
    return any(
        s in text
        for s in (
            "NameResolutionError",
            "Name or service not known",
            "Temporary failure in name resolution",
            "nodename nor servname",
            "Network is unreachable",
            "No route to host",
        )
    )


def _cause(exc: Exception) -> str:
    """The innermost reason of a requests error, one line."""
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"


def query_vizier(
    spec: Spec,
    req: dict,
    server: str,
    timeout: float,
    retries: int,
    backoff: float,
    sleep=time.sleep,
) -> pd.DataFrame:
    """Ask VizieR for one field of one catalog; raw columns named as VizieR names them.

    Raises
    ------
    CatalogUnavailable
        After ``retries`` retries of timeouts, connection errors and 5xx answers, or at
        once on another HTTP error.
    """
    import astropy.units as u
    import requests
    from astropy.coordinates import SkyCoord
    from astropy.io.votable import parse
    from astroquery.vizier import Vizier

    cols = [
        spec.ra,
        spec.dec,
        *([spec.id] if spec.id else []),
        *spec.pm,
        *(c for pair in spec.bands.values() for c in pair if c),
    ]
    filters = {}
    if req["mag_limit"] is not None:
        filters[spec.bands[spec.limit_band][0]] = f"<{req['mag_limit']}"
    viz = Vizier(
        columns=cols, column_filters=filters, row_limit=-1, vizier_server=server, timeout=timeout
    )
    centre = SkyCoord(req["ra"], req["dec"], unit="deg")
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff * 2 ** (attempt - 1))
        try:
            resp = viz.query_region_async(
                centre, radius=req["radius_deg"] * u.deg, catalog=spec.vizier, cache=False
            )
        except (requests.Timeout, requests.ConnectionError) as exc:
            last = f"{type(exc).__name__}: {exc}"
            if _offline(exc):  # no name resolution, no route: retrying cannot help
                raise CatalogOffline(
                    f"{spec.name}: {server} cannot be reached ({_cause(exc)})"
                ) from exc
            continue
        if resp.status_code >= 500:
            last = f"HTTP {resp.status_code}"
            continue
        if resp.status_code >= 400:
            raise CatalogUnavailable(
                f"{spec.name}: VizieR at {server} answered HTTP {resp.status_code}"
            )
        tables = list(parse(_bytes.BytesIO(resp.content)).iter_tables())
        if not tables:
            return pd.DataFrame()
        t = tables[0].to_table(use_names_over_ids=True)
        wanted = {c: _column(t, c) for c in cols}
        return pd.DataFrame(
            {
                c: np.ma.filled(np.ma.asarray(t[have], float), np.nan)
                if c != spec.id
                else np.asarray(t[have])
                for c, have in wanted.items()
                if have
            }
        )
    raise CatalogUnavailable(
        f"{spec.name}: VizieR at {server} unreachable after {retries + 1} attempts ({last})"
    )


def _cached_cover(cache_dir, req: dict) -> Path | None:
    """A cached query of the same catalog whose circle holds this one's and that goes at
    least as deep."""
    best = None
    for path in sorted(Path(cache_dir).glob(f"{req['catalog']}_*.parquet")):
        _, meta = fio.read_table(path, columns=[])
        old = meta.get("request", {})
        if old.get("vizier") != req["vizier"]:
            continue
        d = float(refcat.separation_deg(old["ra"], old["dec"], req["ra"], req["dec"]))
        deep = old.get("mag_limit") is None or (
            req["mag_limit"] is not None and old["mag_limit"] >= req["mag_limit"]
        )
        if d + req["radius_deg"] <= old["radius_deg"] + 1e-9 and deep:
            best = path
    return best


def fetch(
    spec: Spec,
    ra,
    dec,
    radius_deg,
    mag_limit,
    cache_dir,
    server="vizier.cds.unistra.fr",
    timeout=30.0,
    retries=3,
    backoff=2.0,
    sleep=time.sleep,
) -> tuple[pd.DataFrame, dict]:
    """One catalog's stars in one field: from the cache, else from VizieR (and cached).

    Returns the raw table and its record (``request``, ``date``, ``source``: ``cache``,
    ``vizier`` or ``cache-cover``). Raises :class:`CatalogUnavailable` when the service
    fails and no cached query covers the field.
    """
    req = request(spec, ra, dec, radius_deg, mag_limit)
    path = cache_path(cache_dir, req)
    if path.exists():
        table, meta = fio.read_table(path)
        return table, {**meta, "source": "cache"}
    try:
        table = query_vizier(spec, req, server, timeout, retries, backoff, sleep)
    except CatalogUnavailable as exc:
        cover = _cached_cover(cache_dir, req)
        if cover is None:
            raise
        log.warning("%s; using the cached %s", exc, cover.name)
        table, meta = fio.read_table(cover)
        sel = refcat.separation_deg(table[spec.ra], table[spec.dec], req["ra"], req["dec"])
        inside = table[sel <= req["radius_deg"]].reset_index(drop=True)
        return inside, {**meta, "source": "cache-cover"}
    meta = {
        "request": req,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "server": server,
        "n_rows": len(table),
    }
    fio.write_table(path, table, meta)
    return table, {**meta, "source": "vizier"}


def standardize(
    spec: Spec, raw: pd.DataFrame, band, color_index: str | None, system: str | None
) -> tuple[pd.DataFrame, dict]:
    """The reference-catalog columns (``id, ra, dec, mag, mag_err, color, pmra, pmdec,
    epoch``) in ``band`` on ``system`` (AB or Vega; None: the band's usual one), from one
    catalog's raw table.

    ``band`` may be a list: ``mag``/``mag_err``/``color`` are then the first band's, and
    every band ``b`` also gets ``mag_b``, ``mag_err_b``, ``color_b`` (for a night observed
    in several filters; :func:`fieldphot.refcat.in_band` picks a frame's).

    Raises
    ------
    ValueError
        When the catalog's bands cannot give a requested band.
    """
    wanted = [band] if isinstance(band, str) else list(band)
    have = {
        b: (
            raw[m].to_numpy(float),
            raw[e].to_numpy(float) if e and e in raw else np.full(len(raw), 0.02),
        )
        for b, (m, e) in spec.bands.items()
        if m in raw
    }
    n = len(raw)
    out = pd.DataFrame(
        {
            "id": raw[spec.id].to_numpy() if spec.id in raw else np.arange(1, n + 1),
            "ra": raw[spec.ra].to_numpy(float),
            "dec": raw[spec.dec].to_numpy(float),
        }
    )
    indices, systems = {}, {}
    for b in wanted:
        systems[b] = system or bands.SYSTEM.get(b, "Vega")
        made = bands.derive(b, have)
        if made is None:
            raise ValueError(f"{spec.name} has bands {sorted(have)}; no relation gives {b}")
        # The catalog's own bands first, transformed ones after.
        cands = [color_index] if color_index else bands.COLORS.get(b, [])
        cands = sorted(cands, key=lambda i: not set(i.split("-")) <= set(have))
        indices[b] = next((i for i in cands if bands.color(i, have) is not None), "")
        col = bands.color(indices[b], have) if indices[b] else np.full(n, np.nan)
        out[f"mag_{b}"] = bands.to_system(made[0], b, systems[b])
        out[f"mag_err_{b}"] = made[1]
        out[f"color_{b}"] = col
    first = wanted[0]
    out["mag"], out["mag_err"], out["color"] = (out[f"{c}_{first}"] for c in MAG_COLUMNS)
    if len(wanted) == 1:
        out = out.drop(columns=[f"{c}_{first}" for c in MAG_COLUMNS])
    out["pmra"] = raw[spec.pm[0]].to_numpy(float) if spec.pm else np.nan
    out["pmdec"] = raw[spec.pm[1]].to_numpy(float) if spec.pm else np.nan
    out["epoch"] = spec.epoch if spec.epoch else np.nan
    mags = out[[f"mag_{b}" for b in wanted]] if len(wanted) > 1 else out[["mag"]]
    out = out[np.isfinite(mags).any(axis=1) & np.isfinite(out["ra"])].reset_index(drop=True)
    meta = {
        "catalog": spec.name,
        "release": spec.release,
        "band": first,
        "color_index": indices[first],
        "magnitude_system": systems[first],
    }
    if len(wanted) > 1:
        meta["bands"] = {
            b: {"color_index": indices[b], "magnitude_system": systems[b]} for b in wanted
        }
    return out, meta


#: Per-band columns of a multi-band reference catalog (``mag_V``, ``mag_err_V``, ...).
MAG_COLUMNS = ("mag", "mag_err", "color")


def field_reference(fields, cfg: dict, band, cache_dir, sleep=time.sleep):
    """The reference catalog for every field (centre and radius) of a run.

    Tries the configured catalogs that cover the fields' declinations, in order; the
    first that gives stars in ``band`` (one, or a list: see :func:`standardize`) for
    every field wins.

    Returns
    -------
    table : DataFrame
        Standardized stars of all fields (duplicates across overlapping fields removed).
    meta : dict
        Catalog, band, colour index, system, and each field's cache record.

    Raises
    ------
    CatalogError
        Naming each catalog and why it gave nothing (unreachable, no stars, no band).
    """
    why = []
    decs = [f[1] for f in fields]
    names = cfg["catalogs"] or list(SPECS)
    for spec in covering(names, min(decs), max(decs)):
        try:
            parts, records = [], []
            for ra, dec, radius in fields:
                raw, rec = fetch(
                    spec,
                    ra,
                    dec,
                    radius,
                    cfg["mag_limit"],
                    cache_dir,
                    cfg["vizier_server"],
                    cfg["timeout_s"],
                    cfg["retries"],
                    cfg["backoff_s"],
                    sleep,
                )
                records.append({k: rec[k] for k in ("request", "date", "source") if k in rec})
                if len(raw) == 0:
                    raise LookupError(f"no stars within {radius:.3f} deg of {ra:.5f} {dec:+.5f}")
                parts.append(raw)
            raw = pd.concat(parts, ignore_index=True)
            table, meta = standardize(
                spec,
                raw,
                band,
                cfg["color"],
                cfg["magnitude_system"],
            )
        except CatalogOffline as exc:  # every catalog is on the same server: stop here
            why.append(str(exc))
            break
        except CatalogUnavailable as exc:
            why.append(f"{spec.name}: service unreachable ({exc})")
            continue
        except (LookupError, ValueError) as exc:
            why.append(f"{spec.name}: {exc}")
            continue
        if len(table) == 0:
            why.append(f"{spec.name}: no stars with {band} magnitudes")
            continue
        table = table.drop_duplicates(subset=["ra", "dec"]).reset_index(drop=True)
        log.info(
            "reference catalog %s: %d stars in %s (%s)",
            spec.name,
            len(table),
            band,
            ", ".join(r["source"] for r in records),
        )
        return table, {**meta, "fields": records, "skipped": why}
    raise CatalogError(
        "no reference catalog for the field: "
        + ("; ".join(why) or f"none of {names} covers declination {min(decs):.2f}..{max(decs):.2f}")
    )
