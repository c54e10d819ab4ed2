"""The decontaminate job on local Spark + Delta: real benchmark items planted in a QA table."""

import json

import pytest

from webscale_rl import tables
from webscale_rl.errors import WebscaleError
from webscale_rl.jobs import decontaminate
from webscale_rl.udfs.decontam.near_match import NearMatchParams
from webscale_rl.udfs.decontam.ngrams import (
    BenchmarkSpec,
    DecontamIndex,
    DecontamParams,
    canonical_tokens,
    default_benchmarks,
    normalize,
)

# BBH and the rest are covered by tests/test_decontam.py; a smaller index keeps this test quick.
USED = {"gsm8k", "mmlu_stem", "humaneval"}


@pytest.fixture(scope="module")
def params(shared_data):
    return DecontamParams(
        data_root=str(shared_data / "benchmarks"),
        benchmarks=[b for b in default_benchmarks() if b.name in USED],
    )


def line(path, row):
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for i, text in enumerate(fh):
            if i == row:
                return json.loads(text)
    raise IndexError(row)


def qa_rows(root):
    """(QA rows, {qa_id: (benchmark, item_id)} of the planted ones)."""
    g0, g7 = line(root / "gsm8k/test.jsonl", 0), line(root / "gsm8k/test.jsonl", 7)
    mm, mm1 = line(root / "mmlu_stem/test.jsonl", 7), line(root / "mmlu_stem/test.jsonl", 1)
    he = line(root / "humaneval/HumanEval.jsonl.gz", 0)
    robe = "How many bolts in total does a robe take if it takes two bolts of blue fiber and half "
    planted = {
        "p1": (g0["question"], "18", ("gsm8k", "0", "exact_ngram")),
        "p2": (
            "A puzzle from a forum. " + g7["question"].upper(),
            None,
            ("gsm8k", "7", "exact_ngram"),
        ),
        "p3": (mm["question"], "Photosynthesis", ("mmlu_stem", "7", "exact_ngram")),
        "p5": (
            "Complete this function.",
            he["prompt"],
            ("humaneval", he["task_id"], "exact_ngram"),
        ),
        "p6": (
            f"Biology quiz: {mm1['question']}?",
            "an insertion",
            ("mmlu_stem", "1", "containment"),
        ),
        "p7": (robe + "that much white fiber?", "3", ("gsm8k", "1", "near_match")),
    }
    benign = {
        "b1": ("How many kilometres long is the new river bicycle lane?", "12 kilometres"),
        "b2": ("Which enzyme unwinds DNA ahead of the replication fork?", "Helicase"),
        "b3": ("In which year did the village school first open, per the article?", None),
    }
    rows = [(k, q, a) for k, (q, a, _) in planted.items()] + [
        (k, q, a) for k, (q, a) in benign.items()
    ]
    return rows, {k: hit for k, (_, _, hit) in planted.items()}, set(benign)


def write_input(spark, cfg, rows):
    from pyspark.sql import functions as F

    data = [(qa_id, f"d-{qa_id}", q, a) for qa_id, q, a in rows]
    df = spark.createDataFrame(data, "qa_id string, doc_id string, question string, answer string")
    # The other QA columns are null: decontamination neither reads nor changes them.
    df = df.select(
        [
            F.col(f.name) if f.name in df.columns else F.lit(None).cast(f.dataType).alias(f.name)
            for f in decontaminate.SCHEMA.fields
        ]
    )
    df.write.format("delta").save(tables.table_ref(cfg, decontaminate.INPUT))


def decontam_rejects(spark, cfg):
    rejects = tables.read(spark, tables.table_ref(cfg, "rejects"))
    rows = rejects.where("stage = 'decontaminate'").collect()
    return {r["row_id"]: (r["reason"], json.loads(r["detail"]), r["doc_id"]) for r in rows}


def test_job_writes_clean_table_rejects_with_item_method_and_score_and_reruns_idempotently(
    spark, cfg, params, shared_data
):
    rows, planted, benign = qa_rows(shared_data / "benchmarks")
    rows_by_id = {qa_id: f"{q} {a or ''}" for qa_id, q, a in rows}
    write_input(spark, cfg, rows)

    result = decontaminate.run(spark, cfg, params)

    assert result.rows_in == len(rows) and result.rows_out == len(benign)
    expected_reasons = {}
    for bench, _, _ in planted.values():
        expected_reasons[f"contaminated:{bench}"] = (
            expected_reasons.get(f"contaminated:{bench}", 0) + 1
        )
    assert result.rejects == expected_reasons
    clean = tables.read(spark, tables.table_ref(cfg, decontaminate.OUTPUT))
    assert clean.columns == [f.name for f in decontaminate.SCHEMA.fields]
    assert {r["qa_id"] for r in clean.collect()} == benign

    rejected = decontam_rejects(spark, cfg)
    assert set(rejected) == set(planted)
    texts = {qa_id: " ".join(canonical_tokens(f"{q} {a or ''}")) for qa_id, q, a in rows}
    for qa_id, (bench, item, method) in planted.items():
        reason, detail, doc_id = rejected[qa_id]
        assert reason == f"contaminated:{bench}" and doc_id == f"d-{qa_id}"
        assert (detail["benchmark"], detail["item_id"], detail["method"]) == (bench, item, method)
        assert 0.8 <= detail["score"] <= 1.0 and detail["checked"] in (
            "question",
            "question+answer",
        )
        if method == "exact_ngram":
            assert detail["matched"] in " ".join(normalize(f"{rows_by_id[qa_id]}"))
        else:
            assert detail["matched"] and set(detail["matched"].split()) <= set(texts[qa_id].split())
    # The detail is JSON that SQL reads.
    from pyspark.sql import functions as F

    by_method = (
        tables.read(spark, tables.table_ref(cfg, "rejects"))
        .where("stage = 'decontaminate'")
        .groupBy(F.get_json_object("detail", "$.method").alias("method"))
        .count()
        .collect()
    )
    assert {r["method"]: r["count"] for r in by_method} == {
        "exact_ngram": 4,
        "containment": 1,
        "near_match": 1,
    }

    # A rerun finds every row decided and checks nothing twice.
    again = decontaminate.run(spark, cfg, params)
    assert (again.rows_in, again.rows_out, again.rejected) == (0, 0, 0)
    assert tables.read(spark, tables.table_ref(cfg, decontaminate.OUTPUT)).count() == len(benign)
    assert len(decontam_rejects(spark, cfg)) == len(planted)


def append_input(spark, cfg, rows):
    """More QA rows in the input table, as a later generate run adds them."""
    from pyspark.sql import functions as F

    data = [(qa_id, f"d-{qa_id}", q, a) for qa_id, q, a in rows]
    df = spark.createDataFrame(data, "qa_id string, doc_id string, question string, answer string")
    df = df.select(
        [
            F.col(f.name) if f.name in df.columns else F.lit(None).cast(f.dataType).alias(f.name)
            for f in decontaminate.SCHEMA.fields
        ]
    )
    df.write.format("delta").mode("append").save(tables.table_ref(cfg, decontaminate.INPUT))


@pytest.fixture()
def builds(monkeypatch):
    """How many times the job builds the benchmark index."""
    calls = []
    build = DecontamIndex.build.__func__

    def counting(cls, *args, **kwargs):
        calls.append(1)
        return build(cls, *args, **kwargs)

    monkeypatch.setattr(DecontamIndex, "build", classmethod(counting))
    return calls


@pytest.mark.slow  # three decontaminate runs (~22 s): make test-slow, as the other rerun tests
def test_rerun_with_nothing_pending_builds_no_index_and_new_rows_reuse_the_stored_one(
    spark, cfg, params, shared_data, builds
):
    rows, planted, benign = qa_rows(shared_data / "benchmarks")
    first, later = rows[:4], rows[4:]
    write_input(spark, cfg, first)
    result = decontaminate.run(spark, cfg, params)
    assert (result.metrics["index_built"], result.metrics["index_cached"]) == (1, 0)
    assert len(builds) == 1 and result.rows_in == len(first)

    # Nothing new: no index at all (neither built nor loaded), nothing committed.
    version = tables.version(spark, tables.table_ref(cfg, decontaminate.OUTPUT))
    again = decontaminate.run(spark, cfg, params)
    assert len(builds) == 1, "a rerun with nothing pending built the index"
    assert (again.metrics["index_built"], again.metrics["index_cached"]) == (0, 0)
    assert "index=not_needed" in again.notes[0] and again.rows_in == 0
    assert tables.version(spark, tables.table_ref(cfg, decontaminate.OUTPUT)) == version

    # New rows: the stored index is loaded, not rebuilt, and decides them as a build would.
    append_input(spark, cfg, later)
    more = decontaminate.run(spark, cfg, params)
    assert len(builds) == 1, "new rows rebuilt an index stored under the same fingerprint"
    assert (more.metrics["index_built"], more.metrics["index_cached"]) == (0, 1)
    assert more.rows_in == len(later) and more.metrics["index_ngrams"] > 0
    rejected = decontam_rejects(spark, cfg)
    assert set(rejected) == set(planted)
    assert {k: (d["item_id"], d["method"]) for k, (_, d, _) in rejected.items()} == {
        k: (item, method) for k, (_, item, method) in planted.items()
    }

    # Another threshold is another index.
    append_input(spark, cfg, [("n1", "What colour is the new tram?", "green")])
    stricter = params.model_copy(update={"near": NearMatchParams(threshold=0.9)})
    other = decontaminate.run(spark, cfg, stricter)
    assert len(builds) == 2 and other.metrics["index_built"] == 1


def test_index_fingerprint_follows_benchmark_bytes_and_settings(params, shared_data, tmp_path):
    import shutil

    from webscale_rl.udfs.decontam import index_cache

    root = tmp_path / "benchmarks"
    for name in ("gsm8k", "mmlu_stem"):
        shutil.copytree(shared_data / "benchmarks" / name, root / name)
    specs = [b for b in default_benchmarks() if b.name in {"gsm8k", "mmlu_stem"}]
    key = index_cache.fingerprint(specs, params, str(root))
    assert index_cache.fingerprint(specs, params, str(root)) == key
    # The same files elsewhere: the data root is not part of the key.
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)
    assert index_cache.fingerprint(specs, params, str(moved)) == key
    near = NearMatchParams(threshold=0.75)
    assert (
        index_cache.fingerprint(specs, params.model_copy(update={"near": near}), str(root)) != key
    )
    assert index_cache.fingerprint(specs, params.model_copy(update={"n": 8}), str(root)) != key
    assert index_cache.fingerprint(specs[:1], params, str(root)) != key
    with open(root / "gsm8k" / "test.jsonl", "a") as fh:
        fh.write(json.dumps({"question": "A new item?", "answer": "1"}) + "\n")
    assert index_cache.fingerprint(specs, params, str(root)) != key


def test_missing_benchmark_fails_before_writing(spark, cfg, params, shared_data):
    rows, _, _ = qa_rows(shared_data / "benchmarks")
    write_input(spark, cfg, rows)
    broken = params.model_copy(
        update={"benchmarks": [BenchmarkSpec(name="gone", path="gone/x.jsonl", fields=["q"])]}
    )
    with pytest.raises(WebscaleError, match="gone"):
        decontaminate.run(spark, cfg, broken)
    assert not tables.exists(spark, tables.table_ref(cfg, decontaminate.OUTPUT))


def test_check_fields_must_name_qa_columns(spark, cfg, params, shared_data):
    rows, _, _ = qa_rows(shared_data / "benchmarks")
    write_input(spark, cfg, rows)
    # Checked before the index is built: the broken benchmark is never reached.
    gone = BenchmarkSpec(name="gone", path="gone/x.jsonl", fields=["q"])
    bad = params.model_copy(update={"check_fields": [["prompt"]], "benchmarks": [gone]})
    with pytest.raises(WebscaleError, match="prompt"):
        decontaminate.run(spark, cfg, bad)


def test_missing_benchmarks_error_or_skip(tmp_path):
    from webscale_rl.jobs.decontaminate import available_benchmarks, resolve_data_root
    from webscale_rl.udfs.decontam.ngrams import BenchmarkSpec, DecontamParams

    (tmp_path / "here.jsonl").write_text('{"question": "What is two plus two?"}\n')
    specs = [
        BenchmarkSpec(name="here", path="here.jsonl", fields=["question"]),
        BenchmarkSpec(name="gone", path="gone.jsonl", fields=["question"]),
    ]
    keep, skipped = available_benchmarks(
        DecontamParams(benchmarks=specs, on_missing="skip"), str(tmp_path)
    )
    assert ([s.name for s in keep], skipped) == (["here"], ["gone"])
    keep, skipped = available_benchmarks(DecontamParams(benchmarks=specs), str(tmp_path))
    assert len(keep) == 2 and skipped == []  # `error`: the index build names the missing file
    assert resolve_data_root(str(tmp_path)) == str(tmp_path)


# ---------------------------------------------------------------- checked before the first stage


def test_preflight_names_every_missing_benchmark_file(make_cfg, tmp_path):
    from webscale_rl.errors import ConfigError

    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    cfg = make_cfg(f"decontam.data_root={tmp_path}")
    with pytest.raises(ConfigError) as err:
        decontaminate.preflight(None, cfg)
    message = str(err.value)
    for spec in cfg.decontam.benchmarks:
        assert (f"benchmark {spec.name!r}" in message) == (spec.name != "gsm8k"), spec.name
    assert str(tmp_path / "bbh" / "*.json") in message and "fetch_benchmarks.py" in message
    skip = make_cfg(f"decontam.data_root={tmp_path}", "decontam.on_missing=skip")
    (note,) = decontaminate.preflight(None, skip)
    assert "math500" in note and "gsm8k" not in note


def test_run_stops_before_its_first_stage_when_a_benchmark_file_is_missing(spark, tmp_path, capsys):
    from webscale_rl.cli import main

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        json.dumps({"id": "1", "url": "https://a.example/", "text": "x " * 50}) + "\n"
    )
    lakehouse = tmp_path / "lh"
    args = ["--lakehouse", str(lakehouse), "--set", "mlflow.enabled=false"]
    args += ["--set", f"decontam.data_root={tmp_path / 'nowhere'}"]
    # One stage per task, as the Databricks bundle and EMR steps run: ingest checks what
    # decontaminate will need.
    assert main([*args, "stage", "ingest", "--input", str(corpus)]) == 1
    assert "benchmark 'gsm8k': no file at" in capsys.readouterr().err
    assert not (lakehouse / "documents").exists()


def test_preflight_covers_the_rest_of_the_pipeline_but_not_skipped_stages(make_cfg, tmp_path):
    from webscale_rl.errors import ConfigError
    from webscale_rl.jobs import pipeline

    cfg = make_cfg(f"decontam.data_root={tmp_path}")
    for names in (["ingest"], ["qa_dedup", "decontaminate"], ["decontaminate"]):
        with pytest.raises(ConfigError, match="benchmark files missing"):
            pipeline.preflight(None, cfg, names)
    pipeline.preflight(None, cfg, ["publish"])  # nothing after it reads benchmarks
    skipped = make_cfg(f"decontam.data_root={tmp_path}", "allow_skip=[decontaminate]")
    pipeline.preflight(None, skipped, ["ingest"])
