"""Snakemake adapter: combine raw calibration frames into a master."""

from fieldphot import stages

sm = snakemake  # noqa: F821
with stages.logged(sm.log[0]):
    stages.master(
        sm.wildcards.kind,
        sm.params.rows,
        sm.input.get("bias", ""),
        sm.input.get("dark", ""),
        sm.output[0],
        sm.params.cfg,
        sm.input.get("flat", ""),
    )
