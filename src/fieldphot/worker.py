"""Run the per-frame steps in forks of one warm Python process.

A per-frame step is a few seconds of arithmetic, but a fresh Python process spends about
two seconds importing numpy, pandas, scipy and astropy before it starts: five steps per
frame would make start-up cost as much as the science. So a local workflow run starts one
server (:func:`start_for_run`, from the Snakefile's ``onstart``) that imports the package
once and forks a child for every step it is asked to run; each per-frame rule's shell
command is a light client (``scripts/step.py`` -> :func:`fieldphot.client.submit`) that
hands the server its command line and its stdout/stderr, waits, and exits with the
step's status. A fork starts from the
server's pristine state, so steps cannot leak into each other.

Without a server (SLURM jobs, ``--use-conda``, a server that has gone) the client runs the
step itself: same function, same files, only slower to start. A step's child dies with
its client (a killed Snakemake job kills its step), and the server stops when the Snakemake
process that started it is gone.

Command line of a step: ``NAME LOG THREADS INPUTS OUTPUT PARAMS``: the step's name in
:data:`fieldphot.steps.STEPS`, its log file, its threads, a JSON object of the job's named
inputs, its output file and a JSON object of its params (:func:`fieldphot.steps.run`). The
step runs in the client's working directory and environment.

Examples
--------
>>> import tempfile, os
>>> d = tempfile.mkdtemp()
>>> handle = start(os.path.join(d, "server.log"))
>>> os.path.exists(handle.socket)
True
>>> stop(handle)
>>> os.path.exists(handle.socket)
False
"""

import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from .client import ENV


def run(argv: list[str], where: str = "in its own process") -> int:
    """Run one step in this process; return its exit status (the traceback goes to its log).

    Examples
    --------
    >>> run(["nosuchstep", "/dev/null", "1", "{}", "out", "{}"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown step 'nosuchstep' (known: calibrate, extract, solve, ...)
    """
    from .steps import FRAME, STEPS

    name, log, threads, inputs, output, params = argv
    if name not in STEPS:
        raise ValueError(f"unknown step {name!r} (known: {', '.join(STEPS)})")
    inputs, params = json.loads(inputs), json.loads(params)
    # OpenMP (the cosmic-ray search) reads this when it first loads, which is in the step.
    os.environ["OMP_NUM_THREADS"] = threads
    from . import stages  # the server has it already; a standalone step pays for it here

    try:
        with stages.logged(log) as lg:
            lg.info(
                "%s %s: %s threads (CPUs the scheduler gave: %s)",
                name,
                where,
                threads,
                os.environ.get("SLURM_CPUS_PER_TASK", "not under SLURM"),
            )
            if name not in FRAME:
                stages.steps.run(name, inputs, output, params)
            elif reason := stages.run_frame_step(name, inputs, output, params, log):
                print(f"fieldphot {name}: frame flagged: {reason}", file=sys.stderr)
    except Exception as err:  # logged with its traceback by stages.logged
        print(f"fieldphot {name}: {err} (see {log})", file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------- server
class _Handler(socketserver.BaseRequestHandler):
    """Runs in the forked child: one step, with the client's stdout/stderr, then exits."""

    def handle(self):
        msg, fds, _, _ = socket.recv_fds(self.request, 1 << 16, 2)
        for fd, target in zip(fds, (1, 2), strict=True):
            os.dup2(fd, target)
            os.close(fd)
        while not msg.endswith(b"\n"):  # a long request arrives in pieces
            piece = self.request.recv(1 << 16)
            if not piece:
                return
            msg += piece
        # A client that goes away (its job killed) takes its step with it.
        threading.Thread(target=self._watch_client, daemon=True).start()
        request = json.loads(msg)
        os.chdir(request["cwd"])
        os.environ.clear()  # the job's environment (TMPDIR, ...), not the server's
        os.environ.update(request["env"])
        try:
            rc = run(request["argv"], "in a fork of the warm worker")
        except Exception as err:  # a malformed command line
            print(f"fieldphot worker: {err}", file=sys.stderr)
            rc = 2
        sys.stdout.flush()
        sys.stderr.flush()
        self.request.sendall(json.dumps({"rc": rc}).encode() + b"\n")

    def _watch_client(self):
        try:
            gone = not self.request.recv(1)
        except OSError:  # closed here: the step is over
            return
        if gone:
            os._exit(1)


#: Modules the steps import inside their functions (to keep ``import fieldphot`` light),
#: imported by the server once rather than by every fork. Not astroscrappy: its OpenMP
#: runtime reads ``OMP_NUM_THREADS`` when it loads, which must be in the step (its
#: threads), and a fork of a process that ran OpenMP code can deadlock in it.
LAZY_IMPORTS = (
    "sep",
    "scipy.ndimage",
    "scipy.optimize",
    "scipy.spatial",
    "scipy.special",
    "astropy.wcs",
    "astropy.coordinates",
    "astropy.time",
    "pyarrow.parquet",
    "pyarrow.dataset",
)


class _Server(socketserver.ForkingMixIn, socketserver.UnixStreamServer):
    max_children = 1024  # Snakemake bounds how many steps run at once


def serve(path: str, parent: int) -> None:
    """Serve steps on the Unix socket ``path`` until ``parent`` exits or SIGTERM arrives."""
    import importlib

    from . import stages  # noqa: F401  - the imports every forked step shares

    for name in LAZY_IMPORTS:
        importlib.import_module(name)
    server = _Server(path, _Handler)

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    def watch_parent():
        while _alive(parent):
            time.sleep(0.5)
        stop()

    signal.signal(signal.SIGTERM, stop)
    threading.Thread(target=watch_parent, daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if os.path.exists(path):
            os.unlink(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ----------------------------------------------------------------------------- lifecycle
@dataclass
class Handle:
    """A running server: its process and socket."""

    process: subprocess.Popen
    socket: str


def start(log: str, timeout: float = 60.0) -> Handle | None:
    """Start a server for this process's jobs; set ``$FIELDPHOT_WORKER``; None if it fails.

    The server stops with this process (or :func:`stop`); its output goes to ``log``.
    """
    path = os.path.join(tempfile.mkdtemp(prefix="fieldphot-"), "worker.sock")
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fieldphot.worker", path, str(os.getpid())],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            return None
        time.sleep(0.05)
    os.environ[ENV] = path
    return Handle(proc, path)


#: The server of this process's Snakemake run (:func:`start_for_run`), if it has one.
_RUN: list[Handle] = []


def start_for_run(local: bool, log: str = os.path.join("logs", "worker.log")) -> None:
    """The Snakefile's ``onstart``: a ``local`` run starts its server (once). Snakemake's
    service jobs cannot own it: a service and its consumers are scheduled as one group
    whose cores are summed (every per-frame job at once)."""
    if local and not _RUN:
        os.makedirs(os.path.dirname(log) or ".", exist_ok=True)
        handle = start(log)
        if handle is not None:
            _RUN.append(handle)


def stop_for_run() -> None:
    """The Snakefile's ``onsuccess`` and ``onerror``: stop the run's server, if any."""
    while _RUN:
        stop(_RUN.pop())


def stop(handle: Handle | None) -> None:
    """Stop a server started by :func:`start` and forget its socket."""
    if handle is None:
        return
    os.environ.pop(ENV, None)
    handle.process.terminate()
    handle.process.wait(timeout=30)
    # a killed server leaves its socket behind
    shutil.rmtree(os.path.dirname(handle.socket), ignore_errors=True)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
