# A season's night: one job running the per-frame workflow of that night alone (a nested
# Snakemake run with config night=<night>, reading its slice of the manifest). A change
# of a per-frame setting reruns every night's job, and inside each only what it changed.
rule night:
    input:
        unpack(night_inputs),
    output:
        out("night_run"),
    params:
        step=steps.night_params(config),
        snakefile=os.path.realpath(workflow.main_snakefile),
    threads: workflow.cores
    resources:
        runtime=night_runtime,
    conda:
        "../../envs/fieldphot.yaml"
    log:
        run="logs/night/{night}.log",
        nested="logs/night/{night}.snakemake.log",
    script:
        os.path.join(SCRIPTS, "night.py")


# All nights: per-star summary, frames table, rms-magnitude diagram, targets' light curves
# (a new night adds one night_lightcurves job; the other nights are not redone).
rule lightcurves:
    input:
        all_nights,
    output:
        summary=out("summary"),
        frames=out("frames"),
        plot=report(out("rms_plot"), caption="../report/rms_mag.rst", category="Light curves"),
        targets=TARGET_FILES,
    params:
        cfg=steps.reads("lightcurves", config),
        names=[t["name"] for t in config["targets"]],
        moving=steps.moving_targets(config),
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/lightcurves/lightcurves.log",
    script:
        os.path.join(SCRIPTS, "lightcurves.py")


# All frames: the report's own pages (snakemake --report collects them with the rms plot).
rule report_pages:
    input:
        out("frames"),
        manifest=out("manifest"),
        nights=all_nights,
        catalogs=all_catalogs,
        calibrated=all_calibrated,
    output:
        diagnostics=report(
            out("report_diagnostics"), caption="../report/diagnostics.rst", category="Frames"
        ),
        problems=report(
            out("report_problems"), caption="../report/problems.rst", category="Frames"
        ),
        targets=report(
            out("report_targets"), caption="../report/targets.rst", category="Light curves"
        ),
        comparisons=report(
            out("report_comparisons"), caption="../report/comparisons.rst", category="Light curves"
        ),
        field=report(out("report_field"), caption="../report/field.rst", category="Light curves"),
        landing=out("report_landing"),
    params:
        results=lambda wildcards, input: os.path.dirname(input.manifest),
        run_cmd=RUN_COMMAND,
        excluded=config["exclude_frames"],
        targets=config["targets"],
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/report/report_pages.log",
    script:
        os.path.join(SCRIPTS, "report_pages.py")


# All frames: the calibrated catalogs (and the targets' GCN table) in the config's formats.
# (No rule when there is nothing to export.)
if EXPORTS:
    rule export:
        input:
            all_catalogs,
        output:
            EXPORTS,
        params:
            cfg=steps.reads("export", config),
            targets=bool(config["targets"]),
        conda:
            "../../envs/fieldphot.yaml"
        log:
            "logs/export/export.log",
        script:
            os.path.join(SCRIPTS, "export.py")


# The season's own steps are cheap: on a cluster they run in the season's process.
localrules:
    plan,
