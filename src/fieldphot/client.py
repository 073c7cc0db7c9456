"""The client of a per-frame step: what each per-frame job's shell command runs
(``scripts/step.py``). It hands the step's command line and its stdout/stderr to the run's
warm worker (:mod:`fieldphot.worker`) and waits, or runs the step itself when there is
none. It imports only the standard library's socket and json: a job's own start-up is
Python's (some 20 ms), not the package's.

Examples
--------
With no server the step runs in this process:

>>> import os
>>> _ = os.environ.pop(ENV, None)
>>> submit(["nosuchstep", "/dev/null", "1", "{}", "out", "{}"])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: unknown step 'nosuchstep' (known: calibrate, extract, solve, ...)
"""

import json
import os
import socket
import sys

#: Environment variable naming the server's socket; jobs inherit it from Snakemake.
ENV = "FIELDPHOT_WORKER"


def submit(argv: list[str]) -> int:
    """Run a step through the server named by ``$FIELDPHOT_WORKER``, or here without one."""
    path = os.environ.get(ENV, "")
    if path:
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
        except OSError:  # no server (gone, or on another host): run the step here
            sock.close()
        else:
            with sock:
                request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}
                request = json.dumps(request).encode() + b"\n"
                sys.stdout.flush()
                sys.stderr.flush()
                socket.send_fds(sock, [request], [1, 2])
                reply = sock.makefile("rb").readline()
            if reply:
                return int(json.loads(reply)["rc"])
            # The worker's process for this step was killed (out of memory, a signal): its
            # output, written under a temporary name, never appeared; the step runs here.
            print(
                f"fieldphot {argv[0]}: the warm worker's process running this step was "
                "killed; running it in this process instead",
                file=sys.stderr,
            )
    from .worker import run

    return run(argv)
