"""fieldphot: field-wide photometry from raw CCD/CMOS frames to light curves.

The science lives here as pure functions on arrays and tables; :mod:`fieldphot.io`
is the only module that touches disk, and :mod:`fieldphot.stages` wires the two
together for the Snakemake scripts, the benchmarks and the tests.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fieldphot")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"
