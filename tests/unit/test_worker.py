"""The warm worker: steps run in its forks, die with their client, and it dies with its parent."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from fieldphot import config, io, steps, wcsmodel, worker

STEP = Path(__file__).parents[2] / "scripts" / "step.py"
#: Each step's params with every default, as its command line gets them.
PARAMS = {
    name: json.dumps(steps.frame_params(name, config.with_defaults({"raw_dir": "."})))
    for name in steps.STEPS
}
CFG = json.dumps({"cfg": {"thresh": 5.0, "minarea": 5, "background_box": 32}})


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture()
def server(tmp_path, monkeypatch):
    handle = worker.start(str(tmp_path / "worker.log"))
    assert handle is not None, (tmp_path / "worker.log").read_text()
    yield handle
    worker.stop(handle)
    monkeypatch.delenv(worker.ENV, raising=False)


def frame(path: Path, seed=3):
    rng = np.random.default_rng(seed)
    img = rng.normal(100.0, 5.0, (128, 128)).astype(np.float32)
    yy, xx = np.mgrid[:128, :128]
    for x, y in rng.uniform(10, 118, (15, 2)):
        img += 2000 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 4.0)
    io.write_calibrated(path, img, np.full_like(img, 5.0), np.zeros(img.shape, int), fits.Header())


def step(tmp_path, name, calibrated, out, env):
    argv = [name, str(tmp_path / f"{name}.log"), "1", json.dumps({"calibrated": str(calibrated)})]
    return subprocess.Popen(
        [sys.executable, str(STEP), *argv, str(out), CFG],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_step_through_the_server_equals_the_step_run_alone(tmp_path, server):
    cal = tmp_path / "cal.fits"
    frame(cal)
    alone = {k: v for k, v in os.environ.items() if k != worker.ENV}
    p1 = step(tmp_path, "extract", cal, tmp_path / "alone.parquet", alone)
    assert p1.wait(120) == 0, p1.stderr.read()
    p2 = step(tmp_path, "extract", cal, tmp_path / "served.parquet", dict(os.environ))
    assert p2.wait(120) == 0, p2.stderr.read()
    a, _ = io.read_table(tmp_path / "alone.parquet")
    b, _ = io.read_table(tmp_path / "served.parquet")
    assert len(a) >= 10
    pd.testing.assert_frame_equal(a, b)


def test_a_failing_step_reports_on_the_clients_stderr(tmp_path, server):
    proc = step(tmp_path, "extract", tmp_path / "missing.fits", tmp_path / "x.parquet", None)
    assert proc.wait(120) == 1
    err = proc.stderr.read()
    # printed by the server's child, on the file descriptors the client handed over
    assert "fieldphot extract:" in err and "missing.fits" in err
    assert "Traceback" in (tmp_path / "extract.log").read_text()
    assert not (tmp_path / "x.parquet").exists()


def test_killing_the_client_kills_its_step(tmp_path, server):
    fifo = tmp_path / "never-written.fits"
    os.mkfifo(fifo)  # the step blocks opening it: a step that never ends
    proc = step(tmp_path, "extract", fifo, tmp_path / "x.parquet", None)
    wait_for(lambda: len(children(server.process.pid)) == 1)
    proc.kill()
    proc.wait()
    wait_for(lambda: children(server.process.pid) == [])
    assert not (tmp_path / "x.parquet").exists()


def test_a_step_whose_worker_process_is_killed_runs_in_its_client(tmp_path, server):
    """The fork running the step is killed (what the out-of-memory killer does): the
    client runs the step itself, never failing the job with no reason; a killed server
    leaves no socket folder behind once stopped."""
    fifo = tmp_path / "never-written.fits"
    os.mkfifo(fifo)  # the step blocks opening it
    proc = step(tmp_path, "extract", fifo, tmp_path / "x.parquet", None)
    wait_for(lambda: len(children(server.process.pid)) == 1)
    os.kill(children(server.process.pid)[0], signal.SIGKILL)
    log = tmp_path / "extract.log"
    wait_for(lambda: log.exists() and "extract in its own process" in log.read_text())
    proc.kill()
    assert "worker's process running this step was killed" in proc.communicate()[1]
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    assert os.path.exists(server.socket)
    worker.stop(server)
    assert not os.path.exists(os.path.dirname(server.socket))


def test_the_server_stops_when_its_parent_dies(tmp_path):
    code = (
        "from fieldphot import worker; import time; "
        f"h = worker.start({str(tmp_path / 'w.log')!r}); "
        "print(h.process.pid, h.socket, flush=True); time.sleep(300)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pid, sock = parent.stdout.readline().split()
    assert os.path.exists(sock)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    wait_for(lambda: not os.path.exists(sock))
    wait_for(lambda: subprocess.run(["ps", "-p", pid], capture_output=True).returncode != 0)


def test_without_a_server_the_client_runs_the_step_itself(tmp_path):
    cal = tmp_path / "cal.fits"
    frame(cal)
    env = dict(os.environ, **{worker.ENV: str(tmp_path / "gone.sock")})
    proc = step(tmp_path, "extract", cal, tmp_path / "s.parquet", env)
    assert proc.wait(120) == 0, proc.stderr.read()
    assert len(io.read_table(tmp_path / "s.parquet")[0]) >= 10
    assert "extract in its own process" in (tmp_path / "extract.log").read_text()


def test_a_long_request_and_the_clients_environment_reach_the_step(tmp_path, server):
    cal = tmp_path / "cal.fits"
    frame(cal)
    cfg = {"thresh": 5.0, "minarea": 5, "background_box": 32, "pad": "x" * 100_000}
    cfg = json.dumps({"cfg": cfg})
    argv = ["extract", str(tmp_path / "e.log"), "1", json.dumps({"calibrated": str(cal)})]
    argv += [str(tmp_path / "s.parquet"), cfg]
    env = dict(os.environ, SLURM_CPUS_PER_TASK="7")  # not in the server's environment
    proc = subprocess.run(
        [sys.executable, str(STEP), *argv], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert len(io.read_table(tmp_path / "s.parquet")[1]["config"]["pad"]) == 100_000
    log = (tmp_path / "e.log").read_text()
    assert "extract in a fork of the warm worker" in log and "(CPUs the scheduler gave: 7)" in log


def test_an_error_in_a_step_flags_the_frame_and_the_night_goes_on(tmp_path, monkeypatch):
    """A bug on one frame (here: photometry raises) does not stop the night: the step's
    product is the failed frame's, with the error and the log named, and the later steps
    carry it; a fault of the machine (a missing input) still fails the job."""
    from fieldphot import stages

    cal = tmp_path / "cal.fits"
    frame(cal)
    header = fits.getheader(cal)
    header.update(FP_FRAME="f1", FP_NIGHT="20240101", FP_MJD=60310.1, FP_EXPT=30.0)
    fits.writeto(cal, fits.getdata(cal), header, overwrite=True)
    io.write_table(
        tmp_path / "starlist.parquet", pd.DataFrame(columns=["id", "ra", "dec", "mag"]), {}
    )

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cdelt = [-1e-4, 1e-4]
    solved = {"wcs": wcsmodel.wcs_to_string(wcs), "frame": {"frame": "f1"}, "status": "ok"}
    io.write_table(tmp_path / "ast.parquet", pd.DataFrame(), solved)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(stages.io, "read_calibrated", broken)  # on the measuring path only
    inputs = {
        "calibrated": str(cal),
        "astrometry": str(tmp_path / "ast.parquet"),
        "starlist": str(tmp_path / "starlist.parquet"),
        "sources": "",
    }
    phot = tmp_path / "phot.parquet"
    argv = [
        "photometer",
        str(tmp_path / "p.log"),
        "1",
        json.dumps(inputs),
        str(phot),
        PARAMS["photometer"],
    ]
    assert worker.run(argv) == 0
    _, meta = io.read_table(phot)
    assert meta["status"] == "bad" and meta["frame"]["frame"] == "f1"
    assert meta["reason"].startswith("an error in fieldphot's photometer step on this frame")
    assert (
        "ZeroDivisionError: a bug" in meta["reason"] and str(tmp_path / "p.log") in meta["reason"]
    )
    assert "Traceback" in (tmp_path / "p.log").read_text()
    argv = ["zeropoint", str(tmp_path / "z.log"), "1", json.dumps({"photometry": str(phot)})]
    assert worker.run([*argv, str(tmp_path / "cat.parquet"), PARAMS["zeropoint"]]) == 0
    _, meta = io.read_table(tmp_path / "cat.parquet")
    assert meta["status"] == "bad" and "ZeroDivisionError" in meta["reason"]
    missing = json.dumps({"photometry": str(tmp_path / "gone.parquet")})
    argv = [
        "zeropoint",
        str(tmp_path / "z.log"),
        "1",
        missing,
        str(tmp_path / "c2.parquet"),
        PARAMS["zeropoint"],
    ]
    assert worker.run(argv) == 1 and not (tmp_path / "c2.parquet").exists()
