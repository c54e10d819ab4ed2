"""The LLM stages through the CLI with `llm.engine=openai`, against a local fake server.

The server (`tests/fakes/fake_openai_server.py` with `scripted_engine.ChatResponder`) is a test
double: it reads the task from the structured-output name and the page, persona, question and
answer back out of the prompt, and answers with the rule engine's logic, so the HTTP engine,
the prompts and the parsers are exercised end to end as with a served model.
"""

import json
from pathlib import Path

from fakes.fake_openai_server import FakeOpenAIServer
from fakes.scripted_engine import ChatResponder

from webscale_rl import audit, tables
from webscale_rl.cli import main
from webscale_rl.config import load_config
from webscale_rl.jobs.ingest import sample_corpus_path
from webscale_rl.udfs.llm.qa_checks import QACheckParams, answer_in_document

STAGES = ("annotate", "generate", "verify")


def test_llm_stages_via_cli_against_an_openai_compatible_server(spark, tmp_path):
    lines = Path(sample_corpus_path()).read_text(encoding="utf-8").splitlines()
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(lines[1:30:5]) + "\n", encoding="utf-8")  # 6 pages
    lakehouse = tmp_path / "lakehouse"
    settings = [
        "spark.shuffle_partitions=2",
        "llm_stages.commit_chunks=1",  # chunked commits are tested in test_llm_stages.py
        "mlflow.enabled=true",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
    ]
    common = ["--lakehouse", str(lakehouse)] + [a for s in settings for a in ("--set", s)]
    assert main([*common, "run", "--input", str(corpus), "--stages", "ingest,filter"]) == 0

    responder = ChatResponder()
    with FakeOpenAIServer(responder=responder) as server:
        llm = [
            "--set", "llm.engine=openai",
            "--set", "llm.model=fake-model",
            "--set", f"llm.base_url={server.base_url}",
            "--set", "llm.api_key_env=WEBSCALE_TEST_NO_SUCH_KEY",
        ]  # fmt: skip
        run = ["run", "--stages", ",".join(STAGES), "--allow-skip", "dedup"]
        assert main([*common, *llm, *run]) == 0
    assert set(responder.tasks) == {"llm_filter", "identify", "generate", "verify"}

    cfg = load_config(overrides=settings, lakehouse=str(lakehouse))
    verified = tables.read(spark, tables.table_ref(cfg, "qa_verified")).toPandas()
    annotations = tables.read(spark, tables.table_ref(cfg, "annotations")).toPandas()
    texts = dict(zip(annotations["doc_id"], annotations["text"], strict=True))
    assert len(verified) > 0
    assert (verified["model"] == "fake-model").all()
    assert (verified["verify_model"] == "fake-model").all()
    for row in verified.itertuples():
        assert answer_in_document(row.answer, texts[row.doc_id], QACheckParams())
        # usage came from the server's reply (characters / 4), not from an estimate of ours
        assert row.prompt_tokens > 100 and row.completion_tokens > 0

    # every request was journaled under the lakehouse by default
    journaled = [
        json.loads(line)["request_id"]
        for f in (lakehouse / "_llm_journal").rglob("*.jsonl")
        for line in f.read_text().splitlines()
    ]
    assert len(journaled) == sum(responder.tasks.values())

    # conservation, over the run's MLflow metrics and over the tables
    run_id = audit.latest_run_id(cfg)
    by_stage = {a.stage: a for a in audit.audit(spark, cfg, run_id)}
    metrics = audit.stage_metrics(cfg, run_id)
    for stage in STAGES:
        assert by_stage[stage].ok, by_stage[stage]
        assert by_stage[stage].metric_in and by_stage[stage].missing == 0
        assert metrics[stage]["llm_prompt_tokens"] > 0
        assert metrics[stage]["llm_requests_sent"] == metrics[stage]["llm_requests"]
    assert metrics["generate"]["llm_requests"] == responder.tasks["generate"]
    assert metrics["annotate"]["llm_tokens_per_accepted_row"] > 0
