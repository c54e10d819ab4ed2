import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("WEBSCALE_SHARED_DATA", REPO.parent / "shared" / "data"))


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
