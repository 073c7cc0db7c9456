"""fieldphot: field-wide photometry from raw CCD/CMOS frames to light curves.

The science lives here as pure functions on arrays and tables; :mod:`fieldphot.io`
is the only module that touches disk, and :mod:`fieldphot.stages` wires the two
together for the Snakemake scripts, the benchmarks and the tests.
"""


def __getattr__(name: str):
    """``__version__``, read from the installed metadata when first asked for: reading it
    costs more than the rest of a job's client (:mod:`fieldphot.worker`) and it needs none."""
    if name != "__version__":
        raise AttributeError(f"module 'fieldphot' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("fieldphot")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        value = "0.0.0+unknown"
    globals()["__version__"] = value
    return value
