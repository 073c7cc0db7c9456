"""Snakemake adapter: the season's plan and each night's slice of the manifest."""

from fieldphot import stages

sm = snakemake  # noqa: F821
with stages.logged(sm.log[0]):
    stages.plan(sm.input[0], sm.output[0], sm.params.cfg)
