"""Workflow scale: time to read the headers of N frames and to build the DAG (dry run).

    python benchmarks/dag.py --frames 10000

Simulates a tiny night (one science frame and its calibration frames), copies the science
frame N times with successive DATE-OBS, builds the manifest with the package (timed: every
header read once), then times ``snakemake --dry-run`` over all N frames (and its peak
memory), and the same dry run of a trivial workflow with the same jobs (five chained
one-line shell rules per frame): Snakemake's own cost per job, the floor any workflow of
this shape pays.
"""

import argparse
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
    args = p.parse_args()
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
