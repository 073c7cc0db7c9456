# Per science frame: calibrate -> extract -> solve -> photometer -> zeropoint, one rule per
# step of the table fieldphot.steps.STEPS, which declares each step's named inputs, the
# config it reads (the rule's params) and its function. The command (step_command() in
# common.smk) runs the step in the run's warm worker when there is one.
for _name in steps.FRAME:

    rule:
        name:
            _name
        input:
            unpack(step_inputs(_name)),
        output:
            out(steps.STEPS[_name].output),
        params:
            name=_name,
            inputs=named_inputs,
            step=step_params(_name),
        conda:
            "../../envs/fieldphot.yaml"
        log:
            f"logs/{_name}/{{night}}/{{frame}}.log",
        shell:
            step_command()


# With `debug: true`: each frame drawn with its detected, matched and target sources.
rule frame_image:
    input:
        unpack(step_inputs("frame_image")),
    output:
        report(
            out("frame_image"),
            caption="../report/frame_image.rst",
            category="Frame images",
        ),
    params:
        name="frame_image",
        inputs=named_inputs,
        step=step_params("frame_image"),
    conda:
        "../../envs/fieldphot.yaml"
    log:
        "logs/frame_image/{night}/{frame}.log",
    shell:
        step_command()
