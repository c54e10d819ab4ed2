"""Run artifacts in MLflow and the HTML report, checked as a person would see them (Chromium)."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
import yaml

from webscale_rl import reporting, tables, tracking
from webscale_rl.jobs import pipeline
from webscale_rl.schemas.tables import QA

DOMAINS = ["math", "medicine_health", "coding"]


def write_qa_table(spark, cfg, n: int = 70) -> None:
    """A small `qa` table: three domains, and one question that is an HTML injection attempt."""
    from datetime import datetime

    rows = []
    for i in range(n):
        question = f"What is {i} + 1?" if i else "<script>alert(1)</script> what?"
        rows.append(
            (
                f"qa{i:03d}",
                f"doc{i % 9}",
                question,
                str(i + 1),
                "number",
                DOMAINS[i % 3] if i % 5 else "math",
                "a student",
                f"https://example.org/page/{i}" if i % 7 else "javascript:alert(1)",
                "test",
                "sim",
                "v1",
                cfg.run_id,
                datetime(2025, 1, 1),
            )
        )
    spark.createDataFrame(rows, QA).write.format("delta").save(tables.table_ref(cfg, "qa"))


@pytest.fixture(scope="module")
def tracked_run(spark, tmp_path_factory, shared_data):
    """ingest + filter in one tracked run, a qa table, then log_run_artifacts inside that run."""
    from webscale_rl.config import load_config

    tmp = tmp_path_factory.mktemp("reporting")
    cfg = load_config(
        overrides=[
            "spark.shuffle_partitions=2",
            f"mlflow.tracking_uri=sqlite:///{tmp}/mlflow.db",
            f"ingest.input={shared_data / 'web' / 'web_pages_small.warc.gz'}",
            "llm.api_key_env=MY_KEY",
        ],
        lakehouse=str(tmp / "lakehouse"),
    )
    stages = [s for s in ("ingest", "filter") if s in pipeline.STAGES]
    with tracking.pipeline_run(cfg, "pipeline") as run_id:
        cfg.run_id = run_id
        results = pipeline.run(spark, cfg, stages)
        write_qa_table(spark, cfg)
        reporting.log_run_artifacts(spark, cfg, results)
    return cfg, run_id, results, tmp


def artifact_paths(client, run_id, path=None) -> list[str]:
    out = []
    for info in client.list_artifacts(run_id, path):
        out += artifact_paths(client, run_id, info.path) if info.is_dir else [info.path]
    return out


def test_artifacts_logged_to_the_run(tracked_run, tmp_path):
    from mlflow import MlflowClient

    cfg, run_id, results, _ = tracked_run
    client = MlflowClient(tracking_uri=tracking.tracking_uri(cfg))
    paths = artifact_paths(client, run_id)
    prompts = sorted(p.name for p in _prompt_dir().iterdir() if p.is_file())
    assert prompts, "the package ships prompt files"
    expected = {
        "config/config.yaml",
        "report/funnel.json",
        "report/funnel.png",
        "report/domains.png",
        "report/qa_sample.html",
    } | {f"prompts/{p}" for p in prompts}
    assert expected <= set(paths), sorted(expected - set(paths))
    client.download_artifacts(run_id, "", str(tmp_path))
    files = {p: (tmp_path / p) for p in expected}
    for p, f in files.items():
        assert f.stat().st_size > 0, p

    config = yaml.safe_load(files["config/config.yaml"].read_text())
    assert config["lakehouse"] == cfg.lakehouse
    assert config["llm"]["api_key_env"] == "MY_KEY"  # names where the secret is; not redacted

    for png in ("report/funnel.png", "report/domains.png"):
        assert files[png].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png

    funnel = {s["stage"]: s for s in json.loads(files["report/funnel.json"].read_text())}
    for r in results:
        assert funnel[r.stage]["rows_in"] == r.rows_in
        assert funnel[r.stage]["kept"] == r.rows_in - r.rejected
        assert funnel[r.stage]["rejects"] == r.rejects

    sample = files["report/qa_sample.html"].read_text()
    assert len(re.findall(r"<tr>", sample)) == reporting.SAMPLE_SIZE + 1  # header + 50 rows
    assert "<script>alert" not in sample  # web text is escaped
    assert 'href="javascript' not in sample  # only http(s) URLs become links


def _prompt_dir():
    from importlib.resources import files

    return files("webscale_rl") / "resources" / "prompts"


def test_domain_counts_match_the_table(tracked_run, spark):
    cfg, *_ = tracked_run
    logical, df = reporting.qa_source(spark, cfg)
    assert logical == "qa"
    counts = dict(reporting.domain_counts(df))
    expected = {d: 0 for d in DOMAINS}
    for i in range(70):
        expected[DOMAINS[i % 3] if i % 5 else "math"] += 1
    assert counts == expected


class DomSummary(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: dict[str, str] = {}
        self.table_stack: list[str] = []
        self.rows: dict[str, int] = {}
        self.in_tbody = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images[a.get("id", "")] = a.get("src", "")
        elif tag == "table":
            self.table_stack.append(a.get("id", ""))
        elif tag == "tbody":
            self.in_tbody = True
        elif tag == "tr" and self.in_tbody and self.table_stack:
            t = self.table_stack[-1]
            self.rows[t] = self.rows.get(t, 0) + 1

    def handle_endtag(self, tag):
        if tag == "table" and self.table_stack:
            self.table_stack.pop()
        elif tag == "tbody":
            self.in_tbody = False


def test_report_renders_in_a_browser(tracked_run, spark, tmp_path):
    cfg, run_id, results, _ = tracked_run
    path = reporting.render_report(spark, cfg, out=str(tmp_path / "report.html"))  # latest run
    text = open(path, encoding="utf-8").read()
    assert run_id in text
    assert "<script>alert" not in text
    for r in results:
        assert f"<td>{r.stage}</td><td>{r.rows_in}</td>" in text

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip(
            "chromium is not installed (`apt-get install -y chromium`): browser check skipped"
        )
    flags = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    url = f"file://{path}"
    dom = subprocess.run(
        [*flags, "--dump-dom", url], capture_output=True, text=True, timeout=180
    ).stdout
    parsed = DomSummary()
    parsed.feed(dom)
    assert parsed.images.get("funnel", "").startswith("data:image/png;base64,"), dom[:500]
    assert parsed.images.get("domains", "").startswith("data:image/png;base64,")
    assert parsed.rows.get("qa-sample") == reporting.SAMPLE_SIZE
    assert "alert(1)" not in "".join(parsed.images)  # nothing executable slipped in

    shot = tmp_path / "report.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1200,1600", url],
        capture_output=True,
        timeout=180,
    )
    assert shot.is_file() and shot.stat().st_size > 0
    from PIL import Image

    img = Image.open(io.BytesIO(shot.read_bytes())).convert("L")
    lo, hi = img.getextrema()
    assert hi - lo > 100, "the screenshot is blank"


def test_report_for_unknown_run_is_a_clear_error(tracked_run, spark):
    from webscale_rl.errors import WebscaleError

    cfg, *_ = tracked_run
    with pytest.raises(WebscaleError, match="not found"):
        reporting.render_report(spark, cfg, run_id="0" * 32)
