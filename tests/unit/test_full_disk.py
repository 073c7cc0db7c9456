"""A disk that fills up during a write leaves no partial product (and no temporary file).

Runs on a real full filesystem: a 256 kB tmpfs mounted for the test (needs root, as in CI).
"""

import errno
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from fieldphot import io

STEP = Path(__file__).parents[2] / "scripts" / "step.py"


@pytest.fixture(scope="module")
def full_disk():
    where = Path(tempfile.mkdtemp(prefix="fieldphot-fulldisk-"))
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)], capture_output=True
    )
    if mount.returncode != 0:
        if os.geteuid() == 0:  # as in CI: this must work
            pytest.fail(f"cannot mount a tmpfs: {mount.stderr.decode()}")
        pytest.skip("mounting a small tmpfs needs root")
    yield where
    subprocess.run(["umount", str(where)], check=True)
    where.rmdir()


def _frame(n=512):
    return np.random.default_rng(1).normal(100, 5, (n, n)).astype(np.float32)


WRITERS = {
    "calibrated frame": lambda p: io.write_calibrated(
        p / "f.fits", _frame(), _frame(), np.zeros((512, 512), int), fits.Header()
    ),
    "table": lambda p: io.write_table(
        p / "t.parquet", pd.DataFrame({"x": np.random.default_rng(2).normal(size=200_000)}), {}
    ),
    "text": lambda p: io.write_text(p / "x.txt", "0123456789" * 100_000),
}


@pytest.mark.parametrize("what", WRITERS)
def test_a_full_disk_leaves_nothing_behind(full_disk, what):
    with pytest.raises(OSError) as err:
        WRITERS[what](full_disk)
    # ENOSPC, or astropy's own check of the free space before it writes
    assert err.value.errno == errno.ENOSPC or "space" in str(err.value).lower()
    assert list(full_disk.iterdir()) == []


def test_a_step_on_a_full_disk_fails_naming_its_log_and_writes_nothing(full_disk, tmp_path):
    img = _frame(256)
    io.write_calibrated(
        tmp_path / "cal.fits", img, img * 0 + 5, np.zeros(img.shape, int), fits.Header()
    )
    big = full_disk / "filler"
    with open(big, "wb") as fh, pytest.raises(OSError):  # fill the disk first
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()
    argv = ["extract", str(tmp_path / "x.log"), "1"]
    argv += [json.dumps({"calibrated": str(tmp_path / "cal.fits")}), str(full_disk / "s.parquet")]
    argv += [json.dumps({"thresh": 5.0, "minarea": 5, "background_box": 32})]
    env = {k: v for k, v in os.environ.items() if k != "FIELDPHOT_WORKER"}
    proc = subprocess.run(
        [sys.executable, str(STEP), *argv], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert "No space left on device" in proc.stderr and "x.log" in proc.stderr
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]
    big.unlink()
