"""Light curves: per-frame catalogs transposed into a star x frame table, and summaries.

Examples
--------
>>> import pandas as pd
>>> cat = pd.DataFrame({"id": [1, 1, 1], "frame": ["a", "b", "c"], "bjd_tdb": [1.0, 2.0, 3.0],
...                     "mag": [10.0, 10.02, 9.98], "mag_err": [0.02] * 3, "flags": [0] * 3})
>>> s = summarize(cat)
>>> int(s.loc[0, "n_points"]), float(s.loc[0, "mean_mag"]), round(float(s.loc[0, "rms"]), 4)
(3, 10.0, 0.02)
>>> len(summarize(long_table([])))  # every frame failed: an empty summary, not an error
0
"""

import numpy as np
import pandas as pd

from .flags import Flag

#: Measurements with any of these flags are left out of the summary statistics.
BAD_FOR_SUMMARY = (
    Flag.SATURATED
    | Flag.EDGE
    | Flag.NEGATIVE_FLUX
    | Flag.NO_ZEROPOINT
    | Flag.NO_WCS
    | Flag.COSMIC_RAY
)


def long_table(catalogs: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-frame catalogs into one long table sorted by star and time."""
    frames = [c for c in catalogs if len(c)]
    if not frames:
        return pd.DataFrame(
            {
                "id": pd.Series(dtype="int64"),
                "frame": pd.Series(dtype=str),
                **{c: pd.Series(dtype=float) for c in ("bjd_tdb", "mag", "mag_err")},
                "flags": pd.Series(dtype="int32"),
            }
        )
    return pd.concat(frames, ignore_index=True).sort_values(["id", "bjd_tdb"], ignore_index=True)


def summarize(lc: pd.DataFrame, bad_bits: int = BAD_FOR_SUMMARY) -> pd.DataFrame:
    """Per-star statistics over good points.

    Returns one row per star: ``n_points`` (good), ``n_flagged``, ``mean_mag``
    (inverse-variance weighted), ``median_mag``, ``rms`` (standard deviation),
    ``mad_std`` (1.4826 MAD), ``expected`` (median reported error: the noise model),
    ``chi2_red`` (about the weighted mean).
    """
    flags = lc["flags"].to_numpy(dtype=np.int64)
    good = ((flags & int(bad_bits)) == 0) & np.isfinite(lc["mag"].to_numpy(dtype=float))
    g = lc[good]
    w = 1.0 / g["mag_err"] ** 2
    work = pd.DataFrame(
        {"id": g["id"], "mag": g["mag"], "w": w, "wm": w * g["mag"], "err": g["mag_err"]}
    )
    grp = work.groupby("id")
    out = pd.DataFrame(
        {
            "n_points": grp.size(),
            "mean_mag": grp["wm"].sum() / grp["w"].sum(),
            "median_mag": grp["mag"].median(),
            "rms": grp["mag"].std(ddof=1),
            "expected": grp["err"].median(),
        }
    )
    dev = (work["mag"] - work["id"].map(out["median_mag"])).abs()
    out["mad_std"] = 1.4826 * dev.groupby(work["id"]).median()
    resid = (work["mag"] - work["id"].map(out["mean_mag"])) ** 2 * work["w"]
    out["chi2_red"] = resid.groupby(work["id"]).sum() / (out["n_points"] - 1).clip(lower=1)
    flagged = lc.assign(bad=~good).groupby("id")["bad"].sum()
    out["n_flagged"] = flagged.reindex(out.index).fillna(0).astype(int)
    out = out.reset_index()
    meta_cols = [c for c in ("ra", "dec", "mag_cat") if c in lc]
    if meta_cols:
        out = out.merge(lc.groupby("id")[meta_cols].first().reset_index(), on="id", how="left")
    return out


def rms_figure(summary: pd.DataFrame, title: str = ""):
    """The rms-magnitude diagram with the noise model (median reported error) drawn over it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    s = summary[summary["n_points"] >= 3].sort_values("mean_mag")
    ax.semilogy(s["mean_mag"], s["rms"], ".", ms=4, label="measured rms")
    if len(s):
        edges = np.arange(np.floor(s["mean_mag"].min()), s["mean_mag"].max() + 0.5, 0.5)
        binned = s.groupby(pd.cut(s["mean_mag"], edges), observed=True)
        ax.semilogy(
            binned["mean_mag"].median(),
            binned["expected"].median(),
            "-",
            lw=1.5,
            color="C3",
            label="expected (noise model, binned median)",
        )
    ax.set_xlabel("mean magnitude")
    ax.set_ylabel("rms (mag)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig
