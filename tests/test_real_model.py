"""The LLM stages against a real model: SmolLM2-135M-Instruct served by llama.cpp (xllamacpp) on
127.0.0.1, started once for this module (`webscale_rl.local_model`). No stand-ins here.

A 135M model says what it says; the assertions hold whatever it answers: every input row is kept
or rejected with a known reason, token counts are the server's own, the model and prompt
version are on every row, a rerun is served from the response journal without a single new
request, and what the model verified is grounded in its page and published.
"""

import json
import shutil
from pathlib import Path

import pytest

from webscale_rl import audit, tables
from webscale_rl.cli import main
from webscale_rl.config import load_config
from webscale_rl.jobs.ingest import sample_corpus_path
from webscale_rl.local_model import LocalModelServer, ServerSettings
from webscale_rl.udfs.llm import qa_checks
from webscale_rl.udfs.llm.prompts import prompt_version

LLM_STAGES = ("annotate", "generate", "verify")
# Reasons a row of an LLM stage may be rejected with, whatever the model answers.
KNOWN_REASONS = {
    "not_informative",
    "not_self_contained",
    "domain_not_in_list",
    "too_many_personas",
    "malformed_json",
    "truncated",
    "empty_response",
    "bad_input",
    "no_candidate",
    "checker_incorrect",
    "checker_leak",
    "checker_not_self_contained",
    "checker_no_context",
    "copied_example",
    "not_a_question",
    "weak_support",
    qa_checks.ANSWER_TOO_LONG,
    qa_checks.ANSWER_LEAKED,
    qa_checks.ANSWER_NOT_IN_DOCUMENT,
    qa_checks.REFERS_TO_DOCUMENT,
    qa_checks.BAD_ANSWER_TYPE,
}


def known(reason: str) -> bool:
    return reason in KNOWN_REASONS or reason.startswith("missing_field:")


@pytest.fixture(scope="module")
def server():
    # No skip when the model is missing: `make test` installs it, and a real-model test that
    # can quietly not run is no test. The error says how to install it.
    with LocalModelServer(ServerSettings(port=0, slots=2)) as s:
        yield s


def server_counters(server) -> dict[str, float]:
    import requests

    text = requests.get(server.base_url.removesuffix("/v1") + "/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        if line.startswith("llamacpp:") and line.endswith(tuple("0123456789")):
            name, value = line.split()
            out[name.removeprefix("llamacpp:")] = float(value)
    return out


def corpus(tmp_path: Path, lines: list[int]) -> str:
    docs = Path(sample_corpus_path()).read_text(encoding="utf-8").splitlines()
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(docs[i] + "\n" for i in lines), encoding="utf-8")
    return str(path)


def cli_args(lakehouse: Path, *sets: str) -> list[str]:
    settings = [
        "spark.shuffle_partitions=2",
        "mlflow.enabled=true",
        f"mlflow.tracking_uri=sqlite:///{lakehouse.parent}/mlflow.db",
        "llm_stages.tasks=1",  # one engine, as many requests in flight as the server has slots
        "llm_stages.commit_chunks=1",
        # Small work for a 2-core CI box: one persona per page, pages cut to 700 characters,
        # no few-shot demos, and no filter/dedup stages (the sample pages are clean).
        "tasks.max_personas=1",
        "tasks.max_doc_chars=700",
        "tasks.n_fewshot=0",
        "allow_skip=[filter,dedup,qa_dedup,decontaminate]",
        *sets,
    ]
    return ["--lakehouse", str(lakehouse)] + [a for s in settings for a in ("--set", s)]


def model_sets(server, *stages: str, journal: Path | None = None) -> list[str]:
    sets = server.set_lines()
    if stages:  # only these stages use the model (llm_stages.<stage>.llm.*)
        sets = [f"llm_stages.{st}.{s}" for st in stages for s in sets]
    sets += [f"llm.journal_dir={journal}"] if journal else []
    return [a for s in sets for a in ("--set", s)]


def read(spark, lakehouse: Path, logical: str):
    cfg = load_config(lakehouse=str(lakehouse))
    ref = tables.table_ref(cfg, logical)
    return tables.read(spark, ref).toPandas() if tables.exists(spark, ref) else None


def test_real_model_annotates_generates_and_verifies(spark, server, tmp_path):
    lake = tmp_path / "a" / "lakehouse"
    base = cli_args(lake)
    doc_lines = [3, 13, 21]
    assert main([*base, "run", "--input", corpus(tmp_path, doc_lines), "--stages", "ingest"]) == 0
    # A copy of the lakehouse before any LLM work, for the rerun from the journal below.
    shutil.copytree(lake, tmp_path / "b" / "lakehouse")
    journal = tmp_path / "journal"
    llm = model_sets(server, journal=journal)

    before = server_counters(server)
    assert main([*base, *llm, "run", "--stages", ",".join(LLM_STAGES)]) == 0
    after = server_counters(server)

    cfg = load_config(overrides=base[3::2], lakehouse=str(lake))
    run_id = audit.latest_run_id(cfg)
    by_stage = {a.stage: a for a in audit.audit(spark, cfg, run_id)}
    metrics = audit.stage_metrics(cfg, run_id)
    rejects = read(spark, lake, "rejects")
    for stage in LLM_STAGES:
        # every input row kept or rejected, and rejected only for a reason we know
        assert by_stage[stage].ok and by_stage[stage].missing == 0, by_stage[stage]
        reasons = set(rejects.loc[rejects["stage"] == stage, "reason"])
        assert all(known(r) for r in reasons), reasons
    assert metrics["annotate"]["llm_requests_sent"] >= len(doc_lines)

    # token counts are the server's: our per-request usage sums to its own counters
    sent = {k: sum(metrics[s].get(k, 0) for s in LLM_STAGES) for k in metrics["annotate"]}
    server_prompt = (after["prompt_tokens_total"] - before["prompt_tokens_total"]) + (
        after["prompt_tokens_cached_total"] - before["prompt_tokens_cached_total"]
    )
    assert sent["llm_prompt_tokens"] == server_prompt > 0
    assert (
        sent["llm_completion_tokens"]
        == after["tokens_predicted_total"] - before["tokens_predicted_total"]
    )

    # provenance: the served model and the prompt versions on every answered row
    annotations = read(spark, lake, "annotations")
    assert (annotations["model"] == server.settings.model_name).all()
    versions = f"{prompt_version('llm_filter')},{prompt_version('identify')}"
    assert (annotations["prompt_version"] == versions).all()
    assert (annotations["prompt_tokens"] > 0).all()
    for logical, prefix, task in (("qa_candidates", "", "generate"), ("qa_verified", "verify_", "verify")):  # fmt: skip
        frame = read(spark, lake, logical)
        if frame is not None and len(frame):
            assert (frame[prefix + "model"] == server.settings.model_name).all()
            assert (frame[prefix + "prompt_version"] == prompt_version(task)).all()
            assert (frame[prefix + "completion_tokens"] > 0).all()
            sampling = json.loads(frame[prefix + "sampling"].iloc[0])
            assert sampling[task]["temperature"] == 0.0

    # The same work in a second lakehouse with the same journal: not one request reaches the
    # server, and the outcome is the same row for row.
    lake_b = tmp_path / "b" / "lakehouse"
    base_b = cli_args(lake_b)
    before = server_counters(server)
    assert main([*base_b, *llm, "run", "--stages", ",".join(LLM_STAGES)]) == 0
    after = server_counters(server)
    assert after["tokens_predicted_total"] == before["tokens_predicted_total"]
    assert after["prompt_tokens_total"] == before["prompt_tokens_total"]
    cfg_b = load_config(overrides=base_b[3::2], lakehouse=str(lake_b))
    metrics_b = audit.stage_metrics(cfg_b, audit.latest_run_id(cfg_b))
    for stage in LLM_STAGES:
        assert metrics_b[stage]["llm_requests_sent"] == 0
        assert metrics_b[stage].get("llm_requests_from_journal", 0) == metrics[stage].get(
            "llm_requests", 0
        )
    rejects_b = read(spark, lake_b, "rejects")
    outcome = {
        lh: sorted(
            map(tuple, r.loc[r["stage"].isin(LLM_STAGES), ["stage", "row_id", "reason"]].values)
        )
        for lh, r in (("a", rejects), ("b", rejects_b))
    }
    assert outcome["a"] == outcome["b"]


def test_real_model_checks_rule_generated_pairs_and_they_are_published(spark, server, tmp_path):
    lake = tmp_path / "lakehouse"
    base = cli_args(lake)
    llm = model_sets(server, "verify")
    stages = "ingest,annotate,generate,verify,publish"
    assert main([*base, *llm, "run", "--input", corpus(tmp_path, [6, 15, 18]), "--stages", stages]) == 0  # fmt: skip

    cfg = load_config(overrides=base[3::2], lakehouse=str(lake))
    run_id = audit.latest_run_id(cfg)
    by_stage = {a.stage: a for a in audit.audit(spark, cfg, run_id)}
    assert by_stage["verify"].ok and by_stage["verify"].missing == 0
    metrics = audit.stage_metrics(cfg, run_id)
    assert metrics["verify"]["llm_requests_sent"] > 0
    assert metrics["generate"].get("llm_requests_sent", 0) == metrics["generate"]["llm_requests"]

    rejects = read(spark, lake, "rejects")
    reasons = set(rejects.loc[rejects["stage"] == "verify", "reason"])
    assert all(known(r) for r in reasons), reasons
    verified = read(spark, lake, "qa_verified")
    texts = read(spark, lake, "annotations").set_index("doc_id")["text"]
    published = read(spark, lake, "qa")
    for row in verified.itertuples():
        # the rule engine wrote the pair, the real model checked it
        assert row.model == "rules-v1" and row.verify_model == server.settings.model_name
        assert row.verify_prompt_version == prompt_version("verify")
        assert qa_checks.answer_in_document(row.answer, texts[row.doc_id], qa_checks.QACheckParams())  # fmt: skip
    assert set(published["qa_id"]) == set(verified["qa_id"])  # qa_dedup, decontaminate skipped


def test_a_timed_out_request_is_cancelled_on_the_server_not_run_twice(server):
    import threading

    import requests

    from webscale_rl.udfs.llm.engine import LLMParams
    from webscale_rl.udfs.llm.engine_openai import OpenAIEngine
    from webscale_rl.udfs.llm.interface import LLMRequest

    slots_url = server.base_url.removesuffix("/v1") + "/slots"
    busy, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            busy.append(sum(s["is_processing"] for s in requests.get(slots_url, timeout=5).json()))
            stop.wait(0.1)

    params = LLMParams(
        engine="openai",
        model=server.settings.model_name,
        base_url=server.base_url,
        api_key_env="",
        timeout_s=1.0,
        max_retries=1,
        backoff_base_s=0.0,  # only the cancel grace (default 1 s) separates the two attempts
    )
    engine = OpenAIEngine(params)
    story = [{"role": "user", "content": "Write a very long story about a lighthouse keeper."}]
    request = LLMRequest("story", "generate", story, max_tokens=400)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        [response] = engine.generate([request])  # ~4 s of decoding; 1 s allowed, twice
        stop.wait(1.0)
    finally:
        stop.set()
        watcher.join()
        engine.close()
    assert response.error.startswith("timeout")
    assert engine.server_slots == server.settings.slots
    assert max(busy) == 1  # the retry never ran beside the first attempt
    assert busy[-1] == 0  # and nothing was left generating after the client gave up
