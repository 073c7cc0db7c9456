"""Snakemake adapter: standardize the local reference catalog."""

from fieldphot import stages

sm = snakemake  # noqa: F821
with stages.logged(sm.log[0]):
    stages.refcat_file(sm.input[0], sm.output[0], sm.params.cfg)
