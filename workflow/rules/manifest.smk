# Classify every raw frame from its header. Its input is the raw folder: a frame added,
# removed or rewritten changes raw_state (each file's size, times and inode), which remakes
# it; Snakemake is not handed every raw file (100,000 of them cost the season's plan 10 s).
rule manifest:
    input:
        raw=config["raw_dir"],
        profile=INSTRUMENT_PROFILE,
    output:
        out("manifest"),
    params:
        observatory=config["observatory"],
        pointing=config["pointing"],
        sky_dark_min_frames=config["calibration"]["sky_dark_min_frames"],
        raw_state=raw_state,
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/manifest/manifest.log",
    script:
        os.path.join(SCRIPTS, "manifest.py")


# The season's plan (a checkpoint: the nights and frames are known after it): each night's
# slice of the science frames with their pointing and field, each field's reference frames,
# each master's inputs (fieldphot.season).
checkpoint plan:
    input:
        out("manifest"),
    output:
        out("plan"),
    params:
        cfg=steps.plan_params(config),
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/manifest/plan.log",
    script:
        os.path.join(SCRIPTS, "plan.py")


# The reference catalog: the local file standardized, or VizieR through the cache.
rule reference_catalog:
    input:
        refcat_input,
    output:
        out("refcat"),
    params:
        cfg=steps.reads("reference_catalog", config),
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/reference_catalog/reference_catalog.log",
    script:
        os.path.join(SCRIPTS, "reference_catalog.py")
