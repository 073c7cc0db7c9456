"""Workflow scale: time to read the headers of N frames and to build the DAG (dry run).

    python benchmarks/dag.py --frames 10000
    python benchmarks/dag.py --season 100000 --per-night 1000

Simulates a tiny night (one science frame and its calibration frames), copies the science
frame N times with successive DATE-OBS, builds the manifest with the package (timed: every
header read once), then times ``snakemake --dry-run`` over all N frames (and its peak
memory), and the same dry run of a trivial workflow with the same jobs (five chained
one-line shell rules per frame): Snakemake's own cost per job, the floor any workflow of
this shape pays.

With ``--season N``: a season of N stand-in frames (hard links to one simulated science
frame, ``--per-night`` to a night) at the two levels (issue 22). Its manifest is the one
frame's row repeated (no header is read; see the run above for what reading them costs).
Timed, each in its own process with its peak memory: the plan (Snakemake running the
``plan`` checkpoint: every night's slice), the season level's dry run (its jobs are the
nights), one night's dry run (``config night=``: that night's frames alone), and a real
season run until its first per-frame job starts.
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from astropy.io import fits
from astropy.time import Time, TimeDelta

from fieldphot import config, layout, runner, stages, synthetic
from fieldphot.cli import snakemake_command


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=10000)
    p.add_argument("--season", type=int, default=0, help="frames of a season (see above)")
    p.add_argument("--per-night", type=int, default=1000)
    args = p.parse_args()
    if args.season:
        return season(args.season, args.per_night)
    root = Path(tempfile.mkdtemp(prefix="fieldphot-dag-"))
    night = synthetic.simulate_night(
        root / "night", synthetic.SimConfig(nx=64, ny=64, n_science=1, stars_per_arcmin2=50.0)
    )
    template = next(
        q for q in sorted(night.raw_dir.iterdir()) if "Light" in fits.getval(q, "IMAGETYP")
    )
    start = Time(fits.getval(template, "DATE-OBS"))
    data, header = fits.getdata(template, header=True)
    for i in range(args.frames):
        header["DATE-OBS"] = (start + TimeDelta(60.0 * i, format="sec")).isot
        fits.writeto(night.raw_dir / f"sci{i:06d}.fits", data, header)
    template.unlink()
    cfg = config.with_defaults(yaml.safe_load(night.config.read_text()))
    work = root / "work"
    t0 = time.perf_counter()
    stages.manifest(
        runner.raw_files(cfg["raw_dir"]), work / "results" / layout.path("manifest"), ""
    )
    t_manifest = time.perf_counter() - t0
    t0 = time.perf_counter()
    proc = subprocess.run(
        snakemake_command(night.config, work, 2, "--dry-run", "--quiet", "rules"),
        capture_output=True,
        text=True,
    )
    t_dag = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6  # kB -> GB
    if proc.returncode != 0:
        print(proc.stderr[-3000:])
    t_floor = trivial_dry_run(root / "trivial", args.frames)
    print(f"{args.frames} frames: manifest (every header once) {t_manifest:.1f} s")
    print(
        f"snakemake --dry-run (DAG of {5 * args.frames} frame jobs): {t_dag:.1f} s, "
        f"peak memory {peak_gb:.1f} GB"
    )
    print(f"the same jobs in a trivial workflow (Snakemake's floor): {t_floor:.1f} s")
    print(f"ratio fieldphot / floor: {t_dag / t_floor:.2f}")
    shutil.rmtree(root)


def _measured(cmd, **kw) -> tuple[float, float, str]:
    """Wall seconds, peak memory (GB) and output of ``cmd`` in a process of its own."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True, **kw)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError((proc.stdout + proc.stderr)[-3000:])
    return wall, int(proc.stderr.strip().splitlines()[-1]) / 1e6, proc.stdout + proc.stderr


def season(frames: int, per_night: int) -> None:
    """The season level and one night's level on ``frames`` stand-in frames."""
    import pandas as pd

    from fieldphot import io
    from fieldphot import manifest as mf

    root = Path(tempfile.mkdtemp(prefix="fieldphot-season-"))
    night = synthetic.simulate_night(
        root / "night", synthetic.SimConfig(nx=64, ny=64, n_science=5, stars_per_arcmin2=50.0)
    )
    cfg = config.with_defaults(yaml.safe_load(night.config.read_text()))
    results = root / "work" / "results"
    m = stages.manifest(runner.raw_files(cfg["raw_dir"]), results / layout.path("manifest"), "")
    sci = m[m["kind"] == "science"]
    template = sci.iloc[0]
    t_start = float(template["mjd_utc_mid"])
    rows = []
    for i in range(frames):
        path = night.raw_dir / f"sci{i:06d}.fits"
        if i % 60000 == 0:  # a file takes at most 65,000 hard links (ext4)
            source = root / f"template{i}.fits"
            shutil.copy(template["path"], source)
        os.link(source, path)
        n = i // per_night
        day = Time(t_start + n, format="mjd").datetime.strftime("%Y%m%d")
        rows.append(
            {
                **template,
                "path": str(path),
                "frame": f"sci{i:06d}",
                "night": day,
                "mjd_utc_mid": t_start + n + (i % per_night) * 20 / 86400,
            }
        )
    for p in sci["path"]:
        Path(p).unlink()
    m = pd.concat([m[m["kind"] != "science"], pd.DataFrame(rows)], ignore_index=True)
    io.write_table(
        results / layout.path("manifest"),
        m,
        {"raw_state": mf.raw_state(runner.raw_files(cfg["raw_dir"]))},
    )
    del m, rows
    work = root / "work"
    t_plan, mem_plan, _ = _measured(
        snakemake_command(night.config, work, 1, f"{cfg['results_dir']}/{layout.path('plan')}")
    )
    plan = io.read_json(results / layout.path("plan"))
    nights = sorted(plan["nights"])
    t_season, mem_season, out = _measured(snakemake_command(night.config, work, 2, "--dry-run"))
    jobs = out.split("Job stats:")[-1]
    total = int(next(line.split()[-1] for line in jobs.splitlines() if line.startswith("total")))
    t0 = time.perf_counter()
    run = subprocess.Popen(
        snakemake_command(night.config, work, 2),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    first = None
    while run.poll() is None and first is None:
        for log in (work / "logs" / "night").glob("*.snakemake.log"):
            if "rule calibrate:" in log.read_text():
                first = time.perf_counter() - t0
        time.sleep(0.2)
    os.killpg(run.pid, 9)
    run.wait()
    # (after the run: a night's run finds its masters and star list made by the season)
    busiest = max(nights, key=lambda n: plan["nights"][n]["frames"])
    t_night, mem_night, _ = _measured(
        snakemake_command(
            night.config, work, 1, "--dry-run", "--nolock", "--config", f"night='{busiest}'"
        )
    )
    print(f"{frames} frames, {len(nights)} nights of up to {plan['nights'][busiest]['frames']}")
    print(f"plan (every night's slice), snakemake included: {t_plan:.1f} s, {mem_plan:.2f} GB")
    print(f"season level dry run ({total} jobs): {t_season:.1f} s, {mem_season:.2f} GB")
    print(
        f"one night's dry run ({plan['nights'][busiest]['frames']} frames): "
        f"{t_night:.1f} s, {mem_night:.2f} GB"
    )
    print(
        f"season run until its first frame job starts: {first:.1f} s"
        if first
        else "season run: no frame job started (see work/logs/night)"
    )
    shutil.rmtree(root)


def trivial_snakefile(frames: int) -> str:
    """Five chained one-line shell rules per frame, and a rule asking for every frame."""
    chain = "".join(
        f'''
rule {b}:
    input: "{a}/{{i}}.txt"
    output: "{b}/{{i}}.txt"
    log: "logs/{b}/{{i}}.log"
    shell: "touch {{output}}"
'''
        for a, b in zip("abcd", "bcde", strict=True)
    )
    first = """
rule a:
    output: "a/{i}.txt"
    log: "logs/a/{i}.log"
    shell: "touch {output}"
"""
    return f'rule all:\n    input: expand("e/{{i}}.txt", i=range({frames}))\n' + chain + first


def trivial_dry_run(folder: Path, frames: int) -> float:
    """Seconds for ``snakemake --dry-run`` of five chained one-line rules per frame."""
    folder.mkdir()
    (folder / "Snakefile").write_text(trivial_snakefile(frames))
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--quiet", "rules"]
    subprocess.run(cmd, cwd=folder, check=True, capture_output=True)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
