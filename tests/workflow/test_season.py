"""A season of three simulated nights at the season level (issue 22): each night one job,
a nested run of its own frames from its slice of the manifest.

One module-scoped season: the single-DAG run of its frames (``season.level: frames``),
then the season-level run killed (SIGKILL, every process) once its first night is done and
rerun. The tests check what the issue asks of reruns against that: the products equal the
single-DAG run's, nothing changed runs nothing, a stage's setting reruns every night's job
and inside each only that stage onward, and a frame that failed reruns only its night.
"""

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import job_counts, simulate_season  # tests/ is on the path (its conftest)

from fieldphot import cli, io, layout
from fieldphot.cli import snakemake_command

SMALL = dict(nx=256, ny=256, n_science=3, n_bias=3, n_dark=3, n_flat=3, seed=41)
DAYS = ("2024-03-15", "2024-03-16", "2024-03-17")
CROSS_NIGHT = {"lightcurves": 1, "report_pages": 1, "export": 1, "all": 1}


def _tables(results: Path) -> dict[str, pd.DataFrame]:
    return {
        str(p.relative_to(results)): io.read_table(p)[0] for p in sorted(results.rglob("*.parquet"))
    }


def _dry(config, work, *extra) -> str:
    proc = subprocess.run(
        snakemake_command(config, work, 2, "--dry-run", *extra), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _rules_run(log: Path) -> dict[str, int]:
    """Rule -> jobs a Snakemake log says it ran."""
    found = re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", log.read_text(), re.MULTILINE)
    return {r: found.count(r) for r in set(found)}


def _with(config: Path, out: Path, **sections) -> Path:
    cfg = yaml.safe_load(config.read_text())
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


@pytest.fixture(scope="module")
def season_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("season")
    config = simulate_season(root, DAYS, **SMALL)
    flat = _with(config, root / "flat.yaml", season={"level": "frames"})
    proc = subprocess.run(snakemake_command(flat, root / "flat", 2), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    work = root / "work"
    with open(root / "killed.log", "w") as out:
        run = subprocess.Popen(
            snakemake_command(config, work, 2),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        # Killed once the second night's job has started (the first finished and
        # recorded: Snakemake's own record of a job killed between its output and that
        # record is lost, and with it the params that would rerun it).
        records = work / "results" / "lightcurves" / "nights"
        while run.poll() is None and len(list((work / "logs" / "night").glob("*[0-9].log"))) < 2:
            time.sleep(0.2)
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    killed_records = sorted(p.stem for p in records.glob("*.json"))
    assert cli.main(["run", str(config), "--workdir", str(work), "--cores", "2"]) == 0
    return config, root / "flat", work, killed_records


def test_a_killed_season_reruns_to_the_single_dag_products(season_run):
    config, flat, work, killed_records = season_run
    assert 1 <= len(killed_records) < 3  # killed with a night done and nights to go
    plan = io.read_json(work / "results" / layout.path("plan"))
    assert len(plan["nights"]) == 3 and all(n["frames"] == 3 for n in plan["nights"].values())
    ours, theirs = _tables(work / "results"), _tables(flat / "results")
    assert ours.keys() == theirs.keys() and any(k.startswith("catalogs/") for k in ours)
    for name, table in theirs.items():
        pd.testing.assert_frame_equal(ours[name], table, obj=name)
    # Each night ran as one job of the season (its own nested run, with its own log); the
    # season level holds no per-frame job: re-running every night plans nights alone.
    assert sorted(p.name for p in (work / "logs" / "night").glob("*.snakemake.log")) == sorted(
        f"{n}.snakemake.log" for n in plan["nights"]
    )
    counts = job_counts(_dry(config, work, "--forcerun", "night"))
    assert counts == {"night": 3, **CROSS_NIGHT}
    assert "Nothing to be done" in _dry(config, work)


def test_a_stage_setting_reruns_every_night_from_that_stage(season_run, tmp_path):
    config, _, work, _ = season_run
    copy = tmp_path / "work"
    shutil.copytree(work, copy)
    changed = _with(config, tmp_path / "changed.yaml", zeropoint={"clip_sigma": 2.5})
    assert job_counts(_dry(changed, copy)) == {"night": 3, **CROSS_NIGHT}
    calibrated = {p: p.stat().st_mtime for p in (copy / "results" / "calibrated").rglob("*.fits")}
    proc = subprocess.run(snakemake_command(changed, copy, 2), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for log in (copy / "logs" / "night").glob("*.snakemake.log"):
        assert _rules_run(log) == {"zeropoint": 3, "night_lightcurves": 1, "all": 1}, log
    assert {p: p.stat().st_mtime for p in calibrated} == calibrated
    assert "Nothing to be done" in _dry(changed, copy)


def test_a_failed_frame_reruns_only_its_night_and_its_missing_steps(season_run, tmp_path):
    """What a frame whose job died leaves: its products from that step on missing and its
    night's job failed (no record). The rerun plans that night alone, and inside it that
    frame's missing steps and the night's light curves."""
    config, _, work, _ = season_run
    copy = tmp_path / "work"
    shutil.copytree(work, copy)
    res = copy / "results"
    night = sorted(p.name for p in (res / "catalogs").iterdir())[1]
    frame = sorted(p.stem for p in (res / "catalogs" / night).iterdir())[0]
    for product in ("photometry", "catalogs"):
        (res / layout.path(product, night=night, frame=frame)).unlink()
    (res / layout.path("night_run", night=night)).unlink()
    assert job_counts(_dry(config, copy)) == {"night": 1, **CROSS_NIGHT}
    proc = subprocess.run(snakemake_command(config, copy, 2), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _rules_run(copy / "logs" / "night" / f"{night}.snakemake.log") == {
        "photometer": 1,
        "zeropoint": 1,
        "night_lightcurves": 1,
        "all": 1,
    }
    pd.testing.assert_frame_equal(
        io.read_table(res / layout.path("catalogs", night=night, frame=frame))[0],
        io.read_table(work / "results" / layout.path("catalogs", night=night, frame=frame))[0],
    )


def test_nights_restricts_and_recheck_sees_a_deleted_file(season_run, tmp_path, capsys):
    """`fieldphot run --nights N` runs that night's job alone (no cross-night step); a
    per-frame file deleted by hand is seen when its night is rechecked."""
    config, _, work, _ = season_run
    copy = tmp_path / "work"
    shutil.copytree(work, copy)
    res = copy / "results"
    night = sorted(p.name for p in (res / "catalogs").iterdir())[2]
    frame = sorted(p.stem for p in (res / "catalogs" / night).iterdir())[-1]
    (res / layout.path("catalogs", night=night, frame=frame)).unlink()
    # Not seen without a recheck (the copy's report pages name its own folder: rerun).
    assert "night" not in job_counts(_dry(config, copy))
    opts = cli.season_options([night], True)
    assert job_counts(_dry(config, copy, *opts)) == {"night": 1, "all": 1}
    assert cli.main(["status", str(config), "--workdir", str(copy)]) == 1
    assert f"--nights {night} --recheck" in capsys.readouterr().out
    rerun = ["run", str(config), "--workdir", str(copy), "--nights", night, "--recheck"]
    assert cli.main(rerun) == 0
    assert (res / layout.path("catalogs", night=night, frame=frame)).is_file()
    assert _rules_run(copy / "logs" / "night" / f"{night}.snakemake.log") == {
        "zeropoint": 1,
        "night_lightcurves": 1,
        "all": 1,
    }
