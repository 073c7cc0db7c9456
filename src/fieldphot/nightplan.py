"""What a folder of raw frames holds, and what it lacks: the report of ``fieldphot init``.

Examples
--------
>>> import pandas as pd
>>> m = pd.DataFrame({"night": ["20240314"] * 3, "kind": ["bias", "science", "science"],
...                   "filter": ["none", "V", "R"], "binning": ["1x1"] * 3,
...                   "exptime": [0.0, 60.0, 60.0], "status": ["ok"] * 3, "reason": [""] * 3,
...                   "guessed": [""] * 3, "site_lon": [-111.6] * 3})
>>> for p in problems(m): print(p)
20240314: no flats in V (1x1): science frames will not be flat-fielded
20240314: no flats in R (1x1): science frames will not be flat-fielded
20240314: no darks (1x1): dark current is not removed
"""

import pandas as pd


def exposures(m: pd.DataFrame) -> pd.DataFrame:
    """The manifest with a colour frame's channel planes as its one raw file, its filter
    ``colour <pattern>``.

    >>> m = pd.DataFrame({"path": ["a.fits"] * 2 + ["b.fits"], "channel": ["R", "G1", ""],
    ...                   "bayer": ["RGGB", "RGGB", ""], "filter": ["R", "G1", "V"]})
    >>> exposures(m)["filter"].tolist()
    ['colour RGGB', 'V']
    """
    if "channel" not in m:
        return m
    colour = m["channel"].fillna("") != ""
    one = m[colour].drop_duplicates("path")
    one = one.assign(filter="colour " + one["bayer"].astype(str))
    return pd.concat([m[~colour], one]).sort_index()


def inventory(m: pd.DataFrame) -> pd.DataFrame:
    """Counts of usable frames by night, type, filter, exposure time and binning."""
    ok = exposures(m[m["status"] == "ok"]).copy()
    ok["filter"] = ok["filter"].where(ok["kind"].isin(["flat", "science"]), "-")
    return (
        ok.groupby(["night", "kind", "filter", "exptime", "binning"])
        .size()
        .rename("frames")
        .reset_index()
    )


def problems(m: pd.DataFrame) -> list[str]:
    """One line per thing missing or doubtful, in the order a user should fix them."""
    ok = exposures(m[m["status"] == "ok"])
    out = []
    for night, g in ok[ok["kind"] == "science"].groupby("night", sort=True):
        for (flt, binning), rows in g.groupby(["filter", "binning"], sort=False):
            flats = ok[(ok["kind"] == "flat") & (ok["filter"] == flt) & (ok["binning"] == binning)]
            if flt.startswith("colour "):  # flat through the camera's own filter: planned
                masters = rows["flat_master"]
                if (masters == "").any():
                    out.append(
                        f"{night}: no flats for the {flt} frames ({binning}): they will not "
                        "be flat-fielded"
                    )
                elif not masters.str.startswith(f"masters/{night}/").all():
                    out.append(f"{night}: no flats for the {flt} frames ({binning}) this night")
            elif flats.empty:
                out.append(
                    f"{night}: no flats in {flt} ({binning}): science frames will not "
                    "be flat-fielded"
                )
            elif night not in set(flats["night"]):
                out.append(
                    f"{night}: no flats in {flt} ({binning}) this night: using "
                    f"{sorted(set(flats['night']))[0]} (flagged)"
                )
        for kind, effect in (
            ("bias", "the bias structure is not removed"),
            ("dark", "dark current is not removed"),
        ):
            for binning in sorted(set(g["binning"])):
                have = ok[(ok["kind"] == kind) & (ok["binning"] == binning)]
                sky_dark = (
                    g["dark_master"].str.contains("skydark").any()
                    if ("dark_master" in g)
                    else False
                )
                if have.empty and kind == "dark" and sky_dark:
                    out.append(
                        f"{night}: no darks ({binning}): dark current and glow "
                        f"estimated from the night's {len(g)} science frames (skydark)"
                    )
                elif have.empty:
                    out.append(
                        f"{night}: no {kind}{'es' if kind == 'bias' else 's'} ({binning}): {effect}"
                    )
                elif kind == "dark" and have["exptime"].max() < g["exptime"].max():
                    out.append(
                        f"{night}: darks up to {have['exptime'].max():g} s, science up "
                        f"to {g['exptime'].max():g} s: dark current scaled up"
                    )
    guessed = sorted(
        {
            q
            for v in m.get("guessed", pd.Series(dtype=str)).fillna("")
            for q in str(v).split(",")
            if q
        }
    )
    if guessed:
        out.append(
            f"not in the headers, taken from the profile's defaults: {', '.join(guessed)}"
            " (set them in the instrument profile override)"
        )
    if m["site_lon"].isna().any():
        out.append(
            "no observatory longitude in the headers: nights split at UTC noon and BJD "
            "is geocentric (set observatory: in the config)"
        )
    out += list(m.attrs.get("notes", []))
    out += [f"unusable: {r}" for r in m.loc[m["status"] != "ok", "reason"]]
    return out
