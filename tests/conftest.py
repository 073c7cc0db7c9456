"""Shared fixtures: a simulated night with its truth, processed once per test session.

The unit night is processed by :func:`fieldphot.runner.run_night` (the same stage
functions the workflow runs, in a plain loop); the workflow tests run ``snakemake``.
"""

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fieldphot import io, synthetic, validation
from fieldphot.runner import run_night

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

#: The unit-test night: the demo's field at 768 x 768, 60 frames (five hours: the variable
#: star's 1.3 h period measured over four cycles), its two stars also as forced targets.
UNIT_NIGHT = synthetic.SimConfig(nx=768, ny=768, n_science=60, seed=11, targets=True)


class Processed:
    """A simulated night, its truth and the pipeline's products."""

    def __init__(self, night: synthetic.Night, results: Path):
        self.night = night
        self.results = results
        self.truth_frames = night.frames.set_index("frame")
        self.truth_fluxes = night.fluxes
        self.params = night.params
        self.truth = validation.Truth(night.root)

    def table(self, product: str, frame: str):
        night = next(iter((self.results / product).iterdir())).name
        return io.read_table(self.results / product / night / f"{frame}.parquet")

    def catalogs(self) -> pd.DataFrame:
        return validation.light_curves(self.results)

    @property
    def frames(self) -> list[str]:
        return list(self.truth_frames.index)


def simulated_night(root: Path, cfg: synthetic.SimConfig) -> synthetic.Night:
    """A night simulated into ``root`` and processed into ``root / "results"`` by the
    plain loop."""
    night = synthetic.simulate_night(root, cfg)
    run_night(yaml.safe_load(night.config.read_text()), root / "results", processes=2)
    return night


@pytest.fixture(scope="session")
def processed(tmp_path_factory) -> Processed:
    root = tmp_path_factory.mktemp("unit_night")
    return Processed(simulated_night(root, UNIT_NIGHT), root / "results")


def offline_vizier(monkeypatch) -> list:
    """VizieR's name does not resolve (no network), as on these machines; returns the
    list the attempts are counted in."""
    import requests
    from astroquery.vizier import VizierClass

    calls = []

    def refuse(*args, **kwargs):
        calls.append(1)
        raise requests.ConnectionError(
            "HTTPSConnectionPool: Max retries exceeded (Caused by NameResolutionError("
            "\"Failed to resolve 'vizier.cds.unistra.fr' ([Errno -2] Name or service not known)\"))"
        )

    monkeypatch.setattr(VizierClass, "query_region_async", refuse)
    return calls


def real_night(name: str) -> Path:
    """A folder of ../shared/data, or a skip saying it is not here."""
    d = SHARED_DATA / name
    if not d.is_dir():
        pytest.skip(f"real data not present at {d} (it is in CI, beside the checkout)")
    return d


@pytest.fixture(scope="session")
def mit_dir() -> Path:
    return real_night("mit-wallace-c14")


@pytest.fixture(scope="session")
def lowell_dir() -> Path:
    return real_night("lowell42-vr")


def job_counts(output: str) -> dict:
    """Rule -> job count from a snakemake dry run's "Job stats" table."""
    stats = output.split("Job stats:")[-1]
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.MULTILINE)
        if m.group(1) != "total"
    }


def simulate_season(root: Path, days, **sim) -> Path:
    """A season folder: the same simulated field on each of ``days`` (YYYY-MM-DD), the
    later nights' raw frames in subfolders of the first's; returns the first night's config
    (its raw folder holds them all)."""
    import shutil

    first = None
    for i, day in enumerate(days):
        night = synthetic.simulate_night(
            root / f"n{i}", synthetic.SimConfig(**sim, start=f"{day}T03:00:00")
        )
        if first is None:
            first = night
        else:
            shutil.copytree(night.raw_dir, first.raw_dir / f"night{i}")
    return first.config
