"""Snakemake adapter: zeropoint and calibrated magnitudes of one frame."""

from fieldphot import stages

sm = snakemake  # noqa: F821
with stages.logged(sm.log[0]):
    stages.zeropoint(sm.input[0], sm.output[0], sm.params.cfg)
