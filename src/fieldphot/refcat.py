"""Reference catalogs: standardize a local catalog file's columns.

A reference catalog is any table with positions and magnitudes; the config names its
columns. :func:`standardize` returns the columns every stage uses:
``id, ra, dec, mag, mag_err, color``.

Examples
--------
>>> import pandas as pd
>>> raw = pd.DataFrame({"RAJ2000": [10.0], "DEJ2000": [20.0], "Vmag": [12.0], "Bmag": [12.6]})
>>> standardize(raw, {"ra": "RAJ2000", "dec": "DEJ2000", "mag": "Vmag", "color_mag": "Bmag"})
   id    ra   dec   mag  mag_err  color
0   1  10.0  20.0  12.0      NaN    0.6
"""

import numpy as np
import pandas as pd

REF_COLUMNS = ["id", "ra", "dec", "mag", "mag_err", "color"]


#: The columns of a standardized reference catalog.
COLUMNS = ("id", "ra", "dec", "mag", "mag_err", "color")


def empty() -> pd.DataFrame:
    """A standardized reference catalog without stars (a night run without a catalog)."""
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "id" else float) for c in COLUMNS})


def guess_columns(names, band: str) -> tuple[dict, list[str]]:
    """The ``reference_catalog.columns`` of a catalog file with columns ``names``, guessed
    for frames calibrated in ``band`` (V, R, g, ...), and what could not be found.

    Tries the names catalogs use: ``ra``/``RA``/``RAJ2000``/``RA_ICRS``, ``Vmag``/``V``/
    ``mag_V``/``mag`` for the magnitude, ``e_Vmag``/``Vmag_err``/``mag_err`` for its error.

    Examples
    --------
    >>> guess_columns(["ID", "RAJ2000", "DEJ2000", "Vmag", "e_Vmag", "Bmag"], "V")
    ({'id': 'ID', 'ra': 'RAJ2000', 'dec': 'DEJ2000', 'mag': 'Vmag', 'mag_err': 'e_Vmag'}, [])
    >>> guess_columns(["ra", "dec", "rmag"], "V")[1]
    ['mag (no V magnitude among: ra, dec, rmag)']
    """
    names = [str(n) for n in names]
    lower = {n.lower(): n for n in names}
    b = band.lower()
    candidates = {
        "id": ["id", "source_id", "name", "star", "recno"],
        "ra": ["ra", "raj2000", "ra_icrs", "ra_deg", "alpha_j2000"],
        "dec": ["dec", "dej2000", "de_icrs", "dec_deg", "delta_j2000"],
        "mag": [f"{b}mag", b, f"mag_{b}", f"{b}_mag", "mag"],
        "mag_err": [f"e_{b}mag", f"{b}magerr", f"{b}mag_err", f"e_{b}", f"mag_{b}_err", "mag_err"],
    }
    found, missing = {}, []
    for key, options in candidates.items():
        hit = next((lower[o] for o in options if o in lower), None)
        if hit is not None:
            found[key] = hit
        elif key in ("ra", "dec", "mag"):
            what = f"{band} magnitude" if key == "mag" else key.upper()
            missing.append(f"{key} (no {what} among: {', '.join(names)})")
    return found, missing


def standardize(table: pd.DataFrame, columns: dict) -> pd.DataFrame:
    """Map a catalog's own column names to fieldphot's.

    Parameters
    ----------
    table : DataFrame
        The catalog as read from disk.
    columns : dict
        ``ra``, ``dec``, ``mag`` (required); ``id``, ``mag_err``, ``color_mag`` (a second
        band; colour = ``color_mag - mag``) optional.

    Raises
    ------
    KeyError
        Naming the missing column and the columns the table has.
    """
    for key in ("ra", "dec", "mag"):
        if columns.get(key) not in table:
            raise KeyError(
                f"reference catalog has no column {columns.get(key)!r} for {key} "
                f"(it has: {', '.join(map(str, table.columns))})"
            )
    out = pd.DataFrame(
        {
            "id": table[columns["id"]].to_numpy()
            if columns.get("id") in table
            else np.arange(1, len(table) + 1),
            "ra": table[columns["ra"]].astype(float).to_numpy(),
            "dec": table[columns["dec"]].astype(float).to_numpy(),
            "mag": table[columns["mag"]].astype(float).to_numpy(),
        }
    )
    out["mag_err"] = (
        table[columns["mag_err"]].astype(float).to_numpy()
        if columns.get("mag_err") in table
        else np.nan
    )
    out["color"] = (
        table[columns["color_mag"]].astype(float).to_numpy() - out["mag"]
        if columns.get("color_mag") in table
        else np.nan
    )
    good = np.isfinite(out["ra"]) & np.isfinite(out["dec"])
    return _unique_ids(out[good].reset_index(drop=True), columns.get("id"))


def _unique_ids(ref: pd.DataFrame, column) -> pd.DataFrame:
    """``ref`` with each star once: a row repeating an id at the same place (within 1
    arcsec; a merged catalog) is dropped; an id given to stars at different places would
    merge two stars' light curves into one, so it is refused, naming the column."""
    first = ref.groupby("id", sort=False)[["ra", "dec"]].transform("first")
    repeat = ref["id"].duplicated()
    apart = separation_deg(ref["ra"], ref["dec"], first["ra"], first["dec"]) * 3600 > 1.0
    if (repeat & apart).any():
        ids = ref.loc[repeat & apart, "id"].unique()
        raise ValueError(
            f"reference catalog: id column {column!r} gives the same id to stars at different "
            f"places ({len(ids)} ids, e.g. {ids[0]}): name a unique column as "
            "reference_catalog.columns.id, or leave it out to number the stars"
        )
    return ref[~repeat].reset_index(drop=True)


def at_epoch(ref: pd.DataFrame, mjd) -> pd.DataFrame:
    """Positions moved by their proper motions from the catalog epoch to ``mjd``.

    Uses the optional columns ``pmra`` (mas/yr, including cos dec, as Gaia gives it),
    ``pmdec`` (mas/yr) and ``epoch`` (Julian year); a catalog without them, or an
    unknown ``mjd``, is returned unchanged. Linear in the tangent plane: over decades and
    for proper motions under 1"/yr the error stays below a milliarcsecond.

    Examples
    --------
    >>> t = pd.DataFrame({"ra": [0.0], "dec": [60.0], "pmra": [1000.0], "pmdec": [-500.0],
    ...                   "epoch": [2016.0]})
    >>> m = at_epoch(t, 57388.5 + 365.25 * 10)  # J2026.0
    >>> round(float(m["ra"][0]) * 3600, 3), round(float(m["dec"][0]) * 3600 - 216000, 3)
    (20.0, -5.0)
    """
    if mjd is None or not np.isfinite(mjd) or not {"pmra", "pmdec", "epoch"} <= set(ref):
        return ref
    dt = 2000.0 + (float(mjd) - 51544.5) / 365.25 - ref["epoch"].to_numpy(float)
    dt = np.nan_to_num(dt)
    pmra = np.nan_to_num(ref["pmra"].to_numpy(float))
    pmdec = np.nan_to_num(ref["pmdec"].to_numpy(float))
    out = ref.copy()
    out["dec"] = ref["dec"].to_numpy(float) + pmdec * dt / 3.6e6
    out["ra"] = ref["ra"].to_numpy(float) + pmra * dt / 3.6e6 / np.cos(np.radians(ref["dec"]))
    return out


def in_band(ref: pd.DataFrame, meta: dict, band: str | None) -> tuple[pd.DataFrame, dict]:
    """The catalog with ``mag``, ``mag_err``, ``color`` in ``band`` when it holds several
    bands (``mag_<band>`` columns; :func:`fieldphot.catalog_query.standardize`), and that band's
    ``band``, ``color_index`` and ``magnitude_system``. A single-band catalog, or a band it
    lacks, is returned as it is (its first band).

    Examples
    --------
    >>> ref = pd.DataFrame({"mag": [12.0], "mag_err": [0.01], "color": [0.5],
    ...     "mag_V": [12.0], "mag_err_V": [0.01], "color_V": [0.5],
    ...     "mag_r": [11.9], "mag_err_r": [0.02], "color_r": [0.3]})
    >>> meta = {"band": "V", "bands": {"V": {"magnitude_system": "Vega"},
    ...                                "r": {"magnitude_system": "AB"}}}
    >>> t, m = in_band(ref, meta, "r")
    >>> float(t["mag"][0]), m["band"], m["magnitude_system"]
    (11.9, 'r', 'AB')
    """
    per_band = meta.get("bands", {})
    if band not in per_band or f"mag_{band}" not in ref:
        return ref, {k: meta.get(k) for k in ("band", "color_index", "magnitude_system")}
    ref = ref.assign(
        mag=ref[f"mag_{band}"], mag_err=ref[f"mag_err_{band}"], color=ref[f"color_{band}"]
    )
    return ref, {"band": band, **per_band[band]}


class NoPointing(ValueError):
    """No frame says where it points (a camera raw file, a header without RA/DEC)."""


def fields(science: pd.DataFrame, radius_deg=None, margin: float = 1.1) -> list[tuple]:
    """(ra, dec, radius) circles covering the science frames' pointings.

    Pointings closer than one field radius share a circle around their mean; the radius
    is the frame's half-diagonal (from NAXIS and the pixel scale) times ``margin`` plus the
    pointings' spread, or ``radius_deg`` when given or when the scale is unknown (0.5 deg).

    Examples
    --------
    >>> sci = pd.DataFrame({"ra": [10.0, 10.01, 50.0], "dec": [20.0, 20.0, -5.0],
    ...                     "naxis1": 1000, "naxis2": 1000, "pixel_scale": 1.0})
    >>> [(round(r, 3), round(d, 3), round(rad, 3)) for r, d, rad in fields(sci)]
    [(10.005, 20.0, 0.221), (50.0, -5.0, 0.216)]
    """
    sci = science[
        np.isfinite(science["ra"].astype(float)) & np.isfinite(science["dec"].astype(float))
    ]
    if len(sci) == 0:
        raise NoPointing("no science frame has RA/Dec in its header: a catalog query needs them")
    half = 0.5 * np.hypot(sci["naxis1"].astype(float), sci["naxis2"].astype(float))
    r_frame = (half * sci["pixel_scale"].astype(float) / 3600.0 * margin).to_numpy()
    r_frame = np.where(np.isfinite(r_frame), r_frame, 0.5)
    if radius_deg:
        r_frame[:] = radius_deg
    ra, dec = sci["ra"].to_numpy(float), sci["dec"].to_numpy(float)
    group = np.full(len(sci), -1)
    out = []
    for i in range(len(sci)):
        if group[i] >= 0:
            continue
        sep = separation_deg(ra[i], dec[i], ra, dec)
        members = (group < 0) & (sep <= r_frame[i])
        group[members] = len(out)
        c_ra = float(np.degrees(np.angle(np.exp(1j * np.radians(ra[members])).mean())) % 360)
        c_dec = float(dec[members].mean())
        spread = float(separation_deg(c_ra, c_dec, ra[members], dec[members]).max())
        out.append((c_ra, c_dec, float(r_frame[members].max()) + spread))
    return out


def separation_deg(ra1, dec1, ra2, dec2):
    """Angular distance (deg) between positions (deg), elementwise."""
    r1, d1, r2, d2 = (np.radians(np.asarray(v, float)) for v in (ra1, dec1, ra2, dec2))
    c = np.sin(d1) * np.sin(d2) + np.cos(d1) * np.cos(d2) * np.cos(r1 - r2)
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))
