"""Rows the engine failed on are not lost: their rejects are retryable, a rerun redoes them,
and the stale reject rows give way to the new outcome (`webscale-rl audit` still balances, no
(stage, row_id) twice). `--retry-rejects <reason>` redoes chosen final reasons on demand."""

import pytest
from fakes.fake_openai_server import FakeOpenAIServer
from fakes.scripted_engine import ChatResponder
from pyspark.sql import functions as F
from test_llm_stages import sample_docs, write_filtered

from webscale_rl import tables
from webscale_rl.cli import main
from webscale_rl.config import load_config
from webscale_rl.reject_reasons import RETRYABLE, engine_failure_reason


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ("timeout: gave up after 6 attempts", "engine_unavailable"),
        ("connection_error: ConnectionError: gave up after 1 attempts", "engine_unavailable"),
        ("http_429: gave up after 6 attempts", "engine_unavailable"),
        ("http_503: gave up after 6 attempts", "engine_unavailable"),
        ("client_error: RuntimeError: cannot schedule new futures", "engine_failed"),
        ("http_401: invalid api key", "engine_failed"),
        ("bad_response: body is not JSON", "engine_failed"),
        ("engine_error: CUDA out of memory", "engine_failed"),  # vllm, one row
        ("http_400: This model's maximum context length is 4096 tokens", "prompt_too_long"),
        ("prompt_too_long: 9000 prompt tokens > 8192", "prompt_too_long"),
        ("refusal", "refused"),
        ("empty_content", "empty_response"),
        ("no_candidate: 0 usable sentences, persona 2", "no_candidate"),
        ("responder_error: no_candidate: 0 usable sentences", "no_candidate"),
        ("rules: KeyError('document')", "engine_error"),
    ],
)
def test_engine_failures_split_into_retryable_and_final(error, reason):
    assert engine_failure_reason(error) == reason
    assert (reason in RETRYABLE) == reason.startswith(("engine_unavailable", "engine_failed"))


# One commit and one task per run, no MLflow: the smallest run that still goes through the CLI.
FAST = [
    "mlflow.enabled=false",
    "spark.shuffle_partitions=1",
    "llm_stages.commit_chunks=1",
    "llm_stages.tasks=1",
]


def summary(capsys, argv) -> str:
    """Run the CLI; its `[annotate] in=.. kept=..` line."""
    capsys.readouterr()
    assert main(argv) == 0
    return next(x for x in capsys.readouterr().out.splitlines() if x.startswith("[annotate]"))


def annotate_outcome(spark, cfg):
    rejects = tables.read(spark, tables.table_ref(cfg, "rejects")).where(
        F.col("stage") == "annotate"
    )
    kept = [r.doc_id for r in tables.read(spark, tables.table_ref(cfg, "annotations")).collect()]
    return kept, {r.row_id: r.reason for r in rejects.collect()}, rejects.count()


def test_outage_then_recovery_completes_every_row(spark, make_cfg, capsys):
    cfg = make_cfg()
    doc_ids = write_filtered(spark, cfg, [(d["url"], d["text"]) for d in sample_docs()[:5]])
    sets = [
        *FAST,
        "llm.engine=openai",
        "llm.model=fake-model",
        "llm.api_key_env=WEBSCALE_TEST_NO_SUCH_KEY",
        "llm.max_retries=0",
    ]
    with FakeOpenAIServer(responder=ChatResponder()) as server:
        argv = ["--lakehouse", cfg.lakehouse, "--set", f"llm.base_url={server.base_url}"]
        argv += [x for s in sets for x in ("--set", s)] + ["stage", "annotate"]

        server.fail_next = 3  # an outage: the first three requests get 503
        summary(capsys, argv)
        kept, reasons, _ = annotate_outcome(spark, cfg)
        assert list(reasons.values()).count("engine_unavailable") == 3

        hits = sum(len(h) for h in server.hits.values())
        line = summary(capsys, argv)  # the endpoint is back
        resent = sum(len(h) for h in server.hits.values()) - hits
        kept, reasons, n_rejects = annotate_outcome(spark, cfg)

    # Every document is kept or finally rejected, once, and only the failed ones were redone.
    assert sorted(kept + list(reasons)) == sorted(doc_ids)
    assert len(reasons) == n_rejects and len(set(kept)) == len(kept)
    assert not set(reasons.values()) & RETRYABLE
    assert 3 <= resent <= 6  # each failed row: its failed request (and identify after llm_filter)
    # the rerun redid exactly the three rows: in = kept + rejected + done before
    assert "in=5 " in line and "skipped(done before)=2" in line
    capsys.readouterr()
    assert main(["--lakehouse", cfg.lakehouse, "--set", "mlflow.enabled=false", "audit"]) == 0
    assert "every row accounted for" in capsys.readouterr().out


def test_retry_rejects_redoes_a_final_reason_on_demand(spark, tmp_path, capsys):
    cfg = load_config(lakehouse=str(tmp_path / "lh"))
    pages = [(d["url"], d["text"]) for d in sample_docs()[:2]]
    pages.append(("https://x.invalid/short", "Buy now. Click here."))
    short = write_filtered(spark, cfg, pages)[-1]
    argv = ["--lakehouse", cfg.lakehouse, *[x for s in FAST for x in ("--set", s)]]
    argv += ["stage", "annotate"]

    def run(*extra) -> str:
        return summary(capsys, [*argv, *extra])

    run()
    _, reasons, _ = annotate_outcome(spark, cfg)
    reason = reasons[short]
    assert reason not in RETRYABLE
    # final: not redone (nothing new was inserted, so nothing is read)
    assert "in=0 kept=0 rejected=0 skipped(done before)=0" in run()
    line = run("--retry-rejects", reason)
    n = list(reasons.values()).count(reason)
    assert f"kept=0 rejected={n} skipped(done before)={3 - n}" in line
    _, again, n_rejects = annotate_outcome(spark, cfg)
    assert again == reasons and n_rejects == len(reasons)  # replaced, not duplicated
