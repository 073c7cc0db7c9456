"""What ``fieldphot run`` and ``demo`` show while Snakemake works: one progress bar per
stage and a closing summary. Snakemake's own output (every job, thousands of lines on a
large night) goes whole into a log file; ``--verbose`` shows it instead.

Examples
--------
>>> p = Progress()
>>> for line in ["localcheckpoint manifest:", "Finished jobid: 1 (Rule: manifest)",
...              "1 of 4 steps (25%) done", "rule calibrate:", "rule calibrate:",
...              "Finished jobid: 3 (Rule: calibrate)", "2 of 4 steps (50%) done",
...              "Error in rule calibrate:",
...              "    log: logs/calibrate/n/a.log (check log file(s) for error details)", ""]:
...     _ = p.feed(line)
>>> print("\\n".join(p.bars(width=4)))
all steps   [##  ]  2/4
manifest    1/1 done
calibrate   1/2 done, 1 failed
>>> p.errors
['calibrate: logs/calibrate/n/a.log']
"""

import re
import subprocess
import sys
import time
from collections import Counter, deque
from pathlib import Path

_STARTED = re.compile(r"^(?:local)?(?:rule|checkpoint) ([\w-]+):$")
_STEPS = re.compile(r"^(\d+) of (\d+) steps")
_FINISHED = re.compile(r"^Finished jobid: \d+ \(Rule: ([\w-]+)\)")
_ERROR = re.compile(r"^Error in rule ([\w-]+):")
_LOG = re.compile(r"^\s+log: (\S+)")


class Progress:
    """Job counts per rule, read from Snakemake's output one line at a time: the steps
    done of all (Snakemake's "N of M steps", which grows when the manifest checkpoint
    adds the frames' jobs), and per rule its jobs started, done and failed."""

    def __init__(self):
        self.steps = (0, 0)  # done, total
        self.started: Counter = Counter()
        self.done: Counter = Counter()
        self.failed: Counter = Counter()
        self.errors: list[str] = []  # "rule: its log file"
        self.nothing_to_do = False
        self._error_rule = ""
        self._tenths = 0

    def feed(self, line: str) -> bool:
        """Take one line; True when a count changed."""
        line = line.rstrip("\n")
        if m := _STARTED.match(line):
            self.started[m.group(1)] += 1
            return True
        if m := _STEPS.match(line):
            self.steps = (int(m.group(1)), int(m.group(2)))
            return True
        if m := _FINISHED.match(line):
            self.done[m.group(1)] += 1
            return True
        if m := _ERROR.match(line):
            self._error_rule = m.group(1)
            self.failed[self._error_rule] += 1
            self.errors.append(f"{self._error_rule}: (no log)")
            return True
        if self._error_rule:
            if m := _LOG.match(line):
                self.errors[-1] = f"{self._error_rule}: {m.group(1)}"
            elif not line.strip():
                self._error_rule = ""
            return False
        if "Nothing to be done" in line:
            self.nothing_to_do = True
        return False

    def bars(self, width: int = 30) -> list[str]:
        """A bar of all steps, then one line per rule (in the order they started): its
        jobs done of those started, and the failed ones."""
        done, total = self.steps
        fill = int(round(width * done / total)) if total else 0
        name_w = max([len(r) for r in self.started] + [10])
        out = [f"{'all steps':<{name_w}}  [{'#' * fill}{' ' * (width - fill)}]  {done}/{total}"]
        for rule, started in self.started.items():
            line = f"{rule:<{name_w}}  {self.done[rule]}/{started} done"
            if self.failed[rule]:
                line += f", {self.failed[rule]} failed"
            out.append(line)
        return out

    def newly_passed(self) -> str:
        """A one-line report each time the steps done pass another tenth ("" between)."""
        done, total = self.steps
        tenths = 10 * done // total if total else 0
        if tenths <= self._tenths:
            return ""
        self._tenths = tenths
        rules = ", ".join(f"{r} {self.done[r]}" for r in self.started)
        return f"{100 * done // total:3d}% ({done}/{total} steps): {rules}"

    def summary(self) -> str:
        """The closing lines: jobs done and failed, and each failure's log."""
        if self.nothing_to_do:
            return "nothing to do: every product is up to date"
        done, failed = sum(self.done.values()), sum(self.failed.values())
        lines = [f"{done} jobs done" + (f", {failed} failed:" if failed else "")]
        lines += [f"  {e}" for e in self.errors]
        return "\n".join(lines)


def follow(cmd: list[str], log_path: Path, out=sys.stdout, interval: float = 0.5, env=None) -> int:
    """Run ``cmd`` (a Snakemake command line; ``env`` its environment, None for this
    one's), its whole output into ``log_path``, and show :class:`Progress` on ``out``:
    bars redrawn in place on a terminal, a line per tenth of the steps otherwise. Returns
    the command's exit code."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    progress, tty = Progress(), out.isatty()
    shown, last, tail = 0, 0.0, deque(maxlen=15)
    with (
        open(log_path, "w") as log,
        subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        ) as proc,
    ):
        for line in proc.stdout:
            log.write(line)
            tail.append(line)
            if not progress.feed(line):
                continue
            if tty and time.monotonic() - last > interval:
                shown, last = _redraw(out, progress.bars(), shown), time.monotonic()
            elif not tty and (passed := progress.newly_passed()):
                print(passed, file=out, flush=True)
        code = proc.wait()
    if tty:
        _redraw(out, progress.bars(), shown)
    print(progress.summary(), file=out)
    if code and not progress.errors:  # Snakemake stopped before any job: its own words
        out.write("".join(tail))
    print(f"Snakemake's full output: {log_path}", file=out, flush=True)
    return code


def _redraw(out, lines: list[str], shown: int) -> int:
    if shown:
        out.write(f"\x1b[{shown}F")  # back to the first line drawn
    out.write("".join(f"\x1b[2K{line}\n" for line in lines))
    out.flush()
    return len(lines)
