"""WARC / WET records -> one dict per document, for the ingest job's Spark tasks.

`iter_records` reads one file with FastWARC (the fastest reader, and a dependency of Resiliparse
already) and yields a row for every `response` and `conversion` record: the extracted text, or
a reject reason. Other record types (request, metadata, warcinfo, revisit, resource) are not
documents and are skipped, only counted in `WarcStats`. The iterator never raises on bad input:
a file that breaks off or is not a WARC ends with one reject row.

WET files that are not well-formed WARC (bare LF line ends and character counts as
Content-Length, as in CCNet's test data) go through a small line-based reader instead.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from pydantic import BaseModel, ConfigDict, Field, field_validator

from webscale_rl.udfs.read.extract import DEFAULT_EXTRACTOR, EXTRACTORS, html_to_text
from webscale_rl.udfs.read.html_payload import (
    decode_html,
    html_lang,
    read_exactly,
    replacement_ratio,
    undo_http_encodings,
)
from webscale_rl.udfs.read.input_format import (
    GZIP_MAGIC,
    HEAD_BYTES,
    plain_head,
    sniff_format,
    sniff_path,
)

# sniff_format and sniff_path are read from here by tests.
__all__ = [
    "WarcParams",
    "WarcStats",
    "decode_html",
    "html_lang",
    "iter_records",
    "sniff_format",
    "sniff_path",
]

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
DOCUMENT_TYPES = ("response", "conversion")

# Reject reasons (the `rejects` table groups by these).
NON_HTML = "non_html_payload"
HTTP_STATUS = "http_status"
UNDECODABLE = "undecodable"
EMPTY_TEXT = "empty_text"
TOO_LARGE = "too_large"
TRUNCATED = "truncated_record"
CORRUPT = "corrupt_record"
EXTRACT_FAILED = "extract_failed"


class WarcParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_record_bytes: int = Field(
        25 * 1024 * 1024,
        ge=1024,
        description="Payloads above this size are rejected (too_large) without being read.",
    )
    min_text_chars: int = Field(
        1, ge=1, description="Extracted text shorter than this (stripped) is rejected (empty_text)."
    )
    extractor: str = Field(
        DEFAULT_EXTRACTOR, description=f"HTML main-text extractor: one of {sorted(EXTRACTORS)}."
    )
    max_replacement_ratio: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Reject as undecodable when more than this share of the text's non-space "
        "characters are U+FFFD replacement characters.",
    )

    @field_validator("extractor")
    @classmethod
    def _known_extractor(cls, value: str) -> str:
        if value not in EXTRACTORS:
            raise ValueError(f"unknown extractor {value!r}; choose one of {sorted(EXTRACTORS)}")
        return value


@dataclass
class WarcStats:
    """What one file held: every record by WARC-Type, and the rows kept / rejected by reason."""

    record_types: Counter = field(default_factory=Counter)
    kept: int = 0
    rejected: Counter = field(default_factory=Counter)


# ------------------------------------------------------------------------------ stream plumbing


class _PeekedStream:
    """A forward-only stream whose first bytes were read ahead, with its own tell().

    FastWARC needs read() and tell() on a Python stream, and pyarrow's input streams raise on
    tell(): counting bytes here makes any readable stream work, seekable or not.
    """

    def __init__(self, stream: BinaryIO, head_size: int = HEAD_BYTES):
        self._stream = stream
        self.head = stream.read(head_size) or b""
        self._buffer = self.head
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        if self._buffer:
            if size is None or size < 0:
                data, self._buffer = self._buffer + (self._stream.read() or b""), b""
            else:
                data, self._buffer = self._buffer[:size], self._buffer[size:]
        else:
            data = self._stream.read() if size is None or size < 0 else self._stream.read(size)
            data = data or b""
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        # the caller opened the stream and closes it
        pass


# ------------------------------------------------------------------------------ rows


def _row(base: dict, text: str | None = None, lang: str | None = None, reason=None, detail=None):
    return {
        **base,
        "text": text,
        "html_lang": lang,
        "reject_reason": reason,
        "reject_detail": detail,
    }


def _text_row(base: dict, text: str, lang: str | None, params: WarcParams) -> dict:
    """The final checks every document passes, HTML-extracted or WET."""
    text = text.strip()
    if replacement_ratio(text) > params.max_replacement_ratio:
        return _row(base, lang=lang, reason=UNDECODABLE, detail="mostly U+FFFD after decoding")
    if len(text) < params.min_text_chars:
        return _row(base, lang=lang, reason=EMPTY_TEXT, detail=f"{len(text)} chars extracted")
    return _row(base, text=text, lang=lang)


def _html_row(base: dict, payload: bytes, charset, content_language, params) -> dict:
    html = decode_html(payload, charset)
    lang = html_lang(html, content_language)
    try:
        text = html_to_text(html, params.extractor)
    except Exception as err:  # a parser failure on one page must not end the file
        return _row(base, lang=lang, reason=EXTRACT_FAILED, detail=f"{type(err).__name__}: {err}")
    return _text_row(base, text, lang, params)


def _wet_row(base: dict, body: bytes, params: WarcParams) -> dict:
    # WET text is UTF-8 by Common Crawl's definition
    return _text_row(base, body.decode("utf-8", errors="replace"), None, params)


def _strip_brackets(uri: str | None) -> str | None:
    # WARC/1.1 writes WARC-Target-URI as <uri> (dolma's crawl samples do)
    if uri and uri.startswith("<") and uri.endswith(">"):
        return uri[1:-1]
    return uri


def _base(record_id, url, date, record_type, source: str, offset: int) -> dict:
    return {
        "record_id": record_id or f"{source}#{offset}",
        "url": _strip_brackets(url),
        "warc_date": date,
        "record_type": record_type,
    }


# ------------------------------------------------------------------------------ FastWARC reader


def _content_type(record) -> str:
    declared = record.http_content_type or record.headers.get("WARC-Identified-Payload-Type")
    return (declared or "").split(";")[0].strip().lower()


def _error_detail(err: BaseException) -> str:
    """A reader error as reject detail; re-raises what must stop the process.

    FastWARC raises OSError on broken input, and a pyo3 PanicException (a BaseException) on
    stream errors: neither may escape a Spark task's iterator.
    """
    if isinstance(err, KeyboardInterrupt | SystemExit | GeneratorExit):
        raise err
    return f"{type(err).__name__}: {err}"[:500]


def _fastwarc_row(record, base: dict, params: WarcParams) -> tuple[dict, bool]:
    """(row, stop): stop when the record was cut short, i.e. the file ends here."""
    size = record.content_length
    ctype = _content_type(record)
    if base["record_type"] == "response":
        if not record.is_http:
            detail = record.headers.get("Content-Type") or "no HTTP message"
            return _row(base, reason=NON_HTML, detail=detail), False
        status = record.http_headers.status_code
        if status != 200:
            return _row(base, reason=HTTP_STATUS, detail=str(status)), False
        if ctype and ctype not in HTML_TYPES:
            return _row(base, reason=NON_HTML, detail=ctype), False
    if size > params.max_record_bytes:
        # not read: FastWARC skips the rest of the record on the next step
        return _row(base, reason=TOO_LARGE, detail=f"{size} bytes"), False
    raw = read_exactly(record.reader, size)
    if len(raw) < size:
        return _row(base, reason=TRUNCATED, detail=f"{len(raw)} of {size} bytes"), True
    if base["record_type"] == "conversion":
        return _wet_row(base, raw, params), False
    try:
        payload = undo_http_encodings(raw, record.http_headers, params.max_record_bytes)
    except Exception as err:  # a broken gzip/chunked body: this record only
        return _row(base, reason=CORRUPT, detail=f"HTTP body: {err}"), False
    if len(payload) > params.max_record_bytes:
        detail = f"over {params.max_record_bytes} bytes once decoded"
        return _row(base, reason=TOO_LARGE, detail=detail), False
    if not ctype and not payload.lstrip()[:1] == b"<":
        return _row(base, reason=NON_HTML, detail="no content type, not markup"), False
    language = record.http_headers.get("Content-Language")
    return _html_row(base, payload, record.http_charset, language, params), False


def _fastwarc_next(records, reader: _PeekedStream, source: str):
    """(record, None) or (None, reject row) or (None, None) at the end of the file."""
    try:
        return next(records), None
    except StopIteration:
        return None, None
    except BaseException as err:
        base = _base(None, None, None, None, source, reader.tell())
        return None, _row(base, reason=CORRUPT, detail=_error_detail(err))


def _iter_fastwarc(reader: _PeekedStream, source: str, params, stats) -> Iterator[dict]:
    from fastwarc.warc import ArchiveIterator

    # auto_decode off: the raw length tells a cut record; encodings are undone per record
    records = iter(ArchiveIterator(reader, parse_http=True, auto_decode="none"))
    while True:
        record, failure = _fastwarc_next(records, reader, source)
        if record is None:
            if failure is not None:
                yield failure
            return
        rtype = str(record.record_type)
        stats.record_types[rtype] += 1
        if rtype not in DOCUMENT_TYPES:
            continue
        headers = record.headers
        base = _base(
            record.record_id,
            headers.get("WARC-Target-URI"),
            headers.get("WARC-Date"),
            rtype,
            source,
            record.stream_pos,
        )
        try:
            row, stop = _fastwarc_row(record, base, params)
        except BaseException as err:  # a reader error inside the payload: the file ends here
            row, stop = _row(base, reason=CORRUPT, detail=_error_detail(err)), True
        yield row
        if stop:
            return


# ------------------------------------------------------------------------------ lenient WET reader


def _is_lf_warc(head: bytes) -> bool:
    first = head.split(b"\n", 1)[0]
    return head.startswith(b"WARC/") and b"\n" in head and not first.endswith(b"\r")


def _iter_lf_blocks(lines) -> Iterator[tuple[int, dict, list[bytes]]]:
    """(offset, headers, body lines) per record, split on the version line.

    Content-Length is not trusted here (CCNet's sample counts characters, not bytes), so a
    body line that is exactly "WARC/1.0" would split a record: acceptable for plain text.
    """
    offset, pos, headers, body, in_headers = 0, 0, None, [], False
    for line in lines:
        start, pos = pos, pos + len(line)
        stripped = line.rstrip(b"\r\n")
        if stripped in (b"WARC/1.0", b"WARC/1.1"):
            if headers is not None:
                yield offset, headers, body
            offset, headers, body, in_headers = start, {}, [], True
        elif headers is None:
            continue
        elif in_headers and not stripped:
            in_headers = False
        elif in_headers:
            key, _, value = stripped.decode("utf-8", errors="replace").partition(":")
            headers[key.strip().lower()] = value.strip()
        else:
            body.append(line)
    if headers is not None:
        yield offset, headers, body


def _iter_lf_wet(reader: _PeekedStream, source: str, params, stats) -> Iterator[dict]:
    if reader.head.startswith(GZIP_MAGIC):
        lines = gzip.GzipFile(fileobj=reader)
    else:
        lines = io.BufferedReader(_RawReader(reader))
    blocks = _iter_lf_blocks(lines)
    while True:
        try:
            offset, headers, body = next(blocks)
        except StopIteration:
            return
        except (OSError, EOFError, zlib.error) as err:
            base = _base(None, None, None, None, source, reader.tell())
            yield _row(base, reason=TRUNCATED, detail=f"{type(err).__name__}: {err}")
            return
        rtype = headers.get("warc-type", "unknown")
        stats.record_types[rtype] += 1
        if rtype not in DOCUMENT_TYPES:
            continue
        base = _base(
            headers.get("warc-record-id"),
            headers.get("warc-target-uri"),
            headers.get("warc-date"),
            rtype,
            source,
            offset,
        )
        size = sum(len(line) for line in body)
        if rtype == "response":
            yield _row(base, reason=CORRUPT, detail="response record in a non-CRLF WARC file")
        elif size > params.max_record_bytes:
            yield _row(base, reason=TOO_LARGE, detail=f"{size} bytes")
        else:
            yield _wet_row(base, b"".join(body), params)


class _RawReader(io.RawIOBase):
    """io.RawIOBase face of _PeekedStream, so io.BufferedReader can split lines."""

    def __init__(self, reader: _PeekedStream):
        self._reader = reader

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._reader.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# ------------------------------------------------------------------------------ entry point


def iter_records(
    stream: BinaryIO, source: str, params: WarcParams | None = None, stats: WarcStats | None = None
) -> Iterator[dict]:
    """One row per response/conversion record of a WARC or WET stream (gzip or not).

    Row keys: record_id, url, warc_date, record_type, text, html_lang, reject_reason,
    reject_detail. `stats`, when given, is filled as the rows go. Never raises on bad data.
    """
    if not hasattr(stream, "read"):
        raise TypeError(f"stream must be a binary file object, got {type(stream).__name__}")
    params = params or WarcParams()
    stats = stats if stats is not None else WarcStats()
    reader = _PeekedStream(stream)
    lenient = _is_lf_warc(plain_head(reader.head))
    rows = (_iter_lf_wet if lenient else _iter_fastwarc)(reader, source, params, stats)
    for row in rows:
        if row["reject_reason"] is None:
            stats.kept += 1
        else:
            stats.rejected[row["reject_reason"]] += 1
        yield row
