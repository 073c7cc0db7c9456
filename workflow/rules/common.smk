# Shared helpers: output paths, the manifest (a checkpoint) and input functions.
import math
import os
from functools import lru_cache

import pandas as pd

from fieldphot import layout
from fieldphot import manifest as mf
from fieldphot.runner import raw_files

RESULTS = config["results_dir"]
SCRIPTS = os.path.join(workflow.basedir, "scripts")


wildcard_constraints:
    night=r"[0-9]{8}",
    frame=r"[A-Za-z0-9._+-]+",
    kind=r"bias|dark|flat|skydark",
    setup=r"[A-Za-z0-9._+-]+",


def out(product, **wildcards):
    """Path of a data product under the results folder (wildcards left open if not given)."""
    pattern = layout.PATTERNS[product]
    return os.path.join(RESULTS, pattern.format(**wildcards) if wildcards else pattern)


#: The export step's files (none when there is nothing to export).
EXPORTS = [
    out("export", name=n)
    for n in layout.export_names(
        config["export"]["formats"], config["export"]["catalog"], bool(config["targets"])
    )
]


@lru_cache(maxsize=4)
def _read_manifest(path, mtime):
    return pd.read_parquet(path)


def manifest():
    """The manifest table, once the manifest checkpoint has run."""
    path = checkpoints.manifest.get().output[0]
    return _read_manifest(path, os.path.getmtime(path))


def _plain(row):
    """A manifest row as a dict of plain values (NaN -> None) for params."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def science_frames():
    return _science(manifest())


def _science(m):
    excluded = set(config.get("exclude_frames", []))
    sel = (m["kind"] == "science") & (m["status"] == "ok") & ~m["frame"].isin(excluded)
    return m[sel]


@lru_cache(maxsize=4)
def _anchors(path, mtime):
    sci = _science(_read_manifest(path, mtime))
    anchors = mf.pointing_anchors(sci, config["solve"]["same_pointing_arcmin"])
    return dict(zip(zip(sci["night"], sci["frame"]), anchors))


def solve_inputs(wildcards):
    """The frame's products, and the astrometry of the first frame of its pointing."""
    night, frame = wildcards.night, wildcards.frame
    inputs = {
        "calibrated": out("calibrated", night=night, frame=frame),
        "sources": out("sources", night=night, frame=frame),
        "refcat": out("refcat"),
    }
    path = checkpoints.manifest.get().output[0]
    anchor = _anchors(path, os.path.getmtime(path)).get((night, frame))
    if anchor and anchor != frame:
        inputs["neighbour"] = out("astrometry", night=night, frame=anchor)
    return inputs


def frame_row(wildcards):
    m = manifest()
    row = m[(m["frame"] == wildcards.frame) & (m["night"] == wildcards.night)]
    if row.empty:
        raise ValueError(f"no science frame {wildcards.night}/{wildcards.frame} in the manifest")
    return _plain(row.iloc[0].to_dict())



def calibrate_inputs(wildcards):
    row = frame_row(wildcards)
    inputs = {"raw": row["path"]}
    for kind in ("bias", "dark", "flat"):
        if row[f"{kind}_master"]:
            inputs[kind] = os.path.join(RESULTS, row[f"{kind}_master"])
    return inputs


def master_info(wildcards):
    t = mf.masters_table(manifest())
    sel = t[(t["night"] == wildcards.night) & (t["kind"] == wildcards.kind)
            & (t["setup"] == wildcards.setup)]
    if sel.empty:
        raise ValueError(f"no raw {wildcards.kind} frames for {wildcards.night}/{wildcards.setup}")
    return sel.iloc[0]


def master_inputs(wildcards):
    info = master_info(wildcards)
    inputs = {"frames": list(info["inputs"])}
    for kind in ("bias", "dark", "flat"):
        if info[f"{kind}_master"]:
            inputs[kind] = os.path.join(RESULTS, info[f"{kind}_master"])
    return inputs


def master_rows(wildcards):
    m = manifest()
    rows = m[m["path"].isin(master_info(wildcards)["inputs"])]
    return [_plain(r) for r in rows.to_dict("records")]


def refcat_input(wildcards):
    """The local catalog file, or the manifest (the fields to query) when there is none."""
    return config["reference_catalog"]["path"] or out("manifest")


def all_catalogs(wildcards):
    return per_frame("catalogs")


def per_frame(*products):
    """Paths of the given per-frame products for every science frame."""
    frames = science_frames()[["night", "frame"]].itertuples(index=False)
    return [out(p, night=n, frame=f) for n, f in frames for p in products]


def all_products(wildcards):
    """Every data product: a deleted one is rebuilt, with exactly what depends on it."""
    return per_frame(*layout.PER_FRAME)
