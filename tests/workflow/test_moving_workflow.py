"""A moving target through `snakemake` (the rules' wiring of its products): a short
asteroid night, its ephemeris read by every frame's photometer and its ALCDEF file
written by the light-curve rule."""

import subprocess

import pandas as pd
import pytest
import yaml

from fieldphot import asteroid, synthetic
from fieldphot.cli import snakemake_command

pytestmark = pytest.mark.workflow

SHORT_ROCK_NIGHT = synthetic.SimConfig(
    nx=384, ny=384, n_science=8, n_bias=3, n_dark=3, n_flat=3, seed=22, asteroid=True,
    asteroid_rate=2.0,
)  # fmt: skip


def test_asteroid_products_through_snakemake(tmp_path):
    night = synthetic.simulate_night(tmp_path / "night", SHORT_ROCK_NIGHT)
    cfg = yaml.safe_load(night.config.read_text())
    cfg["lightcurves"] = {"observer": "A. Student"}
    config = tmp_path / "night.yaml"
    config.write_text(yaml.safe_dump(cfg))
    work = tmp_path / "work"
    proc = subprocess.run(
        snakemake_command(config, work, 2), capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    targets = work / "results" / "lightcurves" / "targets"
    for suffix in (".ecsv", ".png", "_aavso.txt", "_phased.png", "_alcdef.txt"):
        assert (targets / f"SIMROCK{suffix}").stat().st_size > 0
    text = (targets / "SIMROCK_alcdef.txt").read_text()
    assert asteroid.alcdef_missing(text) == []
    assert "OBSERVERS=A. Student" in text and "OBSLONGITUDE=-111.5967" in text
    rows = pd.concat(
        pd.read_parquet(p).query("target == 'SIMROCK'")
        for p in (work / "results" / "photometry").glob("*/*.parquet")
    )
    truth = pd.read_parquet(night.root / "truth" / "asteroid.parquet")
    assert len(rows) == len(truth) == SHORT_ROCK_NIGHT.n_science
    assert sum(line.startswith("DATA=") for line in text.splitlines()) >= 2  # the rest cross a star
