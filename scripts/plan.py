"""Snakemake adapter: the season's plan and each night's slice of the manifest."""

from fieldphot import season, stages

sm = snakemake  # noqa: F821
with stages.logged(sm.log[0]):
    season.write_plan(sm.input[0], sm.output[0], sm.params.cfg)
