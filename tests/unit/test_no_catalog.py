"""A night with no catalog at all: offline, one line naming the key to set, and still
light curves of every star (instrumental, ensemble-differential) against the truth."""

import numpy as np
import pytest
import yaml
from conftest import offline_vizier

from fieldphot import config, io, runner, synthetic, validation, zeropoint
from fieldphot.flags import Flag

#: The zeropoint settings by default.
ZP = config.defaults("zeropoint")


@pytest.fixture(scope="module")
def offline_night(tmp_path_factory):
    root = tmp_path_factory.mktemp("nocat")
    mp = pytest.MonkeyPatch()
    calls = offline_vizier(mp)
    out = {}
    for wcs in (True, False):
        night = synthetic.simulate_night(
            root / f"n{wcs}",
            synthetic.SimConfig(nx=512, ny=512, n_science=12, seed=5, targets=True, write_wcs=wcs),
        )
        cfg = yaml.safe_load(night.config.read_text())
        cfg["reference_catalog"] = {"path": "", "cache_dir": str(root / "cache")}
        res = runner.run_night(cfg, root / f"results{wcs}")
        out[wcs] = (night, root / f"results{wcs}", res)
    mp.undo()
    return out, calls


def test_one_attempt_and_one_line_naming_the_key(offline_night):
    out, calls = offline_night
    assert len(calls) == 2  # one per night: a name that does not resolve is not retried
    _, results, _ = out[True]
    ref, meta = io.read_table(results / "refcat.parquet")
    assert len(ref) == 0
    assert "cannot be reached" in meta["reason"] and "reference_catalog.path" in meta["reason"]
    assert "\n" not in meta["reason"]


@pytest.mark.parametrize("wcs", [True, False], ids=["header-wcs", "no-wcs"])
def test_light_curves_without_a_catalog(offline_night, wcs):
    out, _ = offline_night
    night, results, res = out[wcs]
    frames, _ = io.read_table(results / "lightcurves" / "frames.parquet")
    assert len(frames) == 12
    assert frames["reason"].str.contains("no reference catalog").all()  # the cause, named
    _, ast = io.read_table(
        results / "astrometry" / frames["night"][0] / f"{frames['frame'][0]}.parquet"
    )
    assert ast["astrometry"]["method"].startswith("relative")
    summary, _ = io.read_table(res["summary"])
    assert len(summary) > 100 and summary["rms"].notna().sum() > 100
    # Constant bright stars reach the noise their errors promise.
    truth = validation.Truth(night.root)
    lc = validation.light_curves(
        results, ["id", "ra", "dec", "mag_ens", "mag_ens_err", "flags", "snr"]
    )
    stars = lc.groupby("id").agg(ra=("ra", "first"), dec=("dec", "first"), snr=("snr", "median"))
    bright = stars[stars["snr"] > 100]
    assert len(bright) > 10
    ratios = []
    for i in bright.index:
        pts = lc[(lc["id"] == i) & ((lc["flags"] & ~int(Flag.NO_ZEROPOINT)) == 0)]
        if len(pts) >= 10:
            ratios.append(np.std(pts["mag_ens"], ddof=1) / np.median(pts["mag_ens_err"]))
    assert 0.7 < np.median(ratios) < 1.4, np.median(ratios)
    # Both targets have a light curve; the variable star's amplitude is seen.
    targets = lc[lc["id"] < 0]
    assert targets["id"].nunique() >= 2
    del truth


def test_zeropoint_reasons_name_the_cause():
    import pandas as pd

    sat = pd.DataFrame(
        {"mag_cat": [8.0, 8.5, 9.0], "snr": [2000.0] * 3, "flags": [int(Flag.SATURATED)] * 3}
    )
    assert "saturated (3)" in zeropoint.failure_reason(sat, ZP, 0)
    cleaned = sat.assign(flags=int(Flag.COSMIC_RAY))
    assert "hit by cosmic rays (3)" in zeropoint.failure_reason(cleaned, ZP, 0)
    none = sat.assign(mag_cat=np.nan)
    assert "no reference catalog" in zeropoint.failure_reason(none, ZP, 0)
