"""The table of per-frame steps: each declared once, with its named inputs, the config it
reads and its function.

The Snakemake rules (``workflow/rules/frames.smk``), the warm worker's dispatch
(:mod:`fieldphot.worker`), the plain-loop runner (:mod:`fieldphot.runner`) and the star
list's own calibration of its reference frames (:func:`fieldphot.stages.starlist`) are all
built from :data:`STEPS`:

- :func:`frame_inputs` finds a step's input files for one frame (a manifest row with the
  ``anchor`` and ``field`` columns of :func:`fieldphot.manifest.pointing_anchors` and
  :func:`fieldphot.starlist.fields`); each input is the keyword argument of the same name.
- :func:`frame_params` takes exactly what the step reads from the validated config (a
  rule's params, so that changing anything else reruns nothing).
- :func:`run` calls the step's function with both, by name.

Examples
--------
>>> row = {"night": "20240314", "frame": "f002", "path": "raw/f002.fits", "anchor": "f001",
...        "field": "20240314/f001", "bias_master": "masters/20240314/bias_1x1.fits",
...        "dark_master": "", "flat_master": ""}
>>> frame_inputs("calibrate", row, "results")
{'raw': 'raw/f002.fits', 'bias': 'results/masters/20240314/bias_1x1.fits'}
>>> frame_inputs("solve", row, "results")["neighbour"]
'results/astrometry/20240314/f001.parquet'
>>> frame_inputs("photometer", row, "results")["starlist"]
'results/starlist/20240314/f001.parquet'
>>> from fieldphot import config
>>> sorted(frame_params("extract", config.with_defaults({"raw_dir": "raw"}))["cfg"])
['background_box', 'minarea', 'thresh']
"""

import importlib
import os
from dataclasses import dataclass

import pandas as pd

from . import ephemeris, layout
from . import manifest as mf
from . import starlist as sl


@dataclass(frozen=True)
class Step:
    """One per-frame step.

    Attributes
    ----------
    function : str
        Its function in :mod:`fieldphot.stages`, called as
        ``function(**inputs, out=output, **params)``.
    output : str
        The :data:`fieldphot.layout.PATTERNS` product it writes.
    inputs : tuple of str
        Its named inputs (see :func:`frame_inputs`); an input a frame does not have
        (no bias master, no neighbour) is left out and the function's default applies.
    section : str or None
        The config section it reads, as its ``cfg`` argument ...
    keys : tuple of str
        ... of which exactly these keys.
    row : bool
        It reads the frame's manifest row (argument ``row``).
    targets : bool
        It reads the forced targets' names and positions (argument ``targets``).
    """

    function: str
    output: str
    inputs: tuple[str, ...]
    section: str | None = None
    keys: tuple[str, ...] = ()
    row: bool = False
    targets: bool = False


STEPS = {
    "calibrate": Step(
        "calibrate",
        "calibrated",
        ("raw", "bias", "dark", "flat"),
        "calibration",
        ("overscan", "nonlinearity_adu", "cosmic_rays"),
        row=True,
    ),
    "extract": Step(
        "extract", "sources", ("calibrated",), "extract", ("thresh", "minarea", "background_box")
    ),
    "solve": Step(
        "solve",
        "astrometry",
        ("calibrated", "sources", "refcat", "neighbour"),
        "solve",
        (
            "relative",
            "search_radius_arcsec",
            "min_search_px",
            "match_radius_px",
            "n_bright",
            "min_matches",
            "sip_degree",
            "sip_max_degree",
            "sip_min_matches",
            "clip_sigma",
            "max_rms_arcsec",
            "max_rms_px",
            "min_snr",
            "methods",
            "keep_header_rms_arcsec",
            "neighbour_radius_arcsec",
            "pixel_scale",
            "pointing_error",
            "scale_error",
            "asterism",
            "astrometry_net",
        ),
    ),
    "photometer": Step(
        "photometer",
        "photometry",
        ("calibrated", "astrometry", "starlist", "sources"),
        "photometry",
        (
            "mode",
            "aperture_fwhm",
            "radius_px",
            "min_radius",
            "growth_fwhm",
            "keep_apertures",
            "annulus_fwhm",
            "apcor_fwhm",
            "apcor_min_snr",
            "fwhm_default",
            "blend_fraction",
            "min_snr",
            "detect_snr",
            "limit_sigma",
            "recenter_fwhm",
            "blank_apertures",
            "scintillation",
        ),
        targets=True,
    ),
    "zeropoint": Step(
        "zeropoint",
        "catalogs",
        ("photometry",),
        "zeropoint",
        (
            "min_snr",
            "max_catalog_err",
            "clip_sigma",
            "min_stars",
            "color_term",
            "spatial_order",
            "extinction",
        ),
    ),
    "frame_image": Step(
        "frame_image", "frame_image", ("calibrated", "sources", "astrometry", "photometry")
    ),
}

#: A frame's steps, in order; each one's product can stand for a failed frame
#: (:func:`fieldphot.stages.failed_step`).
FRAME = ("calibrate", "extract", "solve", "photometer", "zeropoint")

#: What each of the other steps reads of its config section (its ``cfg`` argument). Left
#: out: settings of how, not what (``calibration.combine_memory_mb``, the master's memory
#: budget; :data:`TRANSPORT`, how the catalogs are fetched: read from the config) and
#: the wiring's own (``starlist.frames``, ``solve.same_pointing_arcmin``: which files are
#: a step's inputs). A change of anything else reruns the steps that read it.
READS = {
    "master": (
        "calibration",
        ("overscan", "nonlinearity_adu", "combine_sigma", "sky_dark_box", "hot_pixel_nsigma"),
    ),
    "reference_catalog": (
        "reference_catalog",
        (
            "path",
            "magnitude_system",
            "columns",
            "catalogs",
            "band",
            "color",
            "mag_limit",
            "radius_deg",
        ),
    ),
    "starlist": (
        "starlist",
        ("thresh", "minarea", "min_snr", "max_elongation", "background_box"),
    ),
    "night_lightcurves": (
        "lightcurves",
        (
            "ensemble_order",
            "comparison_ids",
            "comparison_min_snr",
            "variable_factor",
            "poor_frame_factor",
            "nonlinear_fraction",
            "detrend",
        ),
    ),
    "lightcurves": (
        "lightcurves",
        (
            "periodograms",
            "bls",
            "max_frequencies",
            "min_period_d",
            "aavso_obscode",
            "rotation_period_h",
            "fourier_order",
            "observer",
        ),
    ),
    "export": ("export", ("formats", "catalog", "t0_mjd")),
}

#: How the reference catalog is fetched and cached, not what it holds: read by the
#: reference_catalog step from the config, not a param (a longer timeout reruns nothing).
TRANSPORT = ("vizier_server", "timeout_s", "retries", "backoff_s", "cache_dir")

#: Manifest columns the wiring adds (not part of a step's ``row``).
WIRING_COLUMNS = ("anchor", "field", "reference")


def science_table(manifest: pd.DataFrame, config: dict) -> pd.DataFrame:
    """The science frames a run measures (:func:`fieldphot.manifest.science_frames`),
    each with its pointing's ``anchor`` (:func:`fieldphot.manifest.pointing_anchors`), its
    ``field`` and whether it is one of the field's ``reference`` frames
    (:func:`fieldphot.starlist.fields`)."""
    sci = mf.science_frames(manifest, config["exclude_frames"])
    tolerance = config["solve"]["same_pointing_arcmin"]
    sci = sci.assign(anchor=mf.pointing_anchors(sci, tolerance))
    return sci.join(sl.fields(sci, config["starlist"]["frames"], tolerance))


def frame_output(name: str, row, results) -> str:
    """The file step ``name`` writes for the frame of manifest ``row``."""
    product = STEPS[name].output
    return os.path.join(results, layout.path(product, night=row["night"], frame=row["frame"]))


def frame_inputs(name: str, row, results, products=None) -> dict[str, str]:
    """Step ``name``'s input files for the frame of manifest ``row``, by name.

    The frame's own products (and its pointing's ``anchor`` astrometry, the ``neighbour``)
    are under ``products`` (default ``results``); the masters, the reference catalog and
    the field's star list under ``results``. The photometer measures the star list of the
    row's ``field`` (``night/frame``; its own when the row has none).
    """
    products = results if products is None else products
    night, frame = row["night"], row["frame"]

    def own(product, of=frame):
        return os.path.join(products, layout.path(product, night=night, frame=of))

    anchor = row.get("anchor") or frame
    field = layout.field_wildcards(row.get("field") or f"{night}/{frame}")
    bias, dark, flat = layout.masters(row, results) if "bias_master" in row else ("", "", "")
    found = {
        "raw": str(row.get("path", "")),
        "bias": bias,
        "dark": dark,
        "flat": flat,
        "refcat": os.path.join(results, layout.path("refcat")),
        "neighbour": own("astrometry", anchor) if anchor != frame else "",
        "starlist": os.path.join(results, layout.path("starlist", **field)),
        **{p: own(p) for p in ("calibrated", "sources", "astrometry", "photometry")},
    }
    return {k: found[k] for k in STEPS[name].inputs if found[k]}


def frame_params(name: str, config: dict, row=None) -> dict:
    """What step ``name`` reads of the validated ``config`` (and of the frame's manifest
    ``row``, when given and the step reads one), as its keyword arguments."""
    step = STEPS[name]
    params = {}
    if step.section:
        params["cfg"] = {k: config[step.section][k] for k in step.keys}
    if step.targets:
        params["targets"] = target_positions(config)
    return _with_row(name, params, row)


def reads(name: str, config: dict) -> dict:
    """What step ``name`` (of :data:`READS`) reads of its config section.

    Examples
    --------
    >>> from fieldphot import config
    >>> reads("lightcurves", config.with_defaults({"raw_dir": "raw"}))["aavso_obscode"]
    ''
    """
    section, keys = READS[name]
    return {k: config[section][k] for k in keys}


def transport(config: dict) -> dict:
    """The :data:`TRANSPORT` settings of config ``reference_catalog``."""
    return {k: config["reference_catalog"][k] for k in TRANSPORT}


def master_params(config: dict) -> dict:
    """The master step's config and memory (:func:`fieldphot.stages.master`)."""
    return {
        "cfg": reads("master", config),
        "memory_mb": config["calibration"]["combine_memory_mb"],
    }


#: What the photometer reads of a moving target (:func:`fieldphot.ephemeris.at`).
MOTION = ("ra", "dec", "epoch_jd", "rate_ra", "rate_dec", "ephemeris", "horizons", "location")


def target_positions(config: dict) -> list[dict]:
    """The forced targets as the photometer reads them: a fixed one's name and position,
    a moving one's name and motion (with where a Horizons ephemeris is fetched and kept).

    Examples
    --------
    >>> from fieldphot import config
    >>> cfg = config.with_defaults({"raw_dir": "raw", "targets": [
    ...     {"name": "V1", "ra": 10.0, "dec": 5.0, "t0_bjd": 2460000.1, "duration_h": 2.0},
    ...     {"name": "433", "horizons": "433", "number": 433}]})
    >>> target_positions(cfg)[0], sorted(target_positions(cfg)[1])
    ({'name': 'V1', 'ra': 10.0, 'dec': 5.0}, ['cache_dir', 'horizons', 'name', 'server'])
    """
    out = []
    for t in config["targets"]:
        if not ephemeris.is_moving(t):
            out.append({k: t[k] for k in ("name", "ra", "dec")})
            continue
        motion = {"name": t["name"], **{k: t[k] for k in MOTION if k in t}}
        if "horizons" in t:
            motion["cache_dir"] = config["ephemeris"]["cache_dir"]
            motion["server"] = config["ephemeris"]["horizons_server"]
        out.append(motion)
    return out


def moving_targets(config: dict) -> list[dict]:
    """The moving targets as their light-curve products read them: their motion
    (:func:`target_positions`) and their minor-planet ``number`` where given."""
    return [
        {**p, **({"number": t["number"]} if "number" in t else {})}
        for p, t in zip(target_positions(config), config["targets"], strict=True)
        if ephemeris.is_moving(t)
    ]


def starlist_params(config: dict) -> dict:
    """The star-list step's params: its config, the targets' positions, and the params of
    the steps it runs on the field's reference frames (calibrate, extract, solve)."""
    return {
        "cfg": reads("starlist", config),
        "frame_params": {n: frame_params(n, config) for n in ("calibrate", "extract", "solve")},
        "targets": [t for t in target_positions(config) if not ephemeris.is_moving(t)],
    }


def plan_params(config: dict) -> dict:
    """What the season's plan (:func:`fieldphot.season.plan`) reads of the config: the
    frames excluded and the wiring (the frames of one pointing, a field's reference
    frames), in the config's own shape.

    Examples
    --------
    >>> from fieldphot import config
    >>> plan_params(config.with_defaults({"raw_dir": "raw"}))["starlist"]
    {'frames': 5}
    """
    return {
        "exclude_frames": config["exclude_frames"],
        "solve": {"same_pointing_arcmin": config["solve"]["same_pointing_arcmin"]},
        "starlist": {"frames": config["starlist"]["frames"]},
    }


def night_params(config: dict) -> dict:
    """What a season's night job runs with: the params of every per-frame step (and of
    the frame images, with ``debug``) and of the night's light curves. A change of any
    reruns every night's job, and inside each only the steps it changed."""
    names = [*FRAME, *(["frame_image"] if config["debug"] else [])]
    return {
        "steps": {n: frame_params(n, config) for n in names},
        "night_lightcurves": reads("night_lightcurves", config),
        "targets": config["targets"],
    }


def _with_row(name, params: dict, row) -> dict:
    if not STEPS[name].row or row is None:
        return params
    return {**params, "row": {k: v for k, v in row.items() if k not in WIRING_COLUMNS}}


def run(name: str, inputs: dict, output, params: dict) -> None:
    """Run step ``name`` on its named ``inputs`` with its ``params`` (:func:`frame_params`),
    writing ``output``."""
    stages = importlib.import_module(".stages", __package__)
    getattr(stages, STEPS[name].function)(**inputs, out=output, **params)


def run_frame(row, results, params: dict, names=FRAME, products=None, step=run) -> None:
    """Run the steps ``names`` of the frame of manifest ``row``, in order, each with its
    ``params[name]`` (:func:`frame_params` without a row: the row is added here) by
    ``step`` (:func:`run`, or :func:`fieldphot.stages.run_frame_step` to flag a frame a
    step fails on and go on); ``products``: see :func:`frame_inputs`."""
    products = results if products is None else products
    for name in names:
        step(
            name,
            frame_inputs(name, row, results, products),
            frame_output(name, row, products),
            _with_row(name, params[name], row),
        )
