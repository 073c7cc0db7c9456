# One night: its catalogs transposed into the night's part of the long table, with
# ensemble differential photometry and (when configured) detrending.
rule night_lightcurves:
    input:
        night_catalogs,
    output:
        out("night_lightcurves"),
    params:
        cfg=steps.reads("night_lightcurves", config),
        targets=config["targets"],
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/lightcurves/{night}.log",
    script:
        os.path.join(SCRIPTS, "night_lightcurves.py")
