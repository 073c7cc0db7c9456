"""Snakemake adapter: extract sources from one calibrated frame."""

from fieldphot import stages

sm = snakemake  # noqa: F821
with stages.logged(sm.log[0]):
    stages.extract(sm.input[0], sm.output[0], sm.params.cfg)
