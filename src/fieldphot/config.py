"""The workflow's config schema, read once: defaults for every key.

The same schema validates the config inside Snakemake (``snakemake.utils.validate``);
:func:`with_defaults` gives the plain-loop runner and the tests the identical defaults.

Examples
--------
>>> cfg = with_defaults({"raw_dir": "raw", "reference_catalog": {"path": "cat.parquet"}})
>>> cfg["photometry"]["aperture_fwhm"], cfg["reference_catalog"]["columns"]["ra"]
(2.0, 'ra')
"""

import copy
import difflib
from pathlib import Path

import yaml

from . import layout
from .workflow_files import SCHEMAS

SCHEMA_PATH = SCHEMAS / "config.schema.yaml"


def _fill(schema: dict, value):
    if schema.get("type") != "object":
        return value
    value = {} if value is None else value
    for key, sub in schema.get("properties", {}).items():
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
        if key in value:
            value[key] = _fill(sub, value[key])
    return value


def with_defaults(config: dict) -> dict:
    """A deep copy of ``config`` with every schema default filled in."""
    with open(SCHEMA_PATH) as fh:
        schema = yaml.safe_load(fh)
    return _fill(schema, copy.deepcopy(config))


def defaults(*section: str) -> dict:
    """The schema's defaults of one config section (keys in turn), for the science
    functions that take a section's settings as keyword arguments.

    Examples
    --------
    >>> defaults("solve", "asterism")["n_stars"]
    40
    """
    value = with_defaults({})
    for key in section:
        value = value[key]
    return value


def read_file(path) -> dict:
    r"""A YAML config (or instrument profile) file as a dict. A file that cannot be read,
    is not YAML or is not a mapping raises ``ValueError`` naming the file and, for
    broken YAML, the line and column.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "night.yaml")
    >>> _ = open(path, "w").write("raw_dir: /data\nphotometry:\n  mode: [optimal\n")
    >>> try:
    ...     read_file(path)
    ... except ValueError as exc:
    ...     print(str(exc).replace(path, "night.yaml"))
    night.yaml:4:1: not valid YAML: expected ',' or ']', but got '<stream end>'
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"{path}{where}: not valid YAML: {problem}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{path}: holds a {type(value).__name__}, not keys with values")
    return value


def unknown_keys(schema: dict, value, prefix: str = "") -> list[str]:
    """Keys of ``value`` the schema does not know (an object with ``properties`` takes no
    others unless it says ``additionalProperties``), each with the nearest known key.

    Examples
    --------
    >>> schema = {"type": "object", "properties": {"exclude_frames": {}, "photometry": {
    ...     "type": "object", "properties": {"aperture_fwhm": {}}}}}
    >>> for k in unknown_keys(schema, {"exclude_frame": [], "photometry": {"aperture_fwhn": 2}}):
    ...     print(k)
    exclude_frame (did you mean 'exclude_frames'?)
    photometry.aperture_fwhn (did you mean 'aperture_fwhm'?)
    """
    if not isinstance(value, dict) or schema.get("type") != "object":
        return []
    props = schema.get("properties", {})
    out = []
    for key, sub in value.items():
        if key in props:
            out += unknown_keys(props[key], sub, f"{prefix}{key}.")
        elif props and not schema.get("additionalProperties"):
            near = difflib.get_close_matches(str(key), list(props), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            out.append(f"{prefix}{key}{hint}")
    return out


def check(config: dict, workdir=".") -> None:
    """Refuse a config that cannot run as meant, with one line naming the key: unknown
    keys (a typo would otherwise be ignored), a ``raw_dir`` that is not a folder, two
    targets whose names make the same file name, a moving target's ephemeris file that
    cannot be read (relative to ``workdir``), or a working folder inside ``raw_dir``
    (nothing is ever written there).

    Raises
    ------
    ValueError
    """
    with open(SCHEMA_PATH) as fh:
        schema = yaml.safe_load(fh)
    unknown = unknown_keys(schema, config)
    if unknown:
        raise ValueError(f"config: unknown key {'; unknown key '.join(unknown)}")
    raw = Path(str(config.get("raw_dir", ""))).expanduser()
    if not raw.is_dir():
        raise ValueError(f"config: raw_dir {str(raw)!r} is not a folder")
    files: dict[str, str] = {}
    for target in config.get("targets") or []:
        name = str(target.get("name", ""))
        key = layout.safe_name(name)
        if key.lower() in files:
            raise ValueError(
                f"config: targets {files[key.lower()]!r} and {name!r} would write the same "
                f"files (lightcurves/targets/{key}.*): rename one"
            )
        files[key.lower()] = name
        if "ephemeris" in target:  # read now: a moving target's positions on every frame
            from . import ephemeris, io

            path = Path(str(target["ephemeris"])).expanduser()
            try:
                ephemeris.read(path if path.is_absolute() else Path(workdir) / path)
            except io.FrameError as exc:
                raise ValueError(f"config: targets {name!r} ephemeris: {exc}") from None
    here = Path(workdir).resolve()
    if here == raw.resolve() or raw.resolve() in here.parents:
        raise ValueError(
            f"config: the working folder {here} is inside raw_dir {raw}: run from another "
            "folder (nothing is ever written under raw_dir)"
        )


def _rows(schema: dict, prefix: str = ""):
    for key, sub in schema.get("properties", {}).items():
        name = f"{prefix}{key}"
        if sub.get("type") == "object" and "properties" in sub:
            yield name, "", sub.get("description", "")
            yield from _rows(sub, name + ".")
        else:
            default = sub.get("default", "(required)" if key in schema.get("required", []) else "")
            yield name, default, sub.get("description", "")
            if "properties" in sub.get("items", {}):  # a list of objects: each one's keys
                yield from _rows(sub["items"], name + "[].")


def markdown() -> str:
    """``config/README.md``: every key of the schema with its default and description."""
    with open(SCHEMA_PATH) as fh:
        schema = yaml.safe_load(fh)
    lines = [
        "# fieldphot configuration",
        "",
        "Generated from `workflow/schemas/config.schema.yaml` by `fieldphot config-doc`;"
        " a test keeps it in step.",
        "`config/config.yaml` holds the science parameters; your own night's settings"
        " (`raw_dir`, `reference_catalog`) go in a file passed with `--configfile`.",
        "",
        "| key | default | meaning |",
        "|---|---|---|",
    ]
    for name, default, desc in _rows(schema):
        shown = f"`{default}`" if default not in ("", "(required)") else default
        lines.append(f"| `{name}` | {shown} | {desc} |")
    return "\n".join(lines) + "\n"
