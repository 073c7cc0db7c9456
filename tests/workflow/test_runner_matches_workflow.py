"""The plain-loop runner and the Snakemake workflow are built from one table of steps
(fieldphot.steps): on the same night, with a frame excluded, they give the same products."""

import subprocess

import pandas as pd
import pytest
import yaml

from fieldphot import io, synthetic
from fieldphot.cli import snakemake_command
from fieldphot.runner import run_night

pytestmark = pytest.mark.workflow

NIGHT = synthetic.SimConfig(
    nx=256, ny=256, n_science=4, n_bias=3, n_dark=3, n_flat=3, seed=33, targets=True
)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    root = tmp_path_factory.mktemp("runner_vs_workflow")
    night = synthetic.simulate_night(root / "night", NIGHT)
    cfg = yaml.safe_load(night.config.read_text())
    excluded = night.frames["frame"].iloc[1]
    cfg["exclude_frames"] = [excluded]
    night.config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    work = root / "work"
    cmd = snakemake_command(night.config, work, 2)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_night(cfg, root / "loop" / "results")
    return night, excluded, work / "results", root / "loop" / "results"


@pytest.mark.parametrize(
    "product",
    [
        "starlist/*/*.parquet",
        "astrometry/*/*.parquet",
        "catalogs/*/*.parquet",
        "lightcurves/nights/*.parquet",
        "lightcurves/summary.parquet",
    ],
)
def test_runner_and_workflow_give_the_same_products(both, product):
    night, excluded, workflow, loop = both
    ours, theirs = sorted(workflow.glob(product)), sorted(loop.glob(product))
    assert [p.name for p in ours] == [p.name for p in theirs] and ours
    for a, b in zip(ours, theirs, strict=True):
        (ta, ma), (tb, mb) = io.read_table(a), io.read_table(b)
        pd.testing.assert_frame_equal(ta, tb)
        assert ma.get("status") == mb.get("status")


def test_the_excluded_frame_is_left_out_of_both(both):
    night, excluded, workflow, loop = both
    for results in (workflow, loop):
        assert not list(results.glob(f"catalogs/*/{excluded}.parquet"))
        frames = len(list(results.glob("catalogs/*/*.parquet")))
        assert frames == len(night.frames) - 1
