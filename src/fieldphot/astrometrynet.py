"""Blind plate solving with a local astrometry.net (``solve-field``), bounded in time.

The frame's own detections go to ``solve-field`` as a source list (no image, no source
extraction of its own), with the scale and position hints when they are known. Every
call runs in a temporary folder that is removed afterwards, under a CPU limit written
into a generated astrometry.net config and an outer wall-clock limit that kills the
whole process group. Success is judged by the ``.solved`` file: ``solve-field`` exits
0 when it fails too. ``tools/install-astrometry.sh`` installs the program and the
Tycho-2 index files.

Examples
--------
>>> cmd = command("xy.fits", (1024, 2048), "an.cfg", "out", ra=150.0, dec=20.0,
...               radius_deg=1.0, scale_arcsec=3.5, scale_error=0.1)
>>> cmd[:2], "--scale-low" in cmd, cmd[cmd.index("--ra") + 1]
(['solve-field', 'xy.fits'], True, '150.0')
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.wcs import WCS

from . import io
from .config import defaults
from .wcsmodel import header_wcs

#: The astrometry.net settings' defaults (config ``solve.astrometry_net``, from the schema).
DEFAULTS = defaults("solve", "astrometry_net")


def command(
    xylist,
    shape,
    config,
    stem,
    *,
    ra=None,
    dec=None,
    radius_deg=None,
    scale_arcsec=None,
    scale_error=0.1,
    cpulimit_s=DEFAULTS["cpulimit_s"],
    tweak_order=DEFAULTS["tweak_order"],
    executable=DEFAULTS["executable"],
) -> list[str]:
    """The ``solve-field`` command line for a source list.

    Only the ``.solved``, ``.wcs`` and ``.corr`` (matched stars) outputs are written;
    plots, the new FITS image, index lists and the match file are turned off.
    """
    ny, nx = shape
    cmd = [
        executable,
        str(xylist),
        "--width",
        str(nx),
        "--height",
        str(ny),
        "--x-column",
        "X",
        "--y-column",
        "Y",
        "--sort-column",
        "FLUX",
        "--config",
        str(config),
        "--cpulimit",
        str(int(cpulimit_s)),
        "--no-plots",
        "--overwrite",
        "--no-remove-lines",
        "--crpix-center",
        "--new-fits",
        "none",
        "--index-xyls",
        "none",
        "--rdls",
        "none",
        "--match",
        "none",
        "--axy",
        f"{stem}.axy",
        "--solved",
        f"{stem}.solved",
        "--wcs",
        f"{stem}.wcs",
        "--corr",
        f"{stem}.corr",
        "--temp-dir",
        str(Path(stem).parent),
    ]
    cmd += ["--tweak-order", str(tweak_order)] if tweak_order else ["--no-tweak"]
    if scale_arcsec:
        cmd += [
            "--scale-units",
            "arcsecperpix",
            "--scale-low",
            f"{scale_arcsec * (1 - scale_error):.6g}",
            "--scale-high",
            f"{scale_arcsec * (1 + scale_error):.6g}",
        ]
    if ra is not None and dec is not None and radius_deg:
        cmd += ["--ra", str(ra), "--dec", str(dec), "--radius", f"{radius_deg:.6g}"]
    return cmd


def index_stars(ra: float, dec: float, radius_deg: float, index_dir: str = DEFAULTS["index_dir"]):
    """The stars of every index file in ``index_dir`` within ``radius_deg`` of (ra, dec).

    Runs ``query-starkd`` on each file; returns a table ``ra, dec, mag`` (duplicates
    across index files removed). Used to simulate fields the index files can solve.
    """
    tables = []
    with tempfile.TemporaryDirectory(prefix="fieldphot-an-") as tmp:
        for k, index in enumerate(sorted(Path(index_dir).glob("index-*.fits"))):
            out = os.path.join(tmp, f"{k}.fits")
            subprocess.run(
                [
                    "query-starkd",
                    "-o",
                    out,
                    "-r",
                    str(ra),
                    "-d",
                    str(dec),
                    "-R",
                    str(radius_deg),
                    "-T",
                    str(index),
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
            if not Path(out).exists():  # no star of this index within the radius
                continue
            t = io.read_any_table(out)
            mag = next((c for c in t.columns if c.upper().startswith("MAG")), None)
            tables.append(
                pd.DataFrame({"ra": t["RA"], "dec": t["DEC"], "mag": t[mag] if mag else np.nan})
            )
    stars = (
        pd.concat(tables, ignore_index=True)
        if tables
        else pd.DataFrame(columns=["ra", "dec", "mag"])
    )
    key = (
        np.round(stars["ra"] * 3600).astype(int).astype(str)
        + "/"
        + np.round(stars["dec"] * 3600).astype(int).astype(str)
    )
    return stars[~key.duplicated()].reset_index(drop=True)


def available(executable: str = "solve-field") -> bool:
    """Whether ``solve-field`` can be run."""
    return shutil.which(executable) is not None


def solve_field(
    x,
    y,
    flux,
    shape,
    *,
    ra=None,
    dec=None,
    radius_deg=None,
    scale_arcsec=None,
    scale_error=0.1,
    **cfg,
) -> tuple[WCS | None, dict]:
    """Blind (or hinted) solve of a source list with ``solve-field``.

    Parameters
    ----------
    x, y, flux : arrays
        Detections, 0-based pixels; the brightest ``n_sources`` are used.
    shape : (ny, nx)
        Image shape.
    ra, dec, radius_deg : float, optional
        Search only within ``radius_deg`` of this position.
    scale_arcsec, scale_error : float, optional
        Search only pixel scales within this fraction of ``scale_arcsec``.
    **cfg
        Overrides of :data:`DEFAULTS`.

    Returns
    -------
    wcs : WCS or None
    info : dict
        ``reason`` (empty when solved), ``n_match`` and ``rms_px`` (of astrometry.net's
        matched stars), ``seconds``.
    """
    c = {**DEFAULTS, **cfg}
    info = {"reason": "", "n_match": 0, "rms_px": np.nan, "seconds": 0.0}
    if not available(c["executable"]):
        info["reason"] = f"{c['executable']} not found (run tools/install-astrometry.sh)"
        return None, info
    if not Path(c["index_dir"]).is_dir():
        info["reason"] = f"no astrometry.net index folder {c['index_dir']}"
        return None, info
    order = np.argsort(-np.asarray(flux, float))[: c["n_sources"]]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fieldphot-an-") as tmp:
        stem = os.path.join(tmp, "field")
        io.write_xylist(
            f"{stem}.xy.fits", np.asarray(x)[order], np.asarray(y)[order], np.asarray(flux)[order]
        )
        config = os.path.join(tmp, "astrometry.cfg")
        io.write_text(
            config,
            f"cpulimit {int(c['cpulimit_s'])}\nadd_path {c['index_dir']}\nautoindex\n",
        )
        cmd = command(
            f"{stem}.xy.fits",
            shape,
            config,
            stem,
            ra=ra,
            dec=dec,
            radius_deg=radius_deg,
            scale_arcsec=scale_arcsec,
            scale_error=scale_error,
            cpulimit_s=c["cpulimit_s"],
            tweak_order=c["tweak_order"],
            executable=c["executable"],
        )
        with subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            text=True,
        ) as proc:
            try:
                _, err = proc.communicate(timeout=c["timeout_s"])
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                info["reason"] = f"solve-field gave no answer within {c['timeout_s']} s"
        info["seconds"] = time.perf_counter() - t0
        if info["reason"]:
            return None, info
        if not Path(f"{stem}.solved").exists() or not Path(f"{stem}.wcs").exists():
            last = (err or "").strip().splitlines()[-1:] if proc.returncode else []
            info["reason"] = "astrometry.net found no solution" + (f" ({last[0]})" if last else "")
            return None, info
        wcs = header_wcs(io.read_header(f"{stem}.wcs"))
        if Path(f"{stem}.corr").exists():
            corr = io.read_any_table(f"{stem}.corr")
            if len(corr):
                info["n_match"] = len(corr)
                info["rms_px"] = float(
                    np.sqrt(
                        np.mean(
                            (corr["field_x"] - corr["index_x"]) ** 2
                            + (corr["field_y"] - corr["index_y"]) ** 2
                        )
                    )
                )
    return wcs, info
