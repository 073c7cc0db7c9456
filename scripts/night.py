"""Snakemake adapter: a season's night job, the nested run of one night's frames."""

from fieldphot import season, stages

sm = snakemake  # noqa: F821
with stages.logged(sm.log.run):
    stages.night_run(
        sm.input.slice,
        sm.output[0],
        season.night_config(sm.config, sm.wildcards.night),
        sm.params.snakefile,
        sm.threads,
        sm.log.nested,
    )
