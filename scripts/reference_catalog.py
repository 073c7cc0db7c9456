"""Snakemake adapter: the reference catalog (local file, or VizieR through the cache).

How the catalogs are fetched (server, timeout, retries, cache folder) is read from the
config, not the rule's params: changing it reruns nothing (fieldphot.steps.TRANSPORT)."""

from fieldphot import stages, steps

sm = snakemake  # noqa: F821
with stages.logged(sm.log[0]):
    stages.reference_catalog(sm.input[0], sm.output[0], sm.params.cfg, steps.transport(sm.config))
