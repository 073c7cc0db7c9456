# Per science frame: calibrate -> extract -> solve -> photometer -> zeropoint.
rule calibrate:
    input:
        unpack(calibrate_inputs),
    output:
        out("calibrated"),
    params:
        cfg=config["calibration"],
        row=frame_row,
    threads: 1
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/calibrate/{night}/{frame}.log",
    script:
        os.path.join(SCRIPTS, "calibrate.py")


rule extract:
    input:
        out("calibrated"),
    output:
        out("sources"),
    params:
        cfg=config["extract"],
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/extract/{night}/{frame}.log",
    script:
        os.path.join(SCRIPTS, "extract.py")


rule solve:
    input:
        unpack(solve_inputs),
    output:
        out("astrometry"),
    params:
        cfg=config["solve"],
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/solve/{night}/{frame}.log",
    script:
        os.path.join(SCRIPTS, "solve.py")


rule photometer:
    input:
        calibrated=out("calibrated"),
        sources=out("sources"),
        astrometry=out("astrometry"),
        refcat=out("refcat"),
    output:
        out("photometry"),
    params:
        cfg=config["photometry"],
        targets=config["targets"],
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/photometer/{night}/{frame}.log",
    script:
        os.path.join(SCRIPTS, "photometer.py")


rule zeropoint:
    input:
        out("photometry"),
    output:
        out("catalogs"),
    params:
        cfg=config["zeropoint"],
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/zeropoint/{night}/{frame}.log",
    script:
        os.path.join(SCRIPTS, "zeropoint.py")
