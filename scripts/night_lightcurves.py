"""Snakemake adapter: one night's part of the long light-curve table."""

from fieldphot import stages

sm = snakemake  # noqa: F821
with stages.logged(sm.log[0]):
    stages.night_light_curves(list(sm.input), sm.output[0], sm.params.cfg, sm.params.targets)
