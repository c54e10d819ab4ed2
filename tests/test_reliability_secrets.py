"""The API key of an OpenAI-compatible engine never lands anywhere: not in the logs (stdout and
stderr of the run), MLflow (its SQLite store and artifacts), the Delta tables (data files and
_delta_log), the response journal, the exports, or Spark's local files.

The whole pipeline runs (every stage in `pipeline.STAGES`) against a local fake server that
answers like a model, with the key in an environment variable; then every file under the run's
folder is scanned for the key.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from fakes.fake_openai_server import FakeOpenAIServer

SAMPLE = (
    Path(__file__).resolve().parent.parent
    / "webscale_rl/resources/sample_corpus/sample_corpus.jsonl"
)
KEY_ENV = "WEBSCALE_RL_TEST_API_KEY"


def responder():
    """A model stand-in answering every task (falls back to the plain scripted server)."""
    try:
        from fakes.scripted_engine import ChatResponder
    except ImportError:
        return None
    return ChatResponder()


def files_holding(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(n in data for n in needles):
                hits.append(str(path.relative_to(root)))
    return hits


@pytest.mark.slow
def test_api_key_appears_nowhere(tmp_path):
    key = "sk-reliability-" + secrets.token_hex(16)
    needles = [key.encode(), key.encode("utf-16-le"), base64.b64encode(key.encode())]
    with FakeOpenAIServer(responder=responder()) as server:
        args = [
            "--lakehouse", str(tmp_path / "lh"),
            "--set", f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            "--set", "spark.master=local[2]",
            "--set", "spark.shuffle_partitions=2",
            "--set", "llm.engine=openai",
            "--set", "llm.model=fake-model",
            "--set", f"llm.base_url={server.base_url}",
            "--set", f"llm.api_key_env={KEY_ENV}",
            "--set", "llm.max_retries=0",
            "run", "--input", str(SAMPLE),
        ]  # fmt: skip
        # Spark's scratch files (shuffle, spills, broadcast) go under tmp_path too.
        local = tmp_path / "spark-local"
        env = {**os.environ, KEY_ENV: key, "PYTHONUNBUFFERED": "1", "SPARK_LOCAL_DIRS": str(local)}
        env.pop("WEBSCALE_RL_CRASH_AT", None)
        proc = subprocess.run(
            [sys.executable, "-m", "webscale_rl.cli", *args],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200,
        )  # fmt: skip
        seen_auth = list(server.auth_headers)

    assert proc.returncode == 0, proc.stderr[-3000:]
    # The key really was in use: the server saw it on every request.
    assert seen_auth and all(h == f"Bearer {key}" for h in seen_auth)
    for stream in (proc.stdout, proc.stderr):
        assert key not in stream
    # Everything the run wrote: lakehouse (tables, _delta_log, journal, exports), MLflow store
    # and artifacts (./mlruns under cwd), Spark local dirs.
    assert (tmp_path / "mlflow.db").exists() and list((tmp_path / "lh").rglob("_delta_log"))
    assert files_holding(tmp_path, needles) == []
