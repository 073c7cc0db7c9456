"""The master star list: the reference catalog plus the deep sources of a stack, measured
at fixed sky positions on every frame (against the simulator's truth)."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from fieldphot import config, io, stages, starlist, steps, validation
from fieldphot.flags import Flag


@pytest.fixture(scope="module")
def deep(processed):
    return validation.deep_stars(processed.results, processed.truth)


def test_deep_sources_are_real_uncatalogued_stars_fainter_than_one_frame_reaches(deep):
    # The unit night: 768 x 768, catalog complete to V = 20.5, stars down to 22.
    assert len(deep["deep"]) > 100
    # At least 90 % of the added sources are true stars the catalog lacks (within 1").
    assert deep["purity"] > 0.9
    # The stack of 5 frames finds half the uncatalogued stars 0.4 mag fainter than the
    # detections on one of its frames (sqrt(5): 0.87 mag for the same threshold).
    assert deep["m50"] > deep["m50_frame"] + 0.4
    assert deep["fraction"][0] > 0.7


def test_deep_stars_are_measured_on_every_frame_with_honest_errors(processed, deep):
    # Every real deep star inside the frames has a catalog row on every frame ...
    n_frames = len(processed.frames)
    assert (deep["frames_per_star"] == n_frames).mean() > 0.95
    # ... and its calibrated magnitude agrees with the truth within its reported error.
    p = deep["pulls"]
    assert len(p) > 1000
    assert abs(np.median(p)) < 0.2
    robust = 1.4826 * np.median(np.abs(p - np.median(p)))
    assert 0.8 < robust < 1.25


def test_deep_stars_have_a_point_or_a_flagged_gap_on_every_frame(processed, deep):
    lc = validation.light_curves(processed.results, ["id", "frame", "flags", "mag"])
    mine = lc[lc["id"].isin(deep["deep"]["id"])]
    assert mine.groupby("id")["frame"].nunique().eq(len(processed.frames)).all()
    gap = (mine["flags"] & int(Flag.NO_DATA)) != 0
    assert mine.loc[~gap, "mag"].notna().mean() > 0.95


def test_star_list_is_the_catalog_plus_deep_sources_with_their_own_ids(processed):
    (path,) = processed.results.glob("starlist/*/*.parquet")
    stars, meta = io.read_table(path)
    ref, _ = io.read_table(processed.results / "refcat.parquet")
    assert stars["id"].is_unique
    assert stars["id"].iloc[: len(ref)].tolist() == ref["id"].tolist()
    added = stars.iloc[len(ref) :]
    assert added["mag"].isna().all() and (added["id"] <= starlist.DEEP_ID_BASE).all()
    assert meta["starlist"]["n_deep"] == len(added) and len(meta["starlist"]["frames"]) == 5
    # The estimate used for their light on neighbours is on the catalog's scale.
    truth = processed.truth.stars["mag"]
    real = validation.deep_stars(processed.results, processed.truth)["deep"]
    real = real[real["true_id"] > 0]
    est = added.set_index("id").loc[real["id"], "mag_est"].to_numpy()
    assert abs(np.median(est - truth.loc[real["true_id"]].to_numpy())) < 0.15


def test_reference_frames_that_fail_are_left_out_of_the_stack(processed, tmp_path, caplog):
    """A bad frame is left out; a fault that is not about a frame (a master gone from
    the disk, a full disk) fails the job and writes no list made of fewer frames."""
    cfg = config.with_defaults(yaml.safe_load(processed.night.config.read_text()))
    m, _ = io.read_table(processed.results / "manifest.parquet")
    rows = m[m["kind"] == "science"].sort_values("mjd_utc_mid").head(4).to_dict("records")
    broken = tmp_path / "broken.fits"
    broken.write_bytes(Path(rows[1]["path"]).read_bytes()[:5000])  # cut short on the disk
    rows[1]["path"] = str(broken)  # a science failure: calibrated as a flagged frame
    out = tmp_path / "starlist.parquet"
    params = steps.starlist_params(cfg)
    with caplog.at_level("INFO"):
        stages.starlist(processed.results / "refcat.parquet", rows, out, **params)
    stars, meta = io.read_table(out)
    assert meta["starlist"]["frames"] == [rows[i]["path"] for i in (0, 2, 3)]
    assert meta["starlist"]["n_deep"] > 50
    assert f"{broken}: no astrometric solution, not stacked" in caplog.text
    rows[2]["bias_master"] = "masters/missing.fits"  # a fault, not a frame's failure
    out.unlink()
    with pytest.raises(io.FrameError, match="missing.fits"):
        stages.starlist(processed.results / "refcat.parquet", rows, out, **params)
    assert not out.exists()
    assert not list(tmp_path.glob(".starlist-*"))  # the scratch folder is gone
