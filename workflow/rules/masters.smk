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
