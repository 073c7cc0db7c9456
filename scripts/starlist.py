"""Snakemake adapter: a field's master star list (reference catalog plus deep sources)."""

from fieldphot import stages

sm = snakemake  # noqa: F821
with stages.logged(sm.log[0]):
    stages.starlist(sm.input.refcat, sm.params.rows, sm.output[0], **sm.params.step)
