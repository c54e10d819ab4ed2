import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("WEBSCALE_SHARED_DATA", REPO.parent / "shared" / "data"))


def load_bench(name: str):
    """A module of bench/ (its helpers are shared with the tests), loaded once."""
    full = f"bench_{name}"
    if full not in sys.modules:
        spec = importlib.util.spec_from_file_location(full, REPO / "bench" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[full] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[full]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def spark():
    """One local Spark session (with Delta) for the whole test run."""
    from webscale_rl.config import load_config
    from webscale_rl.session import get_spark

    cfg = load_config(overrides=["spark.master=local[2]", "spark.shuffle_partitions=2"])
    session = get_spark(cfg)
    yield session


@pytest.fixture()
def make_cfg(tmp_path):
    """A config with its own lakehouse under tmp_path; MLflow off unless a test turns it on."""
    from webscale_rl.config import load_config

    def make(*overrides: str, mlflow: bool = False, **top):
        sets = ["spark.shuffle_partitions=2", f"mlflow.enabled={str(mlflow).lower()}", *overrides]
        if mlflow:
            sets.append(f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db")
        top.setdefault("lakehouse", str(tmp_path / "lakehouse"))
        cfg = load_config(overrides=sets, **top)
        cfg.run_id = cfg.run_id or "test-run"
        return cfg

    return make


@pytest.fixture()
def cfg(make_cfg):
    """The default test config: a fresh lakehouse under tmp_path, MLflow off."""
    return make_cfg()


@dataclass
class Reference:
    """The one uninterrupted pipeline run of the test session (see `reference`)."""

    work: Path  # cwd of the run: mlflow.db, llm_calls.txt, reports/
    lakehouse: Path
    tables: dict  # table -> sorted rows, run-specific columns left out (bench/reliability.py)
    sets: list[str]  # the --set options it ran with

    @property
    def mlflow_db(self) -> Path:
        return self.work / "mlflow.db"


def run_pipeline_in_process(work: Path, sets: list[str], lakehouse: Path | None = None) -> int:
    """`webscale-rl run` on the sample corpus in this process (the session's Spark), MLflow in
    work/mlflow.db and anything written relative to cwd (reports) under work."""
    from webscale_rl.cli import main

    rel = load_bench("reliability")
    lakehouse = lakehouse or work / "lh"
    args = [x for s in sets for x in ("--set", s)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work}/mlflow.db")
        mp.chdir(work)
        return main(["--lakehouse", str(lakehouse), *args, "run", "--input", str(rel.SAMPLE)])


@pytest.fixture(scope="session")
def reference(spark, tmp_path_factory) -> Reference:
    """Every stage once over the sample corpus with the simulated engine, tracked in MLflow.

    The session's one whole-pipeline run: the reliability tests compare their runs with its
    tables, the audit and notebook tests read its lakehouse. A test that changes the lakehouse
    restores it (Delta RESTORE) before it ends.
    """
    rel = load_bench("reliability")
    work = tmp_path_factory.mktemp("reference")
    sets = rel.common_sets(work)
    assert run_pipeline_in_process(work, sets) == 0
    return Reference(work, work / "lh", rel.snapshot(spark, work / "lh"), sets)
