"""Snakemake adapter: calibrate one science frame."""

from fieldphot import stages

sm = snakemake  # noqa: F821
with stages.logged(sm.log[0]):
    stages.calibrate(
        sm.input.raw,
        sm.params.row,
        sm.input.get("bias", ""),
        sm.input.get("dark", ""),
        sm.input.get("flat", ""),
        sm.output[0],
        sm.params.cfg,
    )
