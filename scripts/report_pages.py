"""Snakemake adapter: the report's pages (diagnostics, failed/flagged frames, targets)."""

from fieldphot import stages

sm = snakemake  # noqa: F821
with stages.logged(sm.log[0]):
    stages.report_pages(
        sm.params.results,
        list(sm.input.nights),
        sm.output.diagnostics,
        sm.output.problems,
        sm.output.targets,
        sm.params.run_cmd,
        sm.params.excluded,
    )
