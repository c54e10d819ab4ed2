"""Ingest on real shared samples and on bad input: every record ends up kept or rejected."""

import gzip
import json
import shutil

import pandas as pd
import pytest

from webscale_rl import tables
from webscale_rl.errors import WebscaleError
from webscale_rl.jobs import ingest
from webscale_rl.udfs.read.warc import WarcParams, iter_records


def run_ingest(spark, cfg, inputs, fmt="auto"):
    cfg.ingest.input = [str(p) for p in inputs]
    cfg.ingest.format = fmt
    return ingest.run(spark, cfg)


def table_counts(spark, cfg):
    from pyspark.sql import functions as F

    docs = tables.read(spark, tables.table_ref(cfg, "documents")).count()
    rej = tables.read(spark, tables.table_ref(cfg, "rejects")).where(F.col("stage") == "ingest")
    return docs, rej


def records_in(path) -> int:
    """Records the reader yields for a file, counted outside Spark."""
    with open(path, "rb") as f:
        return sum(1 for _ in iter_records(f, str(path), WarcParams()))


WEB_SAMPLES = [
    "web/web_pages_small.warc.gz",
    "web/web_pages.warc.wet.gz",
    "web/cc/CC-MAIN-2020-34-sample.warc.gz",
    "web/cc/CC-MAIN-2024-22-sample.warc.gz",
    "web/cc/CC-MAIN-2024-22-sample.warc.wet.gz",
    "web/cc/dolma-crawl-sample-0000.warc.gz",
    "web/cc/dolma-crawl-sample-0001.warc.gz",
    "web/cc/ccnet-sample.wet.txt",
    "web/cc/warcio-example.warc.gz",
]


@pytest.mark.parametrize("name", WEB_SAMPLES)
def test_every_web_sample_is_accounted_for(spark, make_cfg, shared_data, name):
    cfg = make_cfg()
    path = shared_data / name
    result = run_ingest(spark, cfg, [path])
    expected = records_in(path)
    assert result.rows_in == expected > 0
    docs, rej = table_counts(spark, cfg)
    assert docs == result.rows_out
    assert rej.count() == result.rejected
    assert result.rows_out + result.rejected + result.skipped == expected
    assert result.rows_out > 0
    # WARC/1.1 `<uri>` brackets are stripped from the stored URL.
    urls = [
        r.url
        for r in tables.read(spark, tables.table_ref(cfg, "documents")).select("url").collect()
    ]
    assert not any(u and (u.startswith("<") or u.endswith(">")) for u in urls)


def test_reingest_adds_no_rows(spark, make_cfg, shared_data):
    cfg = make_cfg()
    path = shared_data / "web/web_pages_small.warc.gz"
    first = run_ingest(spark, cfg, [path])
    docs1, rej1 = table_counts(spark, cfg)
    second = run_ingest(spark, cfg, [path])
    docs2, rej2 = table_counts(spark, cfg)
    assert (docs2, rej2.count()) == (docs1, rej1.count())
    # the file was ingested and is unchanged: not one record is read again
    assert (second.rows_in, second.rows_out, second.skipped) == (0, 0, 0)
    assert first.metrics["input_files_read"] == 1 and first.rows_out > 0
    assert second.metrics["input_files_skipped"] == 1


def test_doc_ids_are_deterministic(spark, make_cfg, shared_data, tmp_path):
    path = shared_data / "web/cc/dolma-crawl-sample-0000.warc.gz"
    ids = []
    for i in range(2):
        cfg = make_cfg(lakehouse=str(tmp_path / f"lh{i}"))
        run_ingest(spark, cfg, [path])
        df = tables.read(spark, tables.table_ref(cfg, "documents"))
        ids.append(sorted(r.doc_id for r in df.select("doc_id").collect()))
    assert ids[0] == ids[1] and len(ids[0]) > 0


def test_jsonl_input_with_missing_text_and_bad_lines(spark, make_cfg, tmp_path, shared_data):
    src = tmp_path / "docs.jsonl"
    good = [
        json.loads(line) for line in gzip.open(shared_data / "text/cc_en_head-0091.jsonl.gz", "rt")
    ]
    lines = [
        json.dumps(
            {"url": d.get("url"), "text": d["raw_content"] if "raw_content" in d else d["text"]}
        )
        for d in good
    ]
    lines += [json.dumps({"url": "http://x.invalid/a"}), "{not json", json.dumps({"text": None})]
    src.write_text("\n".join(lines) + "\n")
    cfg = make_cfg()
    result = run_ingest(spark, cfg, [src], "jsonl")
    assert result.rows_in == len(lines)
    assert result.rejects.get("missing_text") == 2
    assert result.rejects.get("malformed_json") == 1
    assert result.rows_out + result.rejected == len(lines)


def test_dolma_json_gz(spark, make_cfg, shared_data):
    cfg = make_cfg()
    result = run_ingest(spark, cfg, [shared_data / "text/dolma-documents-000.json.gz"])
    assert result.rows_in == 10
    assert result.rows_out + result.rejected == 10


def test_parquet_input(spark, make_cfg, tmp_path):
    pq = tmp_path / "in.parquet"
    pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "url": ["https://e.invalid/1", "https://e.invalid/2", None],
            "text": [
                "The Eiffel Tower is 330 metres tall and was finished in 1889.",
                None,
                "Second page text here.",
            ],
        }
    ).to_parquet(pq)
    cfg = make_cfg()
    result = run_ingest(spark, cfg, [pq], "parquet")
    assert (result.rows_in, result.rows_out, result.rejects) == (3, 2, {"missing_text": 1})


def test_parquet_without_text_column_is_a_clear_error(spark, make_cfg, tmp_path):
    pq = tmp_path / "in.parquet"
    pd.DataFrame({"body": ["x"]}).to_parquet(pq)
    with pytest.raises(WebscaleError, match="'text'"):
        run_ingest(spark, make_cfg(), [pq], "parquet")


def test_missing_path_is_a_clear_error(spark, make_cfg, tmp_path):
    with pytest.raises(WebscaleError, match="does not exist"):
        run_ingest(spark, make_cfg(), [tmp_path / "nope.warc.gz"])


def test_not_a_warc_is_a_clear_error(spark, make_cfg, tmp_path):
    bad = tmp_path / "notes.bin"  # the name does not tell: the head is read before any work
    bad.write_bytes(gzip.compress(b"\x00\x01 this is not a web archive \xff" * 100))
    with pytest.raises(WebscaleError, match="not a supported input"):
        run_ingest(spark, make_cfg(), [bad])


def test_empty_file_is_a_clear_error(spark, make_cfg, tmp_path):
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(WebscaleError, match="empty"):
        run_ingest(spark, make_cfg(), [empty])


def test_broken_or_empty_file_named_warc_is_rejected_not_lost(spark, make_cfg, tmp_path):
    """The name says WARC, so nothing is read on the driver: the task accounts for each file."""
    (tmp_path / "notes.warc.gz").write_bytes(gzip.compress(b"\x00\x01 not an archive" * 100))
    (tmp_path / "empty.warc.gz").write_bytes(b"")
    cfg = make_cfg()
    result = run_ingest(spark, cfg, [tmp_path / "notes.warc.gz", tmp_path / "empty.warc.gz"])
    assert result.rows_out == 0 and result.rejects == {"corrupt_record": 1, "empty_file": 1}


def test_declared_format_mismatch_is_a_clear_error(spark, make_cfg, shared_data):
    with pytest.raises(WebscaleError, match="declared jsonl"):
        run_ingest(spark, make_cfg(), [shared_data / "web/cc/warcio-example.warc.gz"], "jsonl")


def warc_record(url: str, payload: bytes, content_type=b"text/html; charset=utf-8") -> bytes:
    http = (
        b"HTTP/1.1 200 OK\r\nContent-Type: "
        + content_type
        + b"\r\nContent-Length: "
        + str(len(payload)).encode()
        + b"\r\n\r\n"
        + payload
    )
    head = (
        b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:"
        + url.encode().hex()[:32].encode()
        + b">\r\n"
        b"WARC-Target-URI: " + url.encode() + b"\r\nWARC-Date: 2024-01-01T00:00:00Z\r\n"
        b"Content-Type: application/http; msgtype=response\r\nContent-Length: "
        + str(len(http)).encode()
        + b"\r\n\r\n"
    )
    return gzip.compress(head + http + b"\r\n\r\n")


def test_bad_records_become_rejects(spark, make_cfg, tmp_path, shared_data):
    body = (
        "<html><body><article><p>"
        + "A real sentence about rivers and lakes. " * 50
        + "</p></article></body></html>"
    )
    good = warc_record("https://ok.invalid/", body.encode())
    bad_utf8 = warc_record(
        "https://bad.invalid/",
        b"<html><body><p>" + b"\xff\xfe\xc3\x28" * 4000 + b"</p></body></html>",
    )
    image = warc_record(
        "https://img.invalid/x.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, b"image/png"
    )
    big = warc_record(
        "https://big.invalid/",
        ("<html><body><p>" + "word " * 4_000_000 + "</p></body></html>").encode(),
    )
    empty = warc_record(
        "https://empty.invalid/", b"<html><body><script>var a=1;</script></body></html>"
    )
    f = tmp_path / "mixed.warc.gz"
    f.write_bytes(good + bad_utf8 + image + big + empty)
    truncated = tmp_path / "truncated.warc.gz"
    data = (shared_data / "web/cc/dolma-crawl-sample-0000.warc.gz").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    cfg = make_cfg()
    result = run_ingest(spark, cfg, [f, truncated], "warc")
    expected = records_in(f) + records_in(truncated)
    assert result.rows_in == expected
    assert result.rows_out + result.rejected == expected
    assert "non_html_payload" in result.rejects
    assert "empty_text" in result.rejects
    assert any(r in result.rejects for r in ("truncated_record", "corrupt_record"))
    docs = tables.read(spark, tables.table_ref(cfg, "documents"))
    urls = {r.url for r in docs.select("url").collect()}
    assert "https://ok.invalid/" in urls
    # the 20 MB record is processed (kept, cut to max_text_chars) rather than crashing a task
    big_row = docs.where("url = 'https://big.invalid/'").select("truncated", "n_chars").collect()
    assert big_row and big_row[0].truncated and big_row[0].n_chars == cfg.ingest.max_text_chars


def test_delta_input(spark, make_cfg, tmp_path, shared_data):
    cfg = make_cfg()
    run_ingest(spark, cfg, [shared_data / "web/cc/dolma-crawl-sample-0000.warc.gz"])
    docs_path = tables.table_ref(cfg, "documents")
    copy = tmp_path / "copy"
    shutil.copytree(docs_path, copy)
    cfg2 = make_cfg(lakehouse=str(tmp_path / "lh2"))
    result = run_ingest(spark, cfg2, [copy])
    assert result.rows_in == tables.read(spark, docs_path).count()
    assert result.rows_out == result.rows_in


def test_auto_format_comes_from_names_and_sniffs_only_unnamed_files(
    spark, make_cfg, tmp_path, monkeypatch
):
    from pathlib import Path

    from webscale_rl.files import format_from_name

    line = '{"id": "1", "url": "https://x.invalid/1", "text": "A short page."}\n'
    (tmp_path / "a.jsonl").write_text(line)
    with gzip.open(tmp_path / "b.json.gz", "wt") as f:
        f.write(line)
    (tmp_path / "part-00000").write_text(line)  # the name does not tell: its head is read
    sniffed = []
    real = ingest.detect_format
    monkeypatch.setattr(ingest, "detect_format", lambda p: sniffed.append(p) or real(p))
    cfg = make_cfg()
    names = ["a.jsonl", "b.json.gz", "part-00000"]
    fmt, files = ingest.resolve_format(spark, cfg, [str(tmp_path / n) for n in names])
    assert fmt == "jsonl" and sorted(Path(f).name for f in files) == names
    assert [Path(p).name for p in sniffed] == ["part-00000"]

    # The name decides without reading a byte (a remote file costs no round trip).
    wet = tmp_path / "wet" / "CC-MAIN-x.warc.wet.gz"
    wet.parent.mkdir()
    wet.write_bytes(b"never opened")
    sniffed.clear()
    assert ingest.resolve_format(spark, cfg, [str(wet)])[0] == "wet" and sniffed == []
    expected = {
        "x.warc.gz": "warc",
        "s3://b/y.WARC": "warc",
        "z.wet": "wet",
        "p.parquet": "parquet",
    }
    assert {n: format_from_name(n) for n in expected} == expected
    assert format_from_name("data.txt") is None and format_from_name("part-0001") is None
