"""Response journal + journaled wrapper, the simulated engine that counts calls, and the factory."""

import json
import multiprocessing
import os

import pytest

from webscale_rl.udfs.llm import engine as llm_engine
from webscale_rl.udfs.llm.engine import LLMParams, describe, get_engine
from webscale_rl.udfs.llm.engine_simulated import SimulatedEngine, read_call_counts
from webscale_rl.udfs.llm.interface import LLMRequest, LLMResponse
from webscale_rl.udfs.llm.journal import ResponseJournal, journaled, prune, spark_partition_scope


def req(i, task="generate", max_tokens=512) -> LLMRequest:
    return LLMRequest(
        request_id=f"req-{i}",
        task=task,
        messages=[{"role": "user", "content": f"question number {i}"}],
        max_tokens=max_tokens,
    )


def answer(request: LLMRequest) -> str:
    return json.dumps({"answer": request.request_id})


def sim(**kw) -> SimulatedEngine:
    return SimulatedEngine(answer, sleep=lambda s: None, **kw)


class CrashOnBatch:
    """Wraps an engine; raises on the n-th generate() call, like a task killed mid-job."""

    name, model = "crashy", "m"

    def __init__(self, inner, crash_on: int):
        self.inner, self.crash_on, self.calls = inner, crash_on, 0

    def generate(self, requests):
        self.calls += 1
        if self.calls == self.crash_on:
            raise RuntimeError("executor lost")
        return self.inner.generate(requests)


# --- journal -------------------------------------------------------------------------------


def test_second_call_makes_zero_engine_calls(tmp_path):
    engine = sim()
    wrapped = journaled(engine, ResponseJournal(tmp_path))
    batch = [req(i) for i in range(5)]
    first = wrapped.generate(batch)
    # A new journal object = a retried task in a fresh process: it must read from disk.
    again = journaled(engine, ResponseJournal(tmp_path)).generate(batch)
    assert engine.calls == {f"req-{i}": 1 for i in range(5)}
    assert again == first
    assert [json.loads(r.text)["answer"] for r in again] == [r.request_id for r in batch]


def test_crash_between_batches_keeps_finished_batch(tmp_path):
    inner = sim()
    batch = [req(i) for i in range(4)]
    with pytest.raises(RuntimeError, match="executor lost"):
        journaled(
            CrashOnBatch(inner, crash_on=2), ResponseJournal(tmp_path), batch_size=2
        ).generate(batch)
    assert sum(inner.calls.values()) == 2  # batch 1 went through, batch 2 crashed

    retry_engine = sim()
    out = journaled(retry_engine, ResponseJournal(tmp_path), batch_size=2).generate(batch)
    assert set(retry_engine.calls) == {"req-2", "req-3"}  # only the unfinished batch is re-sent
    assert [r.error for r in out] == [None] * 4


def test_error_rows_are_not_journaled(tmp_path):
    engine = SimulatedEngine({"req-0": "fine"}, sleep=lambda s: None)  # req-1 has no script
    wrapped = journaled(engine, ResponseJournal(tmp_path))
    out = wrapped.generate([req(0), req(1)])
    assert out[1].error == "no_scripted_response"
    wrapped.generate([req(0), req(1)])
    assert engine.calls == {"req-0": 1, "req-1": 2}


def _write_batch(root, worker):
    ResponseJournal(root).put_many(
        [LLMResponse(f"w{worker}-{i}", f"text {worker} {i}") for i in range(20)]
    )


def test_concurrent_writers_from_several_processes(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_batch, args=(tmp_path, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    ids = [f"w{w}-{i}" for w in range(4) for i in range(20)]
    got = ResponseJournal(tmp_path).get_many(ids)
    assert set(got) == set(ids)
    assert got["w3-7"].text == "text 3 7"


def test_temp_and_unreadable_files_are_skipped_then_picked_up(tmp_path):
    journal = ResponseJournal(tmp_path)
    journal.put_many([LLMResponse("a", "A")])
    (tmp_path / ".tmp-half.jsonl").write_text('{"request_id": "b", "te')
    bad = tmp_path / "99999999999999999999-1-x.jsonl"
    bad.write_text('{"request_id": "c", "text": "C"}\n{"request_id": "d", "te')
    reader = ResponseJournal(tmp_path)
    assert set(reader.get_many(["a", "b", "c", "d"])) == {"a"}
    bad.write_text('{"request_id": "c", "text": "C"}\n')  # the copy finished
    assert set(reader.get_many(["a", "b", "c"])) == {"a", "c"}


def test_scope_puts_each_partition_in_its_own_folder(tmp_path):
    engine = sim()
    scope = {"name": "partition-00001"}
    wrapped = journaled(engine, ResponseJournal(tmp_path), scope=lambda: scope["name"])
    wrapped.generate([req(1)])
    assert list((tmp_path / "partition-00001").glob("*.jsonl"))
    scope["name"] = "partition-00002"
    wrapped.generate([req(1)])  # another partition's folder: not found there, sent again
    assert engine.calls["req-1"] == 2
    assert spark_partition_scope() is None  # outside a Spark task


# --- simulated engine ----------------------------------------------------------------------


def test_simulated_engine_is_deterministic_and_charges_time_per_token():
    slept = []
    engine = SimulatedEngine(
        answer, prompt_tokens_per_s=100, gen_tokens_per_s=10, sleep=slept.append
    )
    out = engine.generate([req(1), req(2)])
    assert out == engine.generate([req(1), req(2)])
    prompt = sum(r.prompt_tokens for r in out)
    gen = sum(r.completion_tokens for r in out)
    assert prompt > 0 and gen > 0
    assert slept[0] == pytest.approx(prompt / 100 + gen / 10)


def test_simulated_script_and_truncation():
    engine = SimulatedEngine({"generate": "x" * 400, "req-9": "scripted"}, sleep=lambda s: None)
    by_task, by_id = engine.generate([req(1, max_tokens=10), req(9)])
    assert by_task.finish_reason == "length" and by_task.completion_tokens == 10
    assert by_id.text == "scripted" and by_id.finish_reason == "stop"


def test_simulated_counts_persist_across_instances(tmp_path):
    path = tmp_path / "counts" / "calls.txt"
    sim(counts_path=path).generate([req(1), req(2)])
    sim(counts_path=path).generate([req(1)])
    assert read_call_counts(path) == {"req-1": 2, "req-2": 1}


# --- factory -------------------------------------------------------------------------------


def test_factory_simulated_with_journal_survives_new_process(tmp_path):
    counts = tmp_path / "calls.txt"
    params = LLMParams(
        engine="simulated",
        model="org/sim",
        journal_dir=str(tmp_path / "journal"),
        simulated_responder="builtins:repr",
        simulated_counts_path=str(counts),
        simulated_prompt_tokens_per_s=1e9,
        simulated_gen_tokens_per_s=1e9,
    )
    llm_engine.clear_engine_cache()
    engine = get_engine(params)
    assert get_engine(params) is engine  # one engine per process
    engine.generate([req(1), req(2)])
    llm_engine.clear_engine_cache()  # as if a new Python worker
    out = get_engine(params).generate([req(1), req(2), req(3)])
    llm_engine.clear_engine_cache()
    assert read_call_counts(counts) == {"req-1": 1, "req-2": 1, "req-3": 1}
    assert out[0].text.startswith("LLMRequest(")
    assert (tmp_path / "journal" / "simulated-org_sim").is_dir()


def test_params_validation_and_describe(monkeypatch):
    with pytest.raises(ValueError, match="model is required"):
        LLMParams(engine="vllm")
    with pytest.raises(ValueError, match="both"):
        LLMParams(databricks_secret_scope="s")
    with pytest.raises(ValueError):
        LLMParams(unknown_field=1)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret-value")
    d = describe(LLMParams(engine="openai", model="gpt"))
    assert d["api_key_source"] == "env:OPENAI_API_KEY"
    assert "sk-very-secret-value" not in json.dumps(d)


def test_prune_deletes_only_old_journal_files(tmp_path):
    journal = ResponseJournal(tmp_path / "j").scoped("generate", "p0")
    journal.put_many([LLMResponse(request_id="old", text="{}")])
    journal.put_many([LLMResponse(request_id="new", text="{}")])
    files = sorted((tmp_path / "j").rglob("*.jsonl"))
    assert len(files) == 2
    week_ago = files[0].stat().st_mtime - 8 * 24 * 3600
    os.utime(files[0], (week_ago, week_ago))
    assert prune(tmp_path / "j", 168) == 1
    fresh = ResponseJournal(tmp_path / "j").scoped("generate", "p0")
    assert set(fresh.get_many(["old", "new"])) == {"new"}
    assert prune(tmp_path / "missing", 168) == 0
