# Per science frame: calibrate -> extract -> solve -> photometer -> zeropoint.
# Each rule runs its step through scripts/step.py (see step() in common.smk): the params
# after `inputs` are the step's JSON arguments, in order.
rule calibrate:
    input:
        unpack(calibrate_inputs),
    output:
        out("calibrated"),
    params:
        inputs=named_inputs,
        cfg=as_json(config["calibration"]),
        row=frame_row_json,
    threads: 1
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/calibrate/{night}/{frame}.log",
    shell:
        step("calibrate") + " {params.cfg:q} {params.row:q}"


rule extract:
    input:
        calibrated=out("calibrated"),
    output:
        out("sources"),
    params:
        inputs=named_inputs,
        cfg=as_json(config["extract"]),
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/extract/{night}/{frame}.log",
    shell:
        step("extract") + " {params.cfg:q}"


rule solve:
    input:
        unpack(solve_inputs),
    output:
        out("astrometry"),
    params:
        inputs=named_inputs,
        cfg=as_json(config["solve"]),
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/solve/{night}/{frame}.log",
    shell:
        step("solve") + " {params.cfg:q}"


# Per field: the master star list, from a stack of its reference frames (calibrated,
# extracted and solved inside the job, so it never waits for another frame's jobs).
rule starlist:
    input:
        unpack(starlist_inputs),
    output:
        out("starlist"),
    params:
        rows=starlist_rows,
        cfg={k: config[k] for k in ("calibration", "extract", "solve", "starlist")},
        targets=config["targets"],
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/starlist/{night}/{frame}.log",
    script:
        os.path.join(SCRIPTS, "starlist.py")


rule photometer:
    input:
        calibrated=out("calibrated"),
        sources=out("sources"),
        astrometry=out("astrometry"),
        starlist=frame_starlist,
    output:
        out("photometry"),
    params:
        inputs=named_inputs,
        cfg=as_json(config["photometry"]),
        targets=as_json(config["targets"]),
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/photometer/{night}/{frame}.log",
    shell:
        step("photometer") + " {params.cfg:q} {params.targets:q}"


rule zeropoint:
    input:
        photometry=out("photometry"),
    output:
        out("catalogs"),
    params:
        inputs=named_inputs,
        cfg=as_json(config["zeropoint"]),
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/zeropoint/{night}/{frame}.log",
    shell:
        step("zeropoint") + " {params.cfg:q}"


# With `debug: true`: each frame drawn with its detected, matched and target sources.
rule frame_image:
    input:
        calibrated=out("calibrated"),
        sources=out("sources"),
        astrometry=out("astrometry"),
        photometry=out("photometry"),
    output:
        report(
            out("frame_image"),
            caption="../report/frame_image.rst",
            category="Frame images",
        ),
    params:
        inputs=named_inputs,
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/frame_image/{night}/{frame}.log",
    shell:
        step("frame_image")
