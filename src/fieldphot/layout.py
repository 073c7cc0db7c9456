"""Where every data product lives (DESIGN.md, "Data products"), for the workflow and the
plain-loop runner alike. Paths are relative to the results folder.

Examples
--------
>>> path("catalogs", night="20240314", frame="f001")
'catalogs/20240314/f001.parquet'
"""

import os
import re

PATTERNS = {
    "manifest": "manifest.parquet",
    "plan": "manifest/plan.json",
    "night_slice": "manifest/nights/{night}.parquet",
    "refcat": "refcat.parquet",
    "master": "masters/{night}/{kind}_{setup}.fits",
    "calibrated": "calibrated/{night}/{frame}.fits",
    "sources": "sources/{night}/{frame}.parquet",
    "astrometry": "astrometry/{night}/{frame}.parquet",
    "starlist": "starlist/{night}/{frame}.parquet",
    "photometry": "photometry/{night}/{frame}.parquet",
    "catalogs": "catalogs/{night}/{frame}.parquet",
    "night_lightcurves": "lightcurves/nights/{night}.parquet",
    "night_run": "lightcurves/nights/{night}.json",
    "summary": "lightcurves/summary.parquet",
    "frames": "lightcurves/frames.parquet",
    "rms_plot": "lightcurves/rms_mag.png",
    "target_curve": "lightcurves/targets/{name}{suffix}",
    "export": "export/{name}",
    "report_diagnostics": "report/diagnostics.png",
    "report_problems": "report/problems.html",
    "report_targets": "report/targets.png",
    "report_comparisons": "report/comparisons.png",
    "report_field": "report/field.png",
    "report_landing": "report/landing.rst",
    "frame_image": "debug/{night}/{frame}.png",
}

PER_FRAME = ("calibrated", "sources", "astrometry", "photometry", "catalogs")


def export_names(formats, catalog: bool, targets: bool) -> list[str]:
    """File names the export step writes: ``catalog.<ext>`` per format (with ``catalog``),
    ``targets.<ext>`` per format and ``gcn.txt`` (with ``targets``).

    Examples
    --------
    >>> export_names(["csv", "fits"], catalog=True, targets=True)
    ['catalog.csv', 'catalog.fits', 'targets.csv', 'targets.fits', 'gcn.txt']
    """
    kinds = ["catalog"] * catalog + ["targets"] * targets
    return [f"{k}.{f}" for k in kinds for f in formats] + ["gcn.txt"] * targets


#: Files written per forced target (:func:`fieldphot.export.target_products`).
TARGET_SUFFIXES = (".ecsv", ".png", "_aavso.txt")


def safe_name(name: str) -> str:
    """A target name as a file name: every character but letters, digits, ``.``, ``-``
    and ``_`` replaced by ``_``.

    Examples
    --------
    >>> safe_name("TOI 1234.01/b")
    'TOI_1234.01_b'
    """
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(name)).lstrip(".") or "_"


#: Files written besides per moving target (:func:`fieldphot.export.moving_products`).
MOVING_SUFFIXES = ("_phased.png", "_alcdef.txt")


def target_files(names, moving=()) -> list[str]:
    """The per-target light-curve files of the forced targets ``names`` (of which
    ``moving`` are moving targets).

    Examples
    --------
    >>> target_files(["T 1"])[::2]
    ['lightcurves/targets/T_1.ecsv', 'lightcurves/targets/T_1_aavso.txt']
    >>> target_files(["433"], moving=["433"])[-1]
    'lightcurves/targets/433_alcdef.txt'
    """
    return [
        path("target_curve", name=safe_name(n), suffix=s)
        for n in names
        for s in TARGET_SUFFIXES + (MOVING_SUFFIXES if n in set(moving) else ())
    ]


def path(product: str, **wildcards) -> str:
    """The relative path of one product, with its wildcards filled in."""
    return PATTERNS[product].format(**wildcards)


def field_wildcards(field: str) -> dict:
    """The wildcards of a field's files (its star list): a field is named ``night/frame``
    after its first frame.

    Examples
    --------
    >>> path("starlist", **field_wildcards("20240314/f001"))
    'starlist/20240314/f001.parquet'
    """
    night, frame = field.split("/")
    return {"night": night, "frame": frame}


def masters(row, results) -> list[str]:
    """The bias, dark and flat master files of a manifest row (or a master's row) under the
    ``results`` folder, ``""`` where it has none.

    Examples
    --------
    >>> masters({"bias_master": "masters/n/bias.fits", "dark_master": "", "flat_master": ""}, "r")
    ['r/masters/n/bias.fits', '', '']
    """
    return [
        os.path.join(results, row[f"{k}_master"]) if row[f"{k}_master"] else ""
        for k in ("bias", "dark", "flat")
    ]
