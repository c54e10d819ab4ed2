"""The LLM stages (annotate -> generate -> verify) as Spark jobs over small Delta tables.

Engines: the LLM-free rule engine ("none"), and `SimulatedEngine` driven by the test double
`tests/fakes/scripted_engine.py` (scripted replies per task and per document, a crash on
demand, a model that obeys injected instructions). Per-request call counts are appended to a
file by every worker process, which is how "no finished request was paid twice" is checked.
"""

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from fakes import scripted_engine

from webscale_rl import audit, ids, row_stage, tables
from webscale_rl.jobs import annotate, generate, verify
from webscale_rl.jobs.ingest import sample_corpus_path
from webscale_rl.schemas.tables import ANNOTATIONS, FILTERED, QA_CANDIDATES, QA_VERIFIED
from webscale_rl.udfs.llm.engine import LLMParams
from webscale_rl.udfs.llm.engine_simulated import read_call_counts
from webscale_rl.udfs.llm.qa_checks import QACheckParams, answer_in_document
from webscale_rl.udfs.llm.stage import (
    BatchContext,
    LLMStageParams,
    StageSpec,
    Step,
    default_journal_dir,
    engine_params,
    gpu_profile,
    transform_batch,
)
from webscale_rl.udfs.llm.tasks import TaskParams

FAKES = Path(__file__).parent / "fakes"
INJECTION_DIR = Path(__file__).parent / "data" / "injection"
ONE_CHUNK = LLMStageParams(commit_chunks=1, tasks=2)
LLM_STAGES = (annotate, generate, verify)


def sample_docs() -> list[dict]:
    lines = Path(sample_corpus_path()).read_text(encoding="utf-8").splitlines()
    return [d for d in map(json.loads, lines) if d["text"].strip()]


def write_filtered(spark, cfg, docs: list[tuple[str, str]]) -> list[str]:
    """Documents (url, text) in the filter's layout, as the `deduped` table annotate reads;
    their ids."""
    now = datetime(2026, 1, 1)
    rows = [
        (
            ids.doc_id(url, text),
            url,
            "test",
            "jsonl",
            None,
            "en",
            1.0,
            text,
            len(text),
            False,
            None,
            ids.content_digest(text),
            now,
            {},
            "test",
        )
        for url, text in docs
    ]
    df = spark.createDataFrame(rows, FILTERED)
    tables.merge_new(spark, tables.table_ref(cfg, "deduped"), df, FILTERED, ["doc_id"])
    return [r[0] for r in rows]


@pytest.fixture(scope="module")
def scripted(spark):
    """Ship the scripted responders to the Python workers as the module `scripted_engine`."""
    spark.sparkContext.addPyFile(str(FAKES / "scripted_engine.py"))
    return "scripted_engine"


def simulated(tmp_path, responder: str, *extra: str) -> list[str]:
    return [
        "llm.engine=simulated",
        f"llm.simulated_responder=scripted_engine:{responder}",
        "llm.simulated_prompt_tokens_per_s=1e12",  # no sleeping: timing is the benchmark's job
        "llm.simulated_gen_tokens_per_s=1e12",
        f"llm.simulated_counts_path={tmp_path / 'calls.txt'}",
        *extra,
    ]


def read(spark, cfg, logical: str) -> pd.DataFrame:
    return tables.read(spark, tables.table_ref(cfg, logical)).toPandas()


def rejects(spark, cfg) -> pd.DataFrame:
    return read(spark, cfg, "rejects")


def assert_conserved(spark, cfg, results) -> None:
    for result in results:
        assert result.rows_in == result.rows_out + result.rejected + result.skipped, result
        units = audit.audit_tables(spark, cfg, result.stage)
        assert units.missing == 0 and units.units == units.in_output + units.in_rejects, units


def run_all(spark, cfg, params=ONE_CHUNK):
    return [stage.run(spark, cfg, params) for stage in LLM_STAGES]


# --- the LLM-free engine, end to end ----------------------------------------------------------


def test_rule_engine_stages_give_grounded_verified_pairs_and_conserve_rows(spark, make_cfg):
    cfg = make_cfg()
    docs = sample_docs()[::4]
    write_filtered(spark, cfg, [(d["url"], d["text"]) for d in docs])
    results = [
        annotate.run(spark, cfg, LLMStageParams(commit_chunks=2, tasks=2)),
        generate.run(spark, cfg, ONE_CHUNK),
        verify.run(spark, cfg, ONE_CHUNK),
    ]
    assert_conserved(spark, cfg, results)
    ann, gen, ver = results
    assert ann.rows_in == len(docs) and ann.rows_out > 0 and ver.rows_out > 0
    # annotate sends identify only for the documents llm_filter kept
    assert ann.metrics["llm_requests.llm_filter"] == len(docs)
    identify_rejects = sum(n for r, n in ann.rejects.items() if r != "not_informative")
    assert ann.metrics["llm_requests.identify"] == ann.rows_out + identify_rejects
    # every unit was sent exactly once: the UDF was not evaluated twice
    assert gen.metrics["llm_requests"] == gen.rows_in

    annotations = read(spark, cfg, "annotations")
    texts = dict(zip(annotations["doc_id"], annotations["text"], strict=True))
    verified = read(spark, cfg, "qa_verified")
    for row in verified.itertuples():
        assert answer_in_document(row.answer, texts[row.doc_id], QACheckParams()), row
        assert row.model == "rules-v1" and row.verify_model == "rules-v1"
        assert row.prompt_version.startswith("generate-")
        assert row.verify_prompt_version.startswith("verify-")
        assert set(json.loads(row.sampling)["generate"]) == {
            "temperature",
            "top_p",
            "max_tokens",
            "seed",
        }
        assert row.prompt_tokens > 0 and row.verify_completion_tokens > 0
    assert annotations["prompt_version"].str.match(r"llm_filter-\w+,identify-\w+$").all()
    assert set(json.loads(annotations["sampling"][0])) == {"llm_filter", "identify"}
    # tokens of rejected rows are in the totals too, so totals >= what the kept rows record
    candidates = read(spark, cfg, "qa_candidates")
    assert gen.metrics["llm_prompt_tokens"] >= candidates["prompt_tokens"].sum() > 0
    assert gen.metrics["llm_tokens_per_accepted_row"] > 0


# --- scripted replies: every broken answer has its reject reason -----------------------------


def scenario_docs() -> list[tuple[str, str, str | None]]:
    """(url, text, scenario): one sample page per scenario with its marker, plus two clean."""
    docs = sample_docs()
    out = []
    for i, scenario in enumerate([*scripted_engine.EXPECTED, None, None]):
        doc = docs[(i * 7) % len(docs)]
        marker = f"\n[scenario:{scenario}]" if scenario else ""
        out.append((doc["url"] + f"?s={i}", doc["text"] + marker, scenario))
    return out


def test_scripted_replies_end_as_the_right_rejects_and_the_jobs_complete(
    spark, make_cfg, tmp_path, scripted
):
    cfg = make_cfg(*simulated(tmp_path, "respond"))
    docs = scenario_docs()
    doc_ids = write_filtered(spark, cfg, [(u, t) for u, t, _ in docs])
    results = run_all(spark, cfg)
    assert_conserved(spark, cfg, results)

    rej = rejects(spark, cfg)
    stage_of = {"llm_filter": "annotate", "identify": "annotate"}
    verified = read(spark, cfg, "qa_verified")
    for doc_id, (_, _, scenario) in zip(doc_ids, docs, strict=True):
        if scenario is None:
            assert (verified["doc_id"] == doc_id).sum() == 3  # one pair per persona
            assert not (rej["doc_id"] == doc_id).any()
            continue
        task, reason = scripted_engine.EXPECTED[scenario]
        stage = stage_of.get(task, task)
        mine = rej[(rej["doc_id"] == doc_id) & (rej["stage"] == stage)]
        assert len(mine) > 0 and set(mine["reason"]) == {reason}, (scenario, mine)
        assert not (verified["doc_id"] == doc_id).any()
    # llm_filter rejects never reach identify
    n_filter = sum(1 for _, _, s in docs if s and s.startswith("filter-"))
    assert results[0].metrics["llm_requests.identify"] == len(docs) - n_filter


def test_batch_level_provenance_bad_input_and_no_candidate(tmp_path):
    """Pandas level, no Spark: two calls summed, a row without text, a page out of sentences."""
    llm = LLMParams(engine="none")
    spec = annotate.SPEC
    ctx = BatchContext(spec, llm, TaskParams(), "run-1")
    doc = sample_docs()[3]
    pdf = pd.DataFrame(
        [
            {"doc_id": "a", "url": doc["url"], "source": "s", "text": doc["text"]},
            {"doc_id": "b", "url": None, "source": "s", "text": "   "},
        ]
    )
    out = transform_batch(pdf, ctx).set_index("doc_id")
    assert list(transform_batch(pdf, ctx).columns[: len(spec.columns)]) == list(spec.columns)
    assert out.loc["b", "_reject_reason"] == "bad_input"
    assert out.loc["a", "_reject_reason"] is None and out.loc["a", "_row_id"] == "a"
    assert out.loc["a", "model"] == "rules-v1" and out.loc["a", "run_id"] == "run-1"
    assert out.loc["a", "prompt_version"].count(",") == 1  # llm_filter + identify
    # summed tokens of both calls equal what the engine reports for each
    from webscale_rl.udfs.llm.engine_rules import RuleEngine
    from webscale_rl.udfs.llm.tasks import build_request

    row = {"doc_id": "a", "text": doc["text"]}
    engine = RuleEngine()
    total = sum(
        (r := engine.generate([build_request(t, row, TaskParams(), llm)])[0]).prompt_tokens
        + r.completion_tokens
        for t in ("llm_filter", "identify")
    )
    assert out.loc["a", "prompt_tokens"] + out.loc["a", "completion_tokens"] == total

    units = pd.DataFrame(
        [
            {
                "qa_id": f"q{k}",
                "doc_id": "a",
                "url": None,
                "source": "s",
                "text": "Short page. "
                "The Kelso Bay bridge opened to traffic in 1932 after six years of work.",
                "domain": "Other",
                "persona": "a reader",
                "persona_idx": k,
            }
            for k in (0, 5)
        ]
    )
    gen = transform_batch(units, BatchContext(generate.SPEC, llm, TaskParams(), "r"))
    assert list(gen["_reject_reason"]) == [None, "no_candidate"]


def test_step_is_a_task_or_a_check():
    with pytest.raises(ValueError):
        Step()
    with pytest.raises(ValueError):
        Step(task="translate")
    with pytest.raises(ValueError):
        Step(task="verify", check=verify.grounding_check)
    assert StageSpec("s", "k", ("a",), (Step(task="verify"),), "v_").provenance_columns()[0] == (
        "v_model"
    )


# --- resume after a crash ----------------------------------------------------------------------


def annotation_rows(spark, die_chunk: int, chunks: int) -> tuple[list[tuple], dict]:
    """Annotations of 4 sample pages, 3 personas each; personas of units in `die_chunk` get
    the `[die]` marker that `respond_or_die` crashes on."""

    now = datetime(2026, 1, 1)
    rows = []
    for d in sample_docs()[1:13:3]:
        personas = [f"a {d['domain']} student", "a journalist", "a retired teacher"]
        rows.append(
            [
                ids.doc_id(d["url"], d["text"]),
                d["url"],
                "test",
                d["text"],
                True,
                True,
                "ok",
                d["domain"],
                personas,
                "m",
                "v",
                "{}",
                1,
                1,
                "test",
                now,
            ]
        )
    units = generate.units(spark.createDataFrame([tuple(r) for r in rows], ANNOTATIONS))
    chunk_of = {
        (u["doc_id"], u["persona_idx"]): u["chunk"]
        for u in units.select(
            "doc_id", "persona_idx", row_stage.chunk_of("doc_id", chunks).alias("chunk")
        ).collect()
    }
    for r in rows:
        r[8] = [f"[die] {p}" if chunk_of[(r[0], k)] == die_chunk else p for k, p in enumerate(r[8])]
    return [tuple(r) for r in rows], chunk_of


def write_annotations(spark, cfg, rows) -> None:
    df = spark.createDataFrame(rows, ANNOTATIONS)
    tables.merge_new(spark, tables.table_ref(cfg, "annotations"), df, ANNOTATIONS, ["doc_id"])


def unit_of(request_id: str) -> tuple[str, int]:
    doc_id, idx = request_id.split(":")[1].split("#")
    return doc_id, int(idx)


def journaled_ids(lakehouse: Path) -> set[str]:
    files = (lakehouse / "_llm_journal").rglob("*.jsonl")
    return {json.loads(line)["request_id"] for f in files for line in f.read_text().splitlines()}


def test_generate_resumes_after_a_crash_without_paying_twice(spark, make_cfg, tmp_path, scripted):
    params = LLMStageParams(commit_chunks=2, tasks=2)
    rows, chunk_of = annotation_rows(spark, die_chunk=1, chunks=2)
    later = {u for u, c in chunk_of.items() if c == 1}
    assert len(later) >= 3  # two tasks: one of them gets two units, so the crash happens

    crash = tmp_path / "crash"
    cfg = make_cfg(*simulated(crash, "respond_or_die", "llm.batch_size=1"))
    write_annotations(spark, cfg, rows)
    with pytest.raises(Exception, match="EngineDied|engine died"):
        generate.run(spark, cfg, params)
    committed = read(spark, cfg, "qa_candidates")
    committed_units = zip(committed["doc_id"], committed["persona_idx"], strict=True)
    assert not any(unit in later for unit in committed_units)
    # Finished = journaled. (A request the engine answered just as Spark killed its task may be
    # counted but not journaled: that one is lost with the worker and sent once more.)
    finished = {r for r in journaled_ids(tmp_path / "lakehouse") if unit_of(r) in later}
    assert finished, "the crash should come after some work of its chunk was finished"

    cfg2 = make_cfg(*simulated(crash, "respond", "llm.batch_size=1"))
    resumed = generate.run(spark, cfg2, params)
    calls = read_call_counts(crash / "calls.txt")
    assert all(calls[r] == 1 for r in finished), "a finished request was sent again"
    assert max(calls.values()) <= 2
    assert {unit_of(r) for r in calls} == set(chunk_of)
    assert resumed.metrics["llm_requests_from_journal"] == len(finished)
    assert resumed.skipped == len(chunk_of) - len(later)

    clean = tmp_path / "clean"
    cfg3 = make_cfg(*simulated(clean, "respond"), lakehouse=str(clean / "lakehouse"))
    write_annotations(spark, cfg3, rows)
    generate.run(spark, cfg3, params)

    def table(c):
        df = read(spark, c, "qa_candidates").drop(columns=["run_id", "created_at"])
        return df.sort_values("qa_id").reset_index(drop=True)

    pd.testing.assert_frame_equal(table(cfg2), table(cfg3))
    rej = [rejects(spark, c).sort_values("row_id")[["row_id", "reason"]] for c in (cfg2, cfg3)]
    pd.testing.assert_frame_equal(rej[0].reset_index(drop=True), rej[1].reset_index(drop=True))


# --- prompt injection ----------------------------------------------------------------------------


def test_injected_pages_keep_the_schema_and_pass_only_grounded_pairs(
    spark, make_cfg, tmp_path, scripted
):
    cfg = make_cfg(*simulated(tmp_path, "gullible"))
    pages = {p.stem: p.read_text(encoding="utf-8") for p in sorted(INJECTION_DIR.glob("*.txt"))}
    doc_ids = write_filtered(spark, cfg, [(f"https://x.invalid/{k}", t) for k, t in pages.items()])
    by_name = dict(zip(pages, doc_ids, strict=True))
    results = run_all(spark, cfg)
    assert_conserved(spark, cfg, results)

    for logical, schema in (
        ("annotations", ANNOTATIONS),
        ("qa_candidates", QA_CANDIDATES),
        ("qa_verified", QA_VERIFIED),
    ):
        got = tables.read(spark, tables.table_ref(cfg, logical)).schema
        assert [(f.name, f.dataType) for f in got] == [(f.name, f.dataType) for f in schema]

    rej = rejects(spark, cfg)

    def reasons(name, stage):
        return set(rej[(rej["doc_id"] == by_name[name]) & (rej["stage"] == stage)]["reason"])

    # the model obeyed the planted JSON; the parsers and checks did not
    assert reasons("fake_system_message", "annotate") == {"domain_not_in_list"}
    # "900" is in the page (inside the planted JSON), so the checks let it by; the checker not
    assert reasons("fake_answer_json", "verify") == {"checker_incorrect"}
    verified = read(spark, cfg, "qa_verified")
    assert len(verified) > 0
    text_of = {v: pages[k] for k, v in by_name.items()}
    for row in verified.itertuples():
        assert answer_in_document(row.answer, text_of[row.doc_id], QACheckParams())
        assert row.answer not in {"900", "42", "Berlin", "PWNED", "Me"}


# --- driver-side settings --------------------------------------------------------------------------


def test_journal_defaults_under_the_lakehouse(make_cfg, tmp_path):
    cfg = make_cfg("llm.engine=simulated")
    assert engine_params(cfg).journal_dir == str(tmp_path / "lakehouse" / "_llm_journal")
    assert engine_params(make_cfg("llm.journal_dir=/j", "llm.engine=simulated")).journal_dir == "/j"
    assert engine_params(make_cfg()).journal_dir is None  # the rule engine costs nothing to redo
    assert default_journal_dir(make_cfg(lakehouse="dbfs:/lake")) == "/dbfs/lake/_llm_journal"
    assert default_journal_dir(make_cfg(lakehouse="s3://bucket/lake")) is None


def test_gpu_profile_only_for_vllm(spark):
    assert gpu_profile(LLMParams(engine="none")) is None
    assert gpu_profile(LLMParams(engine="openai", model="m")) is None
    profile = gpu_profile(LLMParams(engine="vllm", model="m", tensor_parallel_size=2))
    assert profile.taskResources["gpu"].amount == 2.0
    profile = gpu_profile(LLMParams(engine="vllm", model="m", gpus_per_task=1))
    assert profile.taskResources["gpu"].amount == 1.0
