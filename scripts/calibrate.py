"""Snakemake adapter: calibrate one science frame."""

import os

sm = snakemake  # noqa: F821
# The cosmic-ray search runs on OpenMP threads; OpenMP reads this when it loads.
os.environ["OMP_NUM_THREADS"] = str(sm.threads)

from fieldphot import stages  # noqa: E402

with stages.logged(sm.log[0]) as log:
    log.info(
        "%d threads (CPUs the scheduler gave: %s)",
        sm.threads,
        os.environ.get("SLURM_CPUS_PER_TASK", "not under SLURM"),
    )
    stages.calibrate(
        sm.input.raw,
        sm.params.row,
        sm.input.get("bias", ""),
        sm.input.get("dark", ""),
        sm.input.get("flat", ""),
        sm.output[0],
        sm.params.cfg,
    )
