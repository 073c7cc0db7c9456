# Classify every raw frame from its header (a checkpoint: the frames are known after it).
checkpoint manifest:
    input:
        raw=RAW_FILES,
        profile=INSTRUMENT_PROFILE,
    output:
        out("manifest"),
    params:
        observatory=config["observatory"],
        sky_dark_min_frames=config["calibration"]["sky_dark_min_frames"],
        raw_dir=config["raw_dir"],
        raw_state=mf.raw_state(RAW_FILES),
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/manifest/manifest.log",
    script:
        os.path.join(SCRIPTS, "manifest.py")


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
