"""WARC/WET parsing on every shared sample and on broken input made in tmp_path.

Expected counts come from an independent scan of the decompressed bytes (regular expressions
over the WARC header blocks), never from FastWARC.
"""

from __future__ import annotations

import gzip
import io
import re
import uuid
from collections import Counter
from pathlib import Path

import pytest

from webscale_rl.udfs.read.warc import (
    WarcParams,
    WarcStats,
    decode_html,
    html_lang,
    iter_records,
    sniff_format,
    sniff_path,
)

SAMPLES = [
    "web/web_pages_small.warc.gz",
    "web/web_pages.warc.wet.gz",
    "web/cc/CC-MAIN-2020-34-sample.warc.gz",
    "web/cc/CC-MAIN-2024-22-sample.warc.gz",
    "web/cc/CC-MAIN-2024-22-sample.warc.wet.gz",
    "web/cc/dolma-crawl-sample-0000.warc.gz",
    "web/cc/dolma-crawl-sample-0001.warc.gz",
    "web/cc/warcio-example.warc.gz",
    "web/cc/ccnet-sample.wet.txt",
]
ROW_KEYS = {
    "record_id",
    "url",
    "warc_date",
    "record_type",
    "text",
    "html_lang",
    "reject_reason",
    "reject_detail",
}
REASONS = {
    "non_html_payload",
    "http_status",
    "undecodable",
    "empty_text",
    "too_large",
    "truncated_record",
    "corrupt_record",
    "extract_failed",
}
HEADER_BLOCK = re.compile(rb"^WARC/1\.[01]\r?\n((?:[^\r\n]+\r?\n)+)", re.MULTILINE)


# ------------------------------------------------------------------------------ helpers


def plain_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def scan_headers(data: bytes) -> list[dict[str, str]]:
    """Every WARC header block in the bytes, keys lower-cased."""
    blocks = []
    for match in HEADER_BLOCK.finditer(data):
        headers = {}
        for line in match.group(1).decode("utf-8", "replace").splitlines():
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        blocks.append(headers)
    return blocks


def document_headers(data: bytes) -> list[dict[str, str]]:
    return [h for h in scan_headers(data) if h.get("warc-type") in ("response", "conversion")]


def read_rows(path, params=None, stats=None) -> list[dict]:
    with open(path, "rb") as f:
        return list(iter_records(f, str(path), params or WarcParams(), stats))


def warc_record(rtype: str, block: bytes, uri="http://example.com/", record_id=True) -> bytes:
    lines = ["WARC/1.0", f"WARC-Type: {rtype}", "WARC-Date: 2024-01-01T00:00:00Z"]
    if record_id:
        lines.append(f"WARC-Record-ID: <urn:uuid:{uuid.uuid4()}>")
    lines.append(f"WARC-Target-URI: {uri}")
    if rtype in ("response", "request"):
        lines.append(f"Content-Type: application/http; msgtype={rtype}")
    lines.append(f"Content-Length: {len(block)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + block + b"\r\n\r\n"


def http_response(body: bytes, ctype="text/html; charset=utf-8", status="200 OK", extra=()):
    lines = [f"HTTP/1.1 {status}", f"Content-Type: {ctype}", *extra, f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def page(text: str, lang="en") -> bytes:
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><title>t</title></head><body><article>'
        f"<p>{text}</p></article></body></html>"
    ).encode()


def write_warc(path: Path, records: list[bytes]) -> Path:
    # one gzip member per record, like Common Crawl
    path.write_bytes(b"".join(gzip.compress(r) for r in records))
    return path


LONG_TEXT = (
    "The harbour committee met on Tuesday to discuss the new ferry timetable, which "
    "will add two evening crossings during the summer months and keep the winter service."
)


# ------------------------------------------------------------------------------ shared samples


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_rows_account_for_every_document_record(shared_data, name):
    path = shared_data / name
    data = plain_bytes(path)
    expected = document_headers(data)
    stats = WarcStats()
    rows = read_rows(path, stats=stats)

    assert stats.record_types == Counter(h["warc-type"] for h in scan_headers(data))
    assert len(rows) == len(expected) > 0
    assert stats.kept + sum(stats.rejected.values()) == len(expected)
    assert [r["record_id"] for r in rows] == [h["warc-record-id"] for h in expected]
    assert [r["url"] for r in rows] == [h["warc-target-uri"].strip("<>") for h in expected]
    for row in rows:
        assert set(row) == ROW_KEYS
        assert row["url"] and not row["url"].startswith("<")
        if row["reject_reason"] is None:
            assert row["text"] and row["text"] == row["text"].strip()
        else:
            assert row["reject_reason"] in REASONS and row["text"] is None
    # these are real, mostly good pages: nearly all must give text
    assert stats.kept >= 0.9 * len(expected)


@pytest.mark.parametrize("name", SAMPLES)
def test_sniff_matches_the_record_types(shared_data, name):
    types = {h.get("warc-type") for h in scan_headers(plain_bytes(shared_data / name))}
    assert sniff_path(shared_data / name) == ("wet" if "conversion" in types else "warc")


def test_sniff_sees_past_the_first_gzip_member(shared_data):
    # a WET's first member is only warcinfo: a head cut mid-file must still read as "wet"
    raw = (shared_data / "web/web_pages.warc.wet.gz").read_bytes()[:65536]
    assert sniff_format(raw) == "wet"
    with gzip.open(shared_data / "web/web_pages.warc.wet.gz") as f:
        assert sniff_format(f.read(65536)) == "wet"


def test_sniff_text_and_parquet(shared_data, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert sniff_path(shared_data / "text/cc_en_head-0091.jsonl.gz") == "jsonl"
    assert sniff_path(shared_data / "text/dolma-documents-000.json.gz") == "jsonl"
    assert sniff_path(shared_data / "text/enwiki-excerpt.xml.bz2") is None
    pq.write_table(pa.table({"text": ["a", "b"]}), tmp_path / "t.parquet")
    assert sniff_path(tmp_path / "t.parquet") == "parquet"
    assert (
        sniff_format(b'{"text": "x' + b"y" * 70000) == "jsonl"
    )  # a first line longer than the head
    assert sniff_format(b"[1, 2, 3]\n") is None


def test_wet_text_is_the_record_body(shared_data):
    data = plain_bytes(shared_data / "web/cc/CC-MAIN-2024-22-sample.warc.wet.gz")
    start = data.index(b"WARC-Type: conversion")
    length = int(re.search(rb"Content-Length: (\d+)", data[start:]).group(1))
    body_start = data.index(b"\r\n\r\n", start) + 4
    body = data[body_start : body_start + length].decode("utf-8")
    (row,) = read_rows(shared_data / "web/cc/CC-MAIN-2024-22-sample.warc.wet.gz")
    assert row["text"] == body.strip()


def test_pyarrow_input_stream_without_tell(shared_data):
    # pyarrow's input streams raise on tell(), which FastWARC calls
    import pyarrow.fs as pafs

    path = str((shared_data / "web/web_pages_small.warc.gz").resolve())
    with pafs.LocalFileSystem().open_input_stream(path, compression=None) as stream:
        rows = list(iter_records(stream, path, WarcParams()))
    assert len(rows) == len(document_headers(plain_bytes(Path(path))))


# ------------------------------------------------------------------------------ broken input


@pytest.mark.parametrize("compressed", [True, False])
def test_truncated_file_ends_with_one_reject(shared_data, tmp_path, compressed):
    source = shared_data / "web/web_pages_small.warc.gz"
    data = source.read_bytes() if compressed else plain_bytes(source)
    cut = tmp_path / "cut.warc"
    cut.write_bytes(data[: len(data) // 2])
    full = read_rows(source)
    rows = read_rows(cut)

    assert 1 < len(rows) < len(full)
    assert rows[-1]["reject_reason"] in ("truncated_record", "corrupt_record")
    assert "truncated_record" not in {r["reject_reason"] for r in rows[:-1]}
    assert [r["record_id"] for r in rows[:-1]] == [r["record_id"] for r in full[: len(rows) - 1]]


def test_corrupt_bytes_mid_file_end_it_with_one_reject(shared_data, tmp_path):
    source = shared_data / "web/web_pages_small.warc.gz"
    data = bytearray(source.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 200] = bytes(200)
    path = tmp_path / "corrupt.warc.gz"
    path.write_bytes(bytes(data))
    rows = read_rows(path)
    assert 1 < len(rows) < len(document_headers(plain_bytes(source)))
    assert rows[-1]["reject_reason"] in ("corrupt_record", "truncated_record")


def test_not_a_warc(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are plain notes, not a web archive\n" * 50)
    assert sniff_path(path) is None
    rows = read_rows(path)
    assert [r["reject_reason"] for r in rows] == ["corrupt_record"]
    assert rows[0]["record_id"].startswith(str(path) + "#")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.warc.gz"
    path.write_bytes(b"")
    assert sniff_path(path) is None
    stats = WarcStats()
    assert read_rows(path, stats=stats) == []
    assert stats == WarcStats()


def test_invalid_utf8_bytes_are_replaced_not_fatal(tmp_path):
    body = page(f"Grüße aus München. {LONG_TEXT}", lang="de").replace(b"aus", b"aus \xff\xfe")
    path = write_warc(tmp_path / "bad.warc.gz", [warc_record("response", http_response(body))])
    (row,) = read_rows(path)
    assert row["reject_reason"] is None
    assert "München" in row["text"] and "\ufffd" in row["text"]
    assert row["html_lang"] == "de"


def test_bytes_no_charset_decodes_are_undecodable(tmp_path):
    # 0x81 0x8d 0x8f 0x90 0x9d are invalid in UTF-8 and undefined in cp1252
    body = b"<html><body><p>" + b"\x81\x8d\x8f\x90\x9d" * 400 + b"</p></body></html>"
    path = write_warc(tmp_path / "junk.warc.gz", [warc_record("response", http_response(body))])
    (row,) = read_rows(path)
    assert row["reject_reason"] == "undecodable"


def test_wrongly_declared_charset_uses_the_detected_one():
    latin1 = page("Grüße aus München, schöne Straße und große Häuser am Fluss.").decode()
    assert "Grüße aus München" in decode_html(latin1.encode("latin-1"), "utf-8")
    assert decode_html("€ ok".encode("cp1252"), "no-such-charset").endswith("ok")


def test_20mb_record_is_processed_whole(tmp_path):
    filler = f"<p>{LONG_TEXT}</p>\n".encode() * (20_000_000 // (len(LONG_TEXT) + 8))
    last = b"<p>The final paragraph closes the twenty megabyte page with a unique sentence.</p>"
    body = b"<html><body><article>" + filler + last + b"</article></body></html>"
    assert len(body) > 20_000_000
    records = [
        warc_record("response", http_response(body)),
        warc_record("response", http_response(page(LONG_TEXT))),
    ]
    path = write_warc(tmp_path / "big.warc.gz", records)

    big, small = read_rows(path)
    assert big["reject_reason"] is None
    assert big["text"].endswith("unique sentence.")
    assert small["reject_reason"] is None

    big, small = read_rows(path, WarcParams(max_record_bytes=1 << 20))
    assert big["reject_reason"] == "too_large" and str(len(body)) in big["reject_detail"]
    assert small["reject_reason"] is None and LONG_TEXT in small["text"]


def test_non_html_and_bad_status_are_rejected_with_detail(tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    records = [
        warc_record("response", http_response(png, ctype="image/png")),
        warc_record("response", http_response(b"%PDF-1.4 ...", ctype="application/pdf")),
        warc_record("response", http_response(page(LONG_TEXT), status="404 Not Found")),
        warc_record("response", http_response(b"<html><body><nav></nav></body></html>")),
        warc_record("response", http_response(page(LONG_TEXT))),
    ]
    rows = read_rows(write_warc(tmp_path / "mixed.warc.gz", records))
    reasons = [(r["reject_reason"], r["reject_detail"]) for r in rows]
    assert reasons[:3] == [
        ("non_html_payload", "image/png"),
        ("non_html_payload", "application/pdf"),
        ("http_status", "404"),
    ]
    assert reasons[3][0] == "empty_text"
    assert reasons[4] == (None, None)


def test_broken_content_encoding_rejects_only_that_record(tmp_path):
    broken = http_response(b"\x1f\x8b not really gzip", extra=["Content-Encoding: gzip"])
    good = http_response(gzip.compress(page(LONG_TEXT)), extra=["Content-Encoding: gzip"])
    rows = read_rows(
        write_warc(
            tmp_path / "enc.warc.gz",
            [warc_record("response", broken), warc_record("response", good)],
        )
    )
    assert rows[0]["reject_reason"] == "corrupt_record"
    assert rows[1]["reject_reason"] is None and LONG_TEXT in rows[1]["text"]


def test_missing_record_id_and_skipped_types(tmp_path):
    records = [
        warc_record("warcinfo", b"software: test\r\n"),
        warc_record("request", b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
        warc_record(
            "response",
            http_response(page(LONG_TEXT)),
            uri="<https://example.org/a>",
            record_id=False,
        ),
        warc_record("metadata", b"fetchTimeMs: 12\r\n"),
    ]
    stats = WarcStats()
    (row,) = read_rows(write_warc(tmp_path / "ids.warc.gz", records), stats=stats)
    assert row["record_id"].startswith(str(tmp_path / "ids.warc.gz") + "#")
    assert row["url"] == "https://example.org/a"
    assert stats.record_types == Counter(warcinfo=1, request=1, response=1, metadata=1)
    assert stats.kept == 1 and not stats.rejected


def test_html_lang_sources():
    assert html_lang('<!doctype html><HTML class="x" lang="pt_BR"><body>') == "pt-br"
    assert html_lang("<html><body>", "fr, en") == "fr"
    assert html_lang("<html><body>") is None


def test_params_are_checked():
    with pytest.raises(ValueError):
        WarcParams(extractor="nope")
    with pytest.raises(ValueError):
        WarcParams(max_records=3)
    with pytest.raises(TypeError):
        list(iter_records(b"WARC/1.0", "x"))


def test_closing_the_iterator_early_is_clean(shared_data):
    with open(shared_data / "web/web_pages_small.warc.gz", "rb") as f:
        rows = iter_records(f, "x", WarcParams())
        first = next(rows)
        rows.close()
    assert first["reject_reason"] is None


def test_stream_positions_are_not_required(tmp_path):
    # a stream with read() only (no tell/seek), as some remote readers are
    class ReadOnly:
        def __init__(self, data):
            self._data = io.BytesIO(data)

        def read(self, size=-1):
            return self._data.read(size)

    data = b"".join(
        gzip.compress(warc_record("response", http_response(page(LONG_TEXT)))) for _ in range(3)
    )
    rows = list(iter_records(ReadOnly(data), "mem", WarcParams()))
    assert [r["reject_reason"] for r in rows] == [None, None, None]
