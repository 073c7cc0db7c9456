# Shared helpers: output paths, the season's plan (a checkpoint) and input functions.
import json
import math
import os
import shlex
import sys
from functools import lru_cache

import pandas as pd
from snakemake.settings.types import DeploymentMethod

from fieldphot import io, layout, season, steps, worker, workflow_files
from fieldphot import manifest as mf
from fieldphot.runner import raw_files

RESULTS = config["results_dir"]
#: The night of a season's night job (its nested run): the per-frame workflow of that night
#: alone, from its slice of the manifest; None for a run of the folder.
NIGHT = None if config["night"] is None else str(config["night"])


def raw_state(wildcards):
    """The raw folder's fingerprint (fieldphot.manifest.raw_state of its frames): a frame
    added, removed or rewritten remakes the manifest. Walked by a Snakemake process that
    plans the manifest only: not by a night's run, nor by a cluster job of another step."""
    return mf.raw_state(raw_files(config["raw_dir"]))
#: The instrument profile (a file the manifest reads: editing it remakes the manifest).
INSTRUMENT_PROFILE = config["instrument"] or str(workflow_files.INSTRUMENTS / "generic.yaml")
# Resolved: `-s ../Snakefile` and `-s /abs/Snakefile` give the same commands, so Snakemake
# sees the same code however the night is invoked.
SCRIPTS = os.path.join(os.path.realpath(workflow.basedir), "scripts")
_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
def _interpreter():
    """This Python, by one name whichever it was started as (``python`` or ``python3`` of
    the same environment): the steps' commands, and so Snakemake's record of their code,
    do not change with it."""
    here = sys.executable
    for name in ("python3", "python"):
        other = os.path.join(os.path.dirname(here), name)
        if os.path.exists(other) and os.path.samefile(other, here):
            return other
    return here


_PYTHON = _interpreter()


def step_command():
    """The shell command of a per-frame step (``params.name``): scripts/step.py runs it in
    the run's warm worker when there is one (fieldphot.worker), with the job's named inputs
    and the rule's params as JSON. Under --use-conda it is the environment's own python."""
    python = "python" if _CONDA else shlex.quote(_PYTHON)
    script = shlex.quote(os.path.join(SCRIPTS, "step.py"))
    return (
        f"{python} {script} {{params.name}} {{log:q}} {{threads}} {{params.inputs:q}} {{output:q}} "
        "{params.step:q}"
    )


#: The command that runs this night, for the report's rerun hints.
RUN_COMMAND = shlex.join(
    [
        "fieldphot",
        "run",
        *map(os.path.abspath, list(workflow.overwrite_configfiles)[-1:] or workflow.configfiles[-1:]),
        "--workdir",
        os.getcwd(),
    ]
)
# The warm worker of a local run (not SLURM jobs, not conda environments): fieldphot.worker
# owns it from start to stop.
onstart:
    worker.start_for_run(workflow.local_exec and not _CONDA)


onsuccess:
    worker.stop_for_run()


onerror:
    worker.stop_for_run()


wildcard_constraints:
    night=r"[0-9]{8}",
    frame=r"[A-Za-z0-9._+-]+",
    kind=r"bias|dark|flat|skydark",
    setup=r"[A-Za-z0-9._+-]+",


def out(product, **wildcards):
    """Path of a data product under the results folder (wildcards left open if not given)."""
    pattern = layout.PATTERNS[product]
    return os.path.join(RESULTS, pattern.format(**wildcards) if wildcards else pattern)


#: The export step's files (none when there is nothing to export).
EXPORTS = [
    out("export", name=n)
    for n in layout.export_names(
        config["export"]["formats"], config["export"]["catalog"], bool(config["targets"])
    )
]


@lru_cache(maxsize=4)
def _read_plan(path, mtime):
    return io.read_json(path)


def plan():
    """The season's plan (fieldphot.season): once its checkpoint has run, or, in a night's
    run, as the season run wrote it."""
    path = out("plan") if NIGHT else checkpoints.plan.get().output[0]
    return _read_plan(path, os.path.getmtime(path))


def season_level():
    """True when this run's jobs are nights (season.level; auto: when there are several)."""
    return not NIGHT and season.nights_are_jobs(config["season"]["level"], len(plan()["nights"]))


def nights():
    """The nights this run covers (season.nights restricts them)."""
    if NIGHT:
        return [NIGHT]
    chosen = {str(n) for n in config["season"]["nights"]}
    return [n for n in plan()["nights"] if not chosen or n in chosen]


def _slices():
    """The slices of the manifest this run reads, with their mtimes: the key of every table
    cached from them."""
    paths = [out("night_slice", night=n) for n in nights()]
    return tuple((p, os.path.getmtime(p)) for p in paths)


def named_inputs(wildcards, input):
    """The job's inputs by name, as JSON, for the step command (see step_command())."""
    return json.dumps(dict(input.items()))


@lru_cache(maxsize=4)
def _science_table(slices):
    """The science frames of this run's nights, each with its anchor, field and reference
    flag (fieldphot.steps.science_table, in the plan's slices)."""
    if not slices:
        return pd.DataFrame(columns=["night", "frame", *steps.WIRING_COLUMNS])
    return pd.concat([io.read_table(p)[0] for p, _ in slices], ignore_index=True)


def science_frames():
    return _science_table(_slices())


@lru_cache(maxsize=4)
def _frame_rows(slices):
    """Each science frame's row as plain values, by (night, frame): one lookup per job."""
    sci = _science_table(slices)
    return {(r["night"], r["frame"]): season.plain(r) for r in sci.to_dict("records")}


def frame_row(wildcards):
    """The frame's manifest row (with its anchor and field), as plain values."""
    row = _frame_rows(_slices()).get((wildcards.night, wildcards.frame))
    if row is None:
        raise ValueError(f"no science frame {wildcards.night}/{wildcards.frame} in the manifest")
    return row


def step_inputs(name):
    """Input function of per-frame step ``name``: its files by name (fieldphot.steps)."""
    return lambda wildcards: steps.frame_inputs(name, frame_row(wildcards), RESULTS)


def step_params(name):
    """Params of per-frame step ``name``: exactly what it reads, as JSON (the same text for
    every frame unless the step reads the frame's manifest row)."""
    if not steps.STEPS[name].row:
        return json.dumps(steps.frame_params(name, config))
    return lambda wildcards: json.dumps(steps.frame_params(name, config, frame_row(wildcards)))


def starlist_rows(wildcards):
    """The manifest rows of the field's reference frames, in time order."""
    return plan()["fields"].get(f"{wildcards.night}/{wildcards.frame}", [])


def starlist_inputs(wildcards):
    """The reference catalog, and the reference frames' raw files and masters."""
    rows = starlist_rows(wildcards)
    masters = {r[f"{k}_master"] for r in rows for k in ("bias", "dark", "flat")} - {"", None}
    return {
        "refcat": out("refcat"),
        "raw": [r["path"] for r in rows],
        "masters": [os.path.join(RESULTS, m) for m in sorted(masters)],
    }


def master_info(wildcards):
    """The plan's entry of a master: its input frames (and their rows) and masters."""
    info = plan()["masters"].get(mf.master_path(wildcards.night, wildcards.kind, wildcards.setup))
    if info is None:
        raise ValueError(f"no raw {wildcards.kind} frames for {wildcards.night}/{wildcards.setup}")
    return info


def master_inputs(wildcards):
    info = master_info(wildcards)
    inputs = {"frames": list(info["inputs"])}
    for kind in ("bias", "dark", "flat"):
        if info[f"{kind}_master"]:
            inputs[kind] = os.path.join(RESULTS, info[f"{kind}_master"])
    return inputs


def master_rows(wildcards):
    return master_info(wildcards)["rows"]


def refcat_input(wildcards):
    """The local catalog file, or the manifest (the fields to query) when there is none."""
    return config["reference_catalog"]["path"] or out("manifest")


def all_catalogs(wildcards):
    """Every catalog: at the season level, the night jobs' records naming them."""
    return night_runs() if season_level() else per_frame("catalogs")


def all_calibrated(wildcards):
    return night_runs() if season_level() else per_frame("calibrated")


def night_runs():
    """The season's night jobs (their records)."""
    return [out("night_run", night=n) for n in nights()]


def night_inputs(wildcards):
    """What a night's run reads from the season: its slice of the manifest, the masters
    and star lists its frames use, and the reference catalog."""
    info = plan()["nights"][wildcards.night]
    return {
        "slice": out("night_slice", night=wildcards.night),
        "masters": [os.path.join(RESULTS, m) for m in info["masters"]],
        "starlists": [out("starlist", **layout.field_wildcards(f)) for f in info["fields"]],
        "refcat": out("refcat"),
    }


def night_runtime(wildcards):
    """Minutes of wall time a night job asks for: season.minutes_per_frame per frame."""
    frames = plan()["nights"][wildcards.night]["frames"]
    return 10 + math.ceil(config["season"]["minutes_per_frame"] * frames)


def night_catalogs(wildcards):
    """The catalogs of one night's science frames."""
    sci = science_frames()
    frames = sci.loc[sci["night"].astype(str) == wildcards.night, "frame"]
    return [out("catalogs", night=wildcards.night, frame=f) for f in frames]


def all_nights(wildcards):
    """Every night's part of the long light-curve table (at the season level, the night
    jobs' records naming it)."""
    if season_level():
        return night_runs()
    return [out("night_lightcurves", night=n) for n in nights()]


def season_products(wildcards):
    """What crosses nights (summary, frames table, report pages, targets, exports): not
    made by a night's run, nor by a run restricted to some nights (season.nights)."""
    if NIGHT or config["season"]["nights"]:
        return []
    return [
        out("summary"),
        out("frames"),
        out("report_diagnostics"),
        out("report_landing"),
        *TARGET_FILES,
        *EXPORTS,
    ]


def landing_page():
    """The front page of ``snakemake --report``: the night's summary the report pages
    wrote, or, before they exist, a page saying so."""
    page = os.path.abspath(out("report_landing"))
    return page if os.path.exists(page) else "workflow/report/landing.rst"


#: The forced targets' light-curve files (ECSV time series, plot, AAVSO report).
TARGET_FILES = [
    os.path.join(RESULTS, p)
    for p in layout.target_files(
        [t["name"] for t in config["targets"]], [t["name"] for t in steps.moving_targets(config)]
    )
]


def per_frame(*products):
    """Paths of the given per-frame products for every science frame."""
    frames = science_frames()[["night", "frame"]].itertuples(index=False)
    return [out(p, night=n, frame=f) for n, f in frames for p in products]


def frame_images(wildcards):
    """Every frame's diagnostic image, with ``debug: true`` (a night job draws its own)."""
    return per_frame("frame_image") if config["debug"] and not season_level() else []


def all_products(wildcards):
    """Every data product: a deleted one is rebuilt, with exactly what depends on it (at
    the season level, by its night's job when the night is rechecked)."""
    return [] if season_level() else per_frame(*layout.PER_FRAME)
