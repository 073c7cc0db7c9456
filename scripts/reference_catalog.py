"""Snakemake adapter: the reference catalog (local file, or VizieR through the cache)."""

from fieldphot import stages

sm = snakemake  # noqa: F821
with stages.logged(sm.log[0]):
    stages.reference_catalog(sm.input[0], sm.output[0], sm.params.cfg)
