"""Command line: ``fieldphot simulate | run | demo | init | status | report | config-doc``.

Examples
--------
>>> parser().parse_args(["simulate", "out", "--size", "512"]).size
512
"""

import argparse
import difflib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .workflow_files import PROFILES, SNAKEFILE

VERBOSE_HELP = "show Snakemake's own output (every job) instead of a progress bar per stage"
#: Snakemake options whose output is the point (a plan, a lint, a report): shown as is.
SHOWN_AS_IS = {
    "-n", "--dry-run", "--dryrun", "--lint", "--report", "--unlock", "-S", "--summary",
    "-D", "--detailed-summary", "--list-rules", "-l", "--list-changes", "--lc", "--dag",
    "--rulegraph", "--filegraph", "-h", "--help", "--version", "-v",
}  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fieldphot", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("simulate", help="write a simulated raw night, its catalog and truth")
    s.add_argument("outdir", type=Path)
    s.add_argument("--size", type=int, default=1024, help="frame width and height (px)")
    s.add_argument("--frames", type=int, default=30, help="number of science frames")
    s.add_argument("--seed", type=int, default=1, help="random seed of the simulation")
    s.add_argument(
        "--bayer",
        choices=["RGGB", "BGGR", "GRBG", "GBRG"],
        default="",
        help="a one-shot-colour camera with this Bayer pattern (default: monochrome)",
    )
    s.add_argument(
        "--asteroid",
        action="store_true",
        help="an asteroid crosses the field (its ephemeris file and truth beside the raw folder)",
    )
    r = sub.add_parser(
        "run",
        help="run the workflow on a night (further options go to snakemake: --dry-run, "
        "--profile, --keep-going, ...)",
    )
    r.add_argument("config", type=Path, help="your config file (raw_dir, reference_catalog)")
    r.add_argument("--workdir", type=Path, default=Path("."), help="where results/ goes")
    r.add_argument("--cores", default="all", help="CPU cores to use (default: all)")
    r.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    r.add_argument(
        "--nights",
        nargs="+",
        metavar="NIGHT",
        help="run only these nights (YYYYMMDD) of a season; the cross-night summary, export "
        "and report wait for a run of every night",
    )
    r.add_argument(
        "--recheck",
        action="store_true",
        help="look again inside every night of a season (a night job reruns only when its "
        "inputs or settings change: a per-frame file deleted by hand is seen only so)",
    )
    d = sub.add_parser("demo", help="simulate a night and run the whole workflow on it, offline")
    d.add_argument(
        "outdir", type=Path, nargs="?", default=Path("demo"), help="where it all goes (demo)"
    )
    d.add_argument("--cores", default="all", help="CPU cores to use (default: all)")
    d.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    d.add_argument("--size", type=int, default=1024, help="frame width and height (px)")
    d.add_argument("--frames", type=int, default=30, help="number of science frames")
    i = sub.add_parser("init", help="read a raw folder's headers; report; write config+manifest")
    i.add_argument("raw_dir", type=Path, help="the folder of raw frames (read only)")
    i.add_argument("--out", type=Path, default=Path("."), help="where config.yaml and results/ go")
    i.add_argument("--catalog", default="", help="reference catalog file of the field")
    i.add_argument("--instrument", default="", help="instrument profile (default: generic)")
    sub.add_parser("config-doc", help="print config/README.md (every key, from the schema)")
    st = sub.add_parser("status", help="list failed and flagged frames, and how to rerun them")
    st.add_argument("config", type=Path, help="the config file the night ran with")
    st.add_argument("--workdir", type=Path, default=Path("."), help="where results/ is")
    rp = sub.add_parser(
        "report", help="write the night's report as one HTML page (no Snakemake needed)"
    )
    rp.add_argument("config", type=Path, help="the config file the night ran with")
    rp.add_argument("--workdir", type=Path, default=Path("."), help="where results/ is")
    rp.add_argument("--out", type=Path, default=None, help="the page (WORKDIR/report.html)")
    return p


def write_report(config: Path, workdir: Path, out: Path | None) -> int:
    """``fieldphot report``: :func:`fieldphot.stages.standalone_report` of a finished run."""
    found = _run_results("report", config, workdir, "lightcurves/summary.parquet")
    if found is None:
        return 1
    from . import stages

    cfg, results = found
    out = out or workdir / "report.html"
    run_cmd = f"fieldphot run {config} --workdir {workdir}"
    stages.standalone_report(results, out, run_cmd, cfg["exclude_frames"], cfg["targets"])
    print(f"report: {out}")
    return 0


def _run_results(command: str, config: Path, workdir: Path, needs: str):
    """A run's config (defaults filled) and results folder, or None after one line saying
    why not: a config that cannot be read, or no ``needs`` under the results."""
    from . import config as cfgmod

    try:
        cfg = cfgmod.with_defaults(cfgmod.read_file(config))
    except ValueError as exc:
        print(f"fieldphot {command}: {exc}", file=sys.stderr)
        return None
    results = workdir / cfg["results_dir"]
    if not (results / needs).is_file():
        print(
            f"fieldphot {command}: no results of a run in {results.resolve()}: run "
            f"`fieldphot run {config}` first, or give the run's folder with --workdir",
            file=sys.stderr,
        )
        return None
    return cfg, results


def simulate(outdir: Path, size: int, frames: int, seed: int, bayer: str = "", asteroid=False):
    from . import synthetic

    cfg = synthetic.SimConfig(
        nx=size, ny=size, n_science=frames, seed=seed, targets=True, bayer=bayer, asteroid=asteroid
    )
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


def unknown_options(command: str, extra: list[str]) -> str:
    """The first of ``extra`` that neither the subcommand nor (for ``run`` and ``demo``,
    which pass them on) snakemake knows, with the nearest valid name; "" when none.

    Examples
    --------
    >>> unknown_options("init", ["--catlog", "x.csv"])
    'fieldphot init: unknown option --catlog (did you mean --catalog?)'
    >>> unknown_options("run", ["--dry-run"])
    ''
    """
    if not extra:
        return ""
    known = [o for a in _subparser(command)._actions for o in a.option_strings]
    if command in ("run", "demo"):
        from snakemake.cli import get_argument_parser

        known += list(get_argument_parser()._option_string_actions)
    elif not extra[0].startswith("-"):  # no further arguments of any kind
        return f"fieldphot {command}: unexpected argument {extra[0]!r}"
    for arg in extra:
        name = arg.split("=", 1)[0]
        if name.startswith("-") and name not in known:
            near = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            return f"fieldphot {command}: unknown option {name}{hint}"
    return ""


def _subparser(command: str) -> argparse.ArgumentParser:
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def profile_paths(extra: list[str]) -> list[str]:
    """``extra`` with a ``--profile NAME`` that is not a folder here but one of fieldphot's
    own profiles (``slurm``, ``default``) given as that profile's path, so it is found from
    any folder and from an installed wheel.

    Examples
    --------
    >>> profile_paths(["--profile", "slurm", "--dry-run"])[1] == str(PROFILES / "slurm")
    True
    >>> profile_paths(["--profile=./mine"])
    ['--profile=./mine']
    """
    out = list(extra)
    for i, arg in enumerate(out):
        name, eq, value = arg.partition("=")
        if name != "--profile":
            continue
        j = i if eq else i + 1
        value = value if eq else (out[j] if j < len(out) else "")
        if value and not Path(value).exists() and (PROFILES / value).is_dir():
            out[j] = f"--profile={PROFILES / value}" if eq else str(PROFILES / value)
    return out


def ask_slurm_nothing(extra: list[str], home: Path | None = None) -> bool:
    """For a run that does not use SLURM, put an ``scontrol`` that answers at once first
    on this process's ``PATH`` (Snakemake inherits it); True when it did. Every Snakemake
    start (and its option parser, which :func:`unknown_options` reads) imports the SLURM
    executor plugin when it is installed, and the plugin asks ``scontrol show config``
    then, which waits 8-10 s where SLURM is installed but its controller is down. A local
    run's jobs call no SLURM command.

    Examples
    --------
    >>> import tempfile
    >>> ask_slurm_nothing(["--executor", "slurm"], Path(tempfile.mkdtemp()))
    False
    """
    if _uses_slurm(extra) or shutil.which("scontrol") is None:
        return False
    shim = (home or Path.home() / ".cache" / "fieldphot") / "local-run"
    if not (shim / "scontrol").exists():
        from . import io

        with io.atomic_path(shim / "scontrol") as tmp:  # executable before it is there
            tmp.write_text("#!/bin/sh\n# fieldphot: a local run asks SLURM nothing\nexit 1\n")
            tmp.chmod(0o755)
    os.environ["PATH"] = f"{shim}{os.pathsep}{os.environ.get('PATH', '')}"
    return True


def _uses_slurm(extra: list[str]) -> bool:
    """Whether Snakemake's options (or ``$SNAKEMAKE_PROFILE``) choose the SLURM executor."""
    import yaml

    args = [a for arg in profile_paths(extra) for a in arg.split("=", 1)]
    profiles = [os.environ.get("SNAKEMAKE_PROFILE", "")]
    for i, arg in enumerate(args[:-1]):
        if arg in ("--executor", "-e") and args[i + 1] == "slurm":
            return True
        if arg in ("--profile", "--workflow-profile"):
            profiles.append(args[i + 1])
    for profile in filter(None, profiles):
        try:
            conf = yaml.safe_load((Path(profile) / "config.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        if conf.get("executor") == "slurm":
            return True
    return False


def run(config: Path, workdir: Path, cores: str, extra: list[str], verbose=False) -> int:
    """Run the workflow on ``config`` in ``workdir``: a progress bar per stage and a
    summary (Snakemake's output into ``logs/fieldphot/``), or, with ``verbose`` or an
    option whose output is the point (``--dry-run``, ``--report``, ...), Snakemake's own
    output."""
    from . import config as cfgmod

    try:  # what Snakemake would refuse, said here in one line naming the file and key
        given = cfgmod.read_file(config)
        cfgmod.check(given, workdir)
    except ValueError as exc:
        print(f"fieldphot run: {exc}", file=sys.stderr)
        return 1
    workdir.mkdir(parents=True, exist_ok=True)
    if stale_lock(workdir):
        print(f"fieldphot run: removing the lock a killed run left in {workdir}", flush=True)
        subprocess.run(
            snakemake_command(config, workdir, cores, "--unlock"),
            check=True,
            capture_output=True,
        )
    cmd = snakemake_command(config, workdir, cores, *profile_paths(extra))
    if verbose or SHOWN_AS_IS & {a.split("=", 1)[0] for a in extra}:
        print("+", " ".join(cmd), flush=True)
        return subprocess.call(cmd)
    from . import progress

    log = workdir / "logs" / "fieldphot" / f"run-{time.strftime('%Y%m%dT%H%M%S')}.log"
    print(f"fieldphot run: {config} in {workdir.resolve()}", flush=True)
    code = progress.follow(cmd, log)
    results = workdir / cfgmod.with_defaults(given)["results_dir"]
    if code == 0 and (results / "lightcurves" / "summary.parquet").is_file():
        report(results)
    return code


def season_options(nights, recheck: bool) -> list[str]:
    """The Snakemake options of ``fieldphot run --nights ... --recheck``: the season's
    ``nights`` only (config ``season.nights``), and every night job run again (each does
    only what its night lacks).

    Examples
    --------
    >>> season_options([20240315], True)
    ['--config=season={"nights": ["20240315"]}', '--forcerun=night']
    """
    opts = [f"--config=season={json.dumps({'nights': [str(n) for n in nights]})}"] if nights else []
    return opts + ["--forcerun=night"] * recheck


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
    # stars on most of their filter's frames (a colour night: each channel's)
    frames_in = summary["filter"].map(ok.groupby("filter").size()).fillna(len(ok))
    best = summary[summary["n_points"] >= 0.8 * frames_in].nsmallest(5, "rms")
    several = summary["filter"].nunique() > 1
    print(
        f"{summary['id'].nunique()} stars with light curves; best rms: "
        + ", ".join(
            f"{m:.2f} mag{f' ({f})' if several else ''}: {r * 1000:.1f} mmag"
            for m, f, r in zip(best["mean_mag"], best["filter"], best["rms"], strict=True)
        )
    )
    print(f"\nlight curves (star x frame): {lc / 'nights'}/<night>.parquet")
    print(f"per-star summary:            {lc / 'summary.parquet'}")
    print(f"per-frame diagnostics:       {lc / 'frames.parquet'}")
    print(f"rms-magnitude diagram:       {lc / 'rms_mag.png'}")
    if (lc / "targets").is_dir():
        print(f"targets (ECSV, PNG, AAVSO):  {lc / 'targets'}")
        if any((lc / "targets").glob("*_alcdef.txt")):
            print(f"moving targets' period, ALCDEF: {lc / 'targets'} (*_phased.png, *_alcdef.txt)")
    print(f"per-frame catalogs:          {results / 'catalogs'}")
    print(f"calibrated frames:           {results / 'calibrated'}")


def status(config: Path, workdir: Path) -> int:
    """Print the frames that failed or were flagged, with the reason, and the commands that
    rerun them. Returns 1 when anything failed (a missing, unreadable or flagged frame; a
    night without one good frame is named), else 0."""
    from . import layout, report

    found = _run_results("status", config, workdir, "manifest.parquet")
    if found is None:
        return 1
    cfg, results = found
    table = report.frame_status(results, cfg["exclude_frames"])
    if table.empty:
        print("every frame gave a calibrated catalog")
        return 0
    for r in table.itertuples():
        print(f"{r.night}/{r.frame}  {r.status}: {r.reason}")
    for night in report.failed_nights(results, cfg["exclude_frames"]):
        print(f"night {night}: no frame succeeded (its light curves are empty)")
    run_cmd = f"fieldphot run {config} --workdir {workdir}"
    by_night = _nights_are_jobs(results, cfg)
    missing = table[table["status"] == "missing"]
    if len(missing):
        night_cmd = f"{run_cmd} --nights {' '.join(sorted(set(missing['night'])))} --recheck"
        print(
            f"\nrerun the {len(missing)} missing frame(s) (nothing else reruns):\n  "
            + (night_cmd if by_night else run_cmd)
        )
    science = table[~table["status"].isin(["missing", "bad"])]
    if len(science) and by_night:
        calibrated = " ".join(
            str(results / layout.path("calibrated", night=n, frame=f))
            for n, f in zip(science["night"], science["frame"], strict=True)
        )
        nights = " ".join(sorted(set(science["night"])))
        print(
            f"\n{len(science)} frame(s) ran and were flagged; after changing the settings, "
            f"`{run_cmd}` reruns the stages whose settings changed; to redo these frames "
            f"from calibration, remove their calibrated frames and recheck their nights:\n"
            f"  rm {calibrated}\n  {run_cmd} --nights {nights} --recheck"
        )
    elif len(science):
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


def _nights_are_jobs(results: Path, cfg: dict) -> bool:
    """Whether the run in ``results`` ran its nights as jobs (its plan's night count)."""
    from . import io, layout, season

    plan = results / layout.path("plan")
    n_nights = len(io.read_json(plan)["nights"]) if plan.is_file() else 1
    return season.nights_are_jobs(cfg["season"]["level"], n_nights)


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
    if args.command in ("run", "demo"):
        ask_slurm_nothing(extra)
    problem = unknown_options(args.command, extra)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if args.command == "simulate":
        simulate(args.outdir, args.size, args.frames, args.seed, args.bayer, args.asteroid)
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
    if args.command == "report":
        return write_report(args.config, args.workdir, args.out)
    if args.command == "run":
        extra = [*season_options(args.nights, args.recheck), *extra]
        return run(args.config, args.workdir, args.cores, extra, args.verbose)
    config = args.outdir / "night" / "config.yaml"
    if config.is_file():  # a demo run again: its night and finished products are kept
        print(f"fieldphot demo: the simulated night in {config.parent} again", flush=True)
    else:
        config = simulate(args.outdir / "night", args.size, args.frames, 1).config
    return run(config, args.outdir, args.cores, extra, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
