# Combine raw bias, dark and flat frames into masters per night and setup.
rule master:
    input:
        unpack(master_inputs),
    output:
        out("master"),
    params:
        cfg=steps.reads("master", config),
        rows=master_rows,
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/master/{night}/{kind}_{setup}.log",
    script:
        os.path.join(SCRIPTS, "master.py")


# Per field: the master star list, from a stack of its reference frames (calibrated,
# extracted and solved inside the job by the same steps, so it never waits for another
# frame's jobs).
rule starlist:
    input:
        unpack(starlist_inputs),
    output:
        out("starlist"),
    params:
        rows=starlist_rows,
        step=steps.starlist_params(config),
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/starlist/{night}/{frame}.log",
    script:
        os.path.join(SCRIPTS, "starlist.py")
