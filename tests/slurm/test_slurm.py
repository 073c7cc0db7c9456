"""The small simulated night through `profiles/slurm` on a real SLURM cluster
(`tools/slurm-cluster.sh start`): outputs, accounting, CPUs per job, and a frame whose job
is killed while the others finish.

Skipped, with the reason, where no cluster answers; CI starts one and sets
FIELDPHOT_REQUIRE_SLURM=1, which turns the skip into a failure.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import job_counts, simulate_season  # tests/ is on the path (its conftest)

from fieldphot import io, synthetic
from fieldphot.cli import snakemake_command

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "profiles" / "slurm"
NIGHT = synthetic.SimConfig(
    nx=384, ny=384, n_science=6, n_bias=3, n_dark=3, n_flat=3, seed=21, stars_per_arcmin2=9.0
)
FAST = ["--slurm-init-seconds-before-status-checks", "3"]

pytestmark = pytest.mark.slurm


def _cluster_problem() -> str:
    if shutil.which("sbatch") is None:
        return "SLURM is not installed (tools/slurm-cluster.sh install)"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[test]')"
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0 or not any(s in proc.stdout for s in ("idle", "mixed", "alloc")):
        return f"no SLURM controller answers (tools/slurm-cluster.sh start): {proc.stderr.strip()}"
    return ""


@pytest.fixture(scope="module", autouse=True)
def cluster():
    problem = _cluster_problem()
    if problem:
        if os.environ.get("FIELDPHOT_REQUIRE_SLURM"):
            pytest.fail(problem)
        pytest.skip(problem)


def _run(workdir, config, *extra):
    cmd = snakemake_command(config, workdir, 2, "--profile", str(PROFILE), *FAST, *extra)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1500)


def _crash(comment_prefix: str, frame: str) -> str | None:
    """SIGKILL the processes of the running job whose comment names the rule and frame (the
    job step's, not the batch script's); returns its job id once done."""
    queue = subprocess.run(
        ["squeue", "-h", "-t", "R", "-o", "%i %k"], capture_output=True, text=True
    )
    for line in queue.stdout.splitlines():
        job, _, comment = line.partition(" ")
        if comment.startswith(comment_prefix) and frame in comment:
            pids = subprocess.run(["scontrol", "listpids", job], capture_output=True, text=True)
            steps = [r.split() for r in pids.stdout.splitlines()[1:]]
            step_pids = [int(r[0]) for r in steps if len(r) > 2 and r[2] != "batch"]
            if not step_pids:
                return None  # the step has not started yet
            for pid in step_pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return job
    return None


def _sacct(workdir) -> list[dict]:
    """The cluster's accounting records of the jobs this run submitted."""
    ids = sorted(
        {p.stem for p in (Path(workdir) / ".snakemake" / "slurm_logs").rglob("*.log")}, key=int
    )
    proc = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(ids), "--format=JobID,State,AllocCPUS"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.split("|") for line in proc.stdout.splitlines() if line]
    return [{"id": r[0], "state": r[1], "cpus": int(r[2])} for r in rows]


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm_night")
    return synthetic.simulate_night(root / "night", NIGHT), root


def test_the_night_runs_through_the_slurm_profile(night):
    sim, root = night
    work = root / "work"
    proc = _run(work, sim.config)
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = work / "results"
    for frame in sim.frames["frame"]:
        cat, meta = io.read_table(next(res.glob(f"catalogs/*/{frame}.parquet")))
        assert meta["status"] == "ok" and len(cat) > 20
    truth = sim.fluxes.set_index(["frame", "id"])["mag_true"]
    cat = io.read_table(next(res.glob("catalogs/*/*.parquet")))[0]
    clean = cat[(cat["flags"] == 0) & (cat["snr"] > 50) & np.isfinite(cat["mag_cat"])]
    d = clean["mag"].to_numpy() - truth.loc[clean["frame"].iloc[0]].loc[clean["id"]].to_numpy()
    assert abs(np.median(d)) < 0.02
    assert (res / "lightcurves" / "summary.parquet").exists()
    # Every job went through the cluster and its accounting: manifest, catalog, three
    # masters, the field's star list, the frames (grouped into one job: 20 frames per
    # group), the night's light curves, the summary, export, the report's pages.
    jobs = _sacct(work)
    assert len(jobs) == 11 and all(j["state"] == "COMPLETED" for j in jobs), jobs
    # The grouped frame job asked for calibrate's two threads and was given them.
    assert max(j["cpus"] for j in jobs) == 2
    # ... and ran inside its SLURM job, not in a worker process outside the allocation.
    for log in (work / "logs" / "calibrate").rglob("*.log"):
        assert "calibrate in its own process: 2 threads (CPUs the scheduler gave: 2)" in (
            log.read_text()
        )


def test_a_failing_frame_leaves_the_others_to_finish(night, tmp_path):
    """One frame's calibration process dies on the node (SIGKILL, as the kernel's OOM
    killer or a crash would): SLURM marks the job FAILED, that frame is left out, the rest
    of the night completes (keep-going), and the run says it failed."""
    sim, _ = night
    # The profile without grouping, so the victim is one job of its own, and no retries.
    prof = yaml.safe_load((PROFILE / "config.yaml").read_text())
    for key in ("groups", "group-components"):
        prof.pop(key)
    prof["retries"] = 0
    (tmp_path / "profile").mkdir()
    (tmp_path / "profile" / "config.yaml").write_text(yaml.safe_dump(prof))
    victim = sim.frames["frame"].iloc[2]
    work = tmp_path / "work"
    cmd = snakemake_command(sim.config, work, 2, "--profile", str(tmp_path / "profile"), *FAST)
    out_path = tmp_path / "snakemake.out"
    with open(out_path, "w") as out_file:
        run = subprocess.Popen(cmd, stdout=out_file, stderr=subprocess.STDOUT)
        killed = None
        while run.poll() is None and killed is None:
            killed = _crash("rule_calibrate_wildcards_", victim)
            time.sleep(0.3)
        run.wait(timeout=1500)
    out = out_path.read_text()
    assert killed, "the victim's calibration job never showed in squeue"
    assert run.returncode != 0, out[-3000:]
    res = work / "results"
    assert not list(res.glob(f"catalogs/*/{victim}.parquet"))
    for frame in sim.frames["frame"]:
        if frame != victim:
            assert list(res.glob(f"catalogs/*/{frame}.parquet")), frame
    states = {j["id"]: j["state"] for j in _sacct(work)}
    assert states[killed] == "FAILED", states
    assert sum(s == "COMPLETED" for s in states.values()) >= 5 * (len(sim.frames) - 1)
    # `fieldphot status` names the frame and the command that reruns it, and that command
    # reruns exactly the frame's five steps and the night's products.
    status = subprocess.run(
        [sys.executable, "-m", "fieldphot.cli", "status", str(sim.config), "--workdir", str(work)],
        capture_output=True,
        text=True,
    )
    assert status.returncode == 1, status.stdout + status.stderr
    assert f"{victim}  missing" in status.stdout
    assert f"fieldphot run {sim.config} --workdir {work}" in status.stdout
    dry = subprocess.run(
        snakemake_command(sim.config, work, 2, "--dry-run"), capture_output=True, text=True
    )
    assert job_counts(dry.stdout + dry.stderr) == {
        rule: 1
        for rule in ("all", "calibrate", "extract", "solve", "photometer", "zeropoint")
        + ("night_lightcurves", "lightcurves", "export", "report_pages")
    }


def test_a_season_runs_each_night_in_one_allocation(tmp_path):
    """Three nights through `profiles/season`: each night is one SLURM job (two CPUs) that
    runs its frames inside it; no frame is a job of its own; the products equal the
    single-DAG run's on the same frames."""
    config = simulate_season(
        tmp_path,
        ("2024-03-15", "2024-03-16", "2024-03-17"),
        nx=256,
        ny=256,
        n_science=3,
        n_bias=3,
        n_dark=3,
        n_flat=3,
        seed=41,
    )
    flat_cfg = yaml.safe_load(config.read_text())
    flat_cfg["season"] = {"level": "frames"}
    flat = tmp_path / "flat.yaml"
    flat.write_text(yaml.safe_dump(flat_cfg, sort_keys=False))
    local = subprocess.run(snakemake_command(flat, tmp_path / "flat", 2), capture_output=True)
    assert local.returncode == 0, local.stderr[-3000:]
    work = tmp_path / "work"
    cmd = snakemake_command(config, work, 2, "--profile", str(REPO / "profiles" / "season"), *FAST)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-4000:]
    by_rule = {
        p.name.removeprefix("rule_"): p for p in (work / ".snakemake" / "slurm_logs").iterdir()
    }
    assert not {"calibrate", "extract", "solve", "photometer", "zeropoint"} & by_rule.keys()
    nights = sorted(p.name for p in by_rule["night"].iterdir())
    assert len(nights) == 3, nights
    jobs = {j["id"]: j for j in _sacct(work)}
    night_jobs = [p.stem for p in by_rule["night"].rglob("*.log")]
    assert len(night_jobs) == 3 and all(jobs[j]["cpus"] == 2 for j in night_jobs), jobs
    assert all(j["state"] == "COMPLETED" for j in jobs.values()), jobs
    for log in (work / "logs" / "night").glob("*.snakemake.log"):
        assert "calibrate" in log.read_text()  # the night's frames ran in its allocation
    ours, theirs = (sorted((w / "results").rglob("*.parquet")) for w in (work, tmp_path / "flat"))
    assert [p.relative_to(work) for p in ours] == [p.relative_to(tmp_path / "flat") for p in theirs]
    for a, b in zip(ours, theirs, strict=True):
        pd.testing.assert_frame_equal(io.read_table(a)[0], io.read_table(b)[0], obj=str(a))
