"""Snakemake adapter: the report's pages (diagnostics, failed/flagged frames, targets,
comparison stars, field)."""

from fieldphot import stages

sm = snakemake  # noqa: F821
with stages.logged(sm.log[0]):
    stages.report_pages(
        sm.params.results,
        stages.night_products(sm.input.nights, "night_lightcurves"),
        {name: getattr(sm.output, name) for name in stages.REPORT_PAGES},
        sm.params.run_cmd,
        sm.params.excluded,
        sm.params.targets,
    )
