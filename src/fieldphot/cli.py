"""Command line: ``fieldphot simulate | run | demo | init | status | config-doc``.

Examples
--------
>>> parser().parse_args(["simulate", "out", "--size", "512"]).size
512
"""

import argparse
import subprocess
import sys
from pathlib import Path

from .workflow_files import SNAKEFILE


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fieldphot", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("simulate", help="write a simulated raw night, its catalog and truth")
    s.add_argument("outdir", type=Path)
    s.add_argument("--size", type=int, default=1024, help="frame width and height (px)")
    s.add_argument("--frames", type=int, default=30, help="number of science frames")
    s.add_argument("--seed", type=int, default=1)
    r = sub.add_parser("run", help="run the workflow on a night (extra args go to snakemake)")
    r.add_argument("config", type=Path, help="your config file (raw_dir, reference_catalog)")
    r.add_argument("--workdir", type=Path, default=Path("."), help="where results/ goes")
    r.add_argument("--cores", default="all")
    d = sub.add_parser("demo", help="simulate a night and run the whole workflow on it, offline")
    d.add_argument("outdir", type=Path, nargs="?", default=Path("demo"))
    d.add_argument("--cores", default="all")
    d.add_argument("--size", type=int, default=1024, help="frame width and height (px)")
    d.add_argument("--frames", type=int, default=30, help="number of science frames")
    i = sub.add_parser("init", help="read a raw folder's headers; report; write config+manifest")
    i.add_argument("raw_dir", type=Path)
    i.add_argument("--out", type=Path, default=Path("."), help="where config.yaml and results/ go")
    i.add_argument("--catalog", default="", help="reference catalog file of the field")
    i.add_argument("--instrument", default="", help="instrument profile (default: generic)")
    sub.add_parser("config-doc", help="print config/README.md (every key, from the schema)")
    st = sub.add_parser("status", help="list failed and flagged frames, and how to rerun them")
    st.add_argument("config", type=Path, help="the config file the night ran with")
    st.add_argument("--workdir", type=Path, default=Path("."), help="where results/ is")
    return p


def simulate(outdir: Path, size: int, frames: int, seed: int):
    from . import synthetic

    cfg = synthetic.SimConfig(nx=size, ny=size, n_science=frames, seed=seed, targets=True)
    night = synthetic.simulate_night(outdir, cfg)
    print(f"simulated night: {night.raw_dir} ({len(list(night.raw_dir.iterdir()))} raw frames)")
    print(f"reference catalog: {night.refcat}\ntruth: {night.root / 'truth'}")
    print(f"config: {night.config}")
    return night


def snakemake_command(config, workdir, cores="all", *extra) -> list[str]:
    """The ``snakemake`` command line that runs fieldphot on ``config`` in ``workdir``.

    Examples
    --------
    >>> snakemake_command("night.yaml", "work", 2, "--dry-run")[-3:]
    ['--cores', '2', '--dry-run']
    """
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(SNAKEFILE),
        "--directory",
        str(workdir),
        "--configfile",
        str(Path(config).resolve()),
        "--cores",
        str(cores),
        *extra,
    ]


def stale_lock(workdir: Path) -> bool:
    """True when ``workdir`` holds Snakemake's lock but no Snakemake process works there.

    A killed run leaves its lock behind, and Snakemake refuses to start until ``--unlock``.
    Looks for live processes in ``/proc`` (Linux); elsewhere a lock is never called stale.

    Examples
    --------
    >>> import tempfile
    >>> stale_lock(Path(tempfile.mkdtemp()))
    False
    """
    locks = list((workdir / ".snakemake" / "locks").glob("*.lock"))
    if not locks or not Path("/proc/self/cwd").exists():
        return False
    here = workdir.resolve()
    for proc in Path("/proc").iterdir():
        try:
            if (
                proc.name.isdigit()
                and (proc / "cwd").resolve() == here
                and b"snakemake" in (proc / "cmdline").read_bytes()
            ):
                return False
        except OSError:  # gone, or not ours to read
            continue
    return True


def run(config: Path, workdir: Path, cores: str, extra: list[str]) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    if stale_lock(workdir):
        print(f"fieldphot run: removing the lock a killed run left in {workdir}", flush=True)
        subprocess.run(
            snakemake_command(config, workdir, cores, "--unlock"), check=True, capture_output=True
        )
    cmd = snakemake_command(config, workdir, cores, *extra)
    print("+", " ".join(cmd), flush=True)
    return subprocess.call(cmd)


def report(results: Path) -> None:
    """Print where the products are and a few numbers from them."""
    from . import io

    lc = results / "lightcurves"
    frames, _ = io.read_table(lc / "frames.parquet")
    summary, _ = io.read_table(lc / "summary.parquet")
    ok = frames[frames["status"] == "ok"]
    print(
        f"\n{len(ok)}/{len(frames)} frames calibrated; zeropoint "
        f"{ok['zp'].median():.3f} (min {ok['zp'].min():.3f}, max {ok['zp'].max():.3f}); "
        f"median limiting magnitude {ok['maglim'].median():.2f}"
    )
    best = summary[summary["n_points"] >= 0.8 * len(ok)].nsmallest(5, "rms")
    print(
        f"{len(summary)} stars with light curves; best rms: "
        + ", ".join(
            f"{m:.2f} mag: {r * 1000:.1f} mmag"
            for m, r in zip(best["mean_mag"], best["rms"], strict=True)
        )
    )
    print(f"\nlight curves (star x frame): {lc / 'nights'}/<night>.parquet")
    print(f"per-star summary:            {lc / 'summary.parquet'}")
    print(f"per-frame diagnostics:       {lc / 'frames.parquet'}")
    print(f"rms-magnitude diagram:       {lc / 'rms_mag.png'}")
    if (lc / "targets").is_dir():
        print(f"targets (ECSV, PNG, AAVSO):  {lc / 'targets'}")
    print(f"per-frame catalogs:          {results / 'catalogs'}")
    print(f"calibrated frames:           {results / 'calibrated'}")


def status(config: Path, workdir: Path) -> int:
    """Print the frames that failed or were flagged, with the reason, and the commands that
    rerun them. Returns 1 when anything failed (a missing, unreadable or flagged frame; a
    night without one good frame is named), else 0."""
    import yaml

    from . import config as cfgmod
    from . import layout, report

    cfg = cfgmod.with_defaults(yaml.safe_load(config.read_text()))
    results = workdir / cfg["results_dir"]
    table = report.frame_status(results, cfg["exclude_frames"])
    if table.empty:
        print("every frame gave a calibrated catalog")
        return 0
    for r in table.itertuples():
        print(f"{r.night}/{r.frame}  {r.status}: {r.reason}")
    for night in report.failed_nights(results, cfg["exclude_frames"]):
        print(f"night {night}: no frame succeeded (its light curves are empty)")
    run_cmd = f"fieldphot run {config} --workdir {workdir}"
    missing = table[table["status"] == "missing"]
    if len(missing):
        print(f"\nrerun the {len(missing)} missing frame(s) (nothing else reruns):\n  {run_cmd}")
    science = table[~table["status"].isin(["missing", "bad"])]
    if len(science):
        targets = " ".join(
            str(cfg["results_dir"] + "/" + layout.path("catalogs", night=n, frame=f))
            for n, f in zip(science["night"], science["frame"], strict=True)
        )
        print(
            f"\n{len(science)} frame(s) ran and were flagged; after changing the settings, "
            f"`{run_cmd}` reruns the stages whose settings changed; to redo these frames "
            f"from calibration:\n  {run_cmd} --forcerun=calibrate {targets}"
        )
    if (table["status"] == "bad").any():
        print("\nunreadable raw files are listed with their reason; fix or remove them.")
    return 1


def init_night(raw_dir, out, catalog: str = "", instrument: str = "") -> tuple[str, list[str]]:
    """Read every header of ``raw_dir`` once; write a config, the manifest and, where the
    profile had to guess, a profile override, into ``out``. Returns (inventory, problems).
    Every path in the config is absolute, so the night runs from any folder.

    Raises ``ValueError`` (and writes no config) when no science frame is usable.
    """
    import yaml

    from . import bands, io, nightplan, refcat, runner, stages

    out, raw_dir = Path(out).resolve(), Path(raw_dir).resolve()
    # Absolute paths in the manifest too: the workflow reads it from its own working folder.
    m = stages.manifest(runner.raw_files(raw_dir), out / "results" / "manifest.parquet", instrument)
    problems = nightplan.problems(m)
    if not ((m["kind"] == "science") & (m["status"] == "ok")).any():
        raise ValueError(
            f"{raw_dir}: no usable science frame among {len(m)} files; "
            + ("; ".join(problems[-3:]) if problems else "no FITS files found")
        )
    guessed = sorted({q for v in m["guessed"] for q in str(v).split(",") if q})
    profile_path = str(Path(instrument).resolve()) if instrument else ""
    if guessed:
        prof = stages.load_profile(instrument)
        doc = {
            "name": f"{prof.name}-{Path(raw_dir).name}",
            "keywords": prof.keywords,
            "frame_types": prof.frame_types,
            "defaults": {**prof.defaults, **{q: prof.defaults.get(q) for q in guessed}},
            "time_convention": prof.time_convention,
            "utc_offset_hours": prof.utc_offset_hours,
            "longitude_sign": prof.longitude_sign,
        }
        profile_path = str(out / "instrument.yaml")
        io.write_text(
            profile_path,
            "# Written by `fieldphot init`: the headers lack "
            f"{', '.join(guessed)}; the values under `defaults` are guesses.\n"
            "# Replace them with your camera's real values.\n"
            + yaml.safe_dump(doc, sort_keys=False),
        )
    config = {"raw_dir": str(Path(raw_dir).resolve()), "instrument": profile_path}
    if catalog:  # else VizieR through the cache, or, offline, a night without a catalog
        sci = m[(m["kind"] == "science") & (m["status"] == "ok")]
        band = bands.reference_band(sci["filter"].mode().iloc[0])
        columns, missing = refcat.guess_columns(io.read_any_table(catalog).columns, band)
        problems += [f"{catalog}: set reference_catalog.columns.{col}" for col in missing]
        config["reference_catalog"] = {"path": str(Path(catalog).resolve()), "columns": columns}
    io.write_text(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    return nightplan.inventory(m).to_string(index=False), problems


def main(argv=None) -> int:
    args, extra = parser().parse_known_args(argv)
    if args.command == "simulate":
        simulate(args.outdir, args.size, args.frames, args.seed)
        return 0
    if args.command == "init":
        try:
            table, problems = init_night(args.raw_dir, args.out, args.catalog, args.instrument)
        except ValueError as exc:
            print(f"fieldphot init: {exc}", file=sys.stderr)
            return 1
        print(table)
        print(
            "\n".join(
                ["", "What is missing or doubtful:", *problems]
                if problems
                else ["", "Nothing missing."]
            )
        )
        print(f"\nwrote {args.out / 'config.yaml'} and {args.out / 'results/manifest.parquet'}")
        return 0
    if args.command == "config-doc":
        from . import config

        print(config.markdown(), end="")
        return 0
    if args.command == "status":
        return status(args.config, args.workdir)
    if args.command == "run":
        return run(args.config, args.workdir, args.cores, extra)
    night = simulate(args.outdir / "night", args.size, args.frames, 1)
    code = run(night.config, args.outdir, args.cores, extra)
    if code == 0:
        report(args.outdir / "results")
    return code


if __name__ == "__main__":
    sys.exit(main())
