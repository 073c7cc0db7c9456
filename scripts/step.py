"""Snakemake adapter: one per-frame step, run by the warm worker when there is one.

step.py NAME LOG THREADS INPUTS OUTPUT PARAMS   (see fieldphot.worker)
"""

import sys

from fieldphot import client

sys.exit(client.submit(sys.argv[1:]))
