"""Hostile input through the whole pipeline: every record is kept or rejected with a reason, and
no Spark task fails. The corpus (tests/data/hostile/hostile_corpus.py) is generated here,
including a 50 MB page and a 512 MB gzip bomb (about 0.5 MB on disk).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from webscale_rl import tables
from webscale_rl.audit import audit
from webscale_rl.cli import main
from webscale_rl.ids import stable_hash
from webscale_rl.jobs.base import load_stage
from webscale_rl.jobs.pipeline import STAGES

HOSTILE = Path(__file__).resolve().parent / "data" / "hostile"


def _load_corpus():
    spec = importlib.util.spec_from_file_location("hostile_corpus", HOSTILE / "hostile_corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


hc = _load_corpus()

# What must happen to the records whose fate is not a judgement call (reason at ingest).
WARC_REASONS = {
    "gzip_bomb": "too_large",
    "not_html_type": "non_html_payload",
    "http_404": "http_status",
    "script_only": "empty_text",
    "empty_body": "empty_text",
}
JSONL_REASONS = {
    "j-null-text": "missing_text",
    "j-no-text": "missing_text",
    "j-number-text": "missing_text",
    "j-empty-text": "empty_text",
}


def test_gzip_bomb_is_read_with_bounded_memory(tmp_path):
    """A 512 MB bomb with max_record_bytes = 8 MB: rejected too_large, peak RSS far below 512 MB."""
    # Build the bomb here: making it costs memory; only the reading process is measured.
    case = hc.WarcCase("gzip_bomb", hc.gzip_bomb(), content_encoding="gzip")
    path = hc.write_warc(tmp_path / "bomb.warc.gz", [case], duplicate_record_id=False)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec, so it would report the
    # peak of the (large) pytest process that spawned the reader.
    script = f"""
import re
from webscale_rl.udfs.read.warc import WarcParams, iter_records
with open({str(path)!r}, "rb") as f:
    rows = list(iter_records(f, "bomb", WarcParams(max_record_bytes=8 * 1024 * 1024)))
status = open("/proc/self/status").read()
print(rows[0]["reject_reason"], int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) // 1024)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    reason, peak_mb = out.stdout.split()
    assert reason == "too_large"
    assert int(peak_mb) < hc.BOMB_BYTES // hc.MB // 2, f"peak RSS {peak_mb} MB"


def run_pipeline(lakehouse: Path, inputs: list[Path], *sets: str) -> int:
    args = ["--lakehouse", str(lakehouse), "--set", "mlflow.enabled=false"]
    for s in sets:
        args += ["--set", s]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(lakehouse.parent)  # run reports written relative to cwd stay in tmp
        return main([*args, "run", "--input", ",".join(str(p) for p in inputs)])


def ingest_fates(spark, cfg) -> tuple[dict, dict]:
    """(source_id -> doc count in documents, ingest reject row_id -> reason)."""
    docs = tables.read(spark, tables.table_ref(cfg, "documents"))
    kept = {r[0]: r[1] for r in docs.groupBy("source_id").count().collect()}
    rej = tables.read(spark, tables.table_ref(cfg, "rejects")).where(F.col("stage") == "ingest")
    return kept, {r["row_id"]: r["reason"] for r in rej.select("row_id", "reason").collect()}


@pytest.mark.slow
def test_hostile_corpus_every_record_kept_or_rejected_no_task_fails(spark, make_cfg, tmp_path):
    cases = hc.warc_cases()
    warc = hc.write_warc(tmp_path / "hostile.warc.gz", cases)
    cut = hc.write_cut_warc(tmp_path / "cut.warc.gz", cases)
    jsonl = hc.write_jsonl(tmp_path / "hostile.jsonl")
    lakehouse = tmp_path / "lh"
    # room for the 50 MB page to be read and extracted; the 512 MB bomb stays over the limit
    big = f"ingest.warc.max_record_bytes={64 * hc.MB}"
    assert run_pipeline(lakehouse, [warc, cut], big) == 0  # a failed task would raise or be 1
    assert run_pipeline(lakehouse, [jsonl]) == 0

    cfg = make_cfg(lakehouse=str(lakehouse))
    kept, rejected = ingest_fates(spark, cfg)
    # WARC: every record (the repeated id too, and the cut file's) is in documents or rejects.
    for case in cases:
        reasons = {r for rid, r in rejected.items() if rid.endswith(":" + case.record_id)}
        assert case.record_id in kept or reasons, f"{case.name} vanished"
        if case.name in WARC_REASONS:
            assert reasons == {WARC_REASONS[case.name]}, case.name
    control = cases[0].record_id
    repeated = [r for rid, r in rejected.items() if rid.endswith(":" + control)]
    # the control page comes 3 times: first, again at the end, and in the cut file
    assert kept.get(control) == 1 and repeated == ["duplicate_id"] * 2
    cut_rows = {rid: r for rid, r in rejected.items() if "cut.warc.gz" in rid}
    assert "truncated_record" in cut_rows.values()
    docs = tables.read(spark, tables.table_ref(cfg, "documents"))
    big_page = docs.where(F.col("url") == hc.WarcCase("page_50mb", b"").url).first()
    assert big_page is not None and big_page["truncated"]

    # JSON lines: every line is accounted for, by its id or by its row id.
    lines = [line for _, line in hc.jsonl_lines()]
    jsonl_rejects = {rid: r for rid, r in rejected.items() if "hostile.jsonl" in rid}
    for rid, line in hc.jsonl_lines():
        # a JSON line's row id is `<file uri>:<hash of the line>`
        suffix = ":" + stable_hash(line, length=20)
        fate = next((r for k, r in jsonl_rejects.items() if k.endswith(suffix)), None)
        assert (rid is not None and rid in kept) or fate, f"line {line[:60]!r} vanished"
        if rid in JSONL_REASONS:
            assert fate == JSONL_REASONS[rid], rid
    total_lines = len(lines) + 1  # + the invalid-UTF-8 line
    n_docs = docs.where(F.col("source_format") == "jsonl").count()
    assert n_docs + len(jsonl_rejects) == total_lines

    # Every later stage accounted for each of its input rows, without duplicates.
    results = audit(spark, cfg, None)
    assert results and all(r.ok for r in results), [r for r in results if not r.ok]
    rej = tables.read(spark, tables.table_ref(cfg, "rejects"))
    assert rej.groupBy("stage", "row_id").count().where(F.col("count") > 1).count() == 0
    assert rej.where(F.col("reason").isNull() | (F.col("reason") == "")).count() == 0
    for stage in STAGES:
        module = load_stage(stage)
        ref = tables.table_ref(cfg, module.OUTPUT)
        if tables.exists(spark, ref):
            out = tables.read(spark, ref)
            assert out.groupBy(module.KEY).count().where(F.col("count") > 1).count() == 0, stage
    print(json.dumps({"bad_inputs": hc.case_count(), "ingest_rejects": len(rejected)}))
