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
    return out[good].reset_index(drop=True)
