"""A WARC response's HTTP payload -> HTML text: transfer and content encodings undone (bounded,
so a compression bomb stays small), the charset declared or detected, and the page's declared
language."""

from __future__ import annotations

import io
import re
import zlib


def read_exactly(reader, size: int) -> bytes:
    """Up to `size` bytes; fewer only at the end of the data (a reader may return short reads)."""
    parts, want = [], size
    while want > 0:
        chunk = reader.read(want)
        if not chunk:
            break
        parts.append(chunk)
        want -= len(chunk)
    return b"".join(parts)


def undo_http_encodings(raw: bytes, headers, limit: int) -> bytes:
    """The body with Transfer-Encoding (chunked) and Content-Encoding (gzip, deflate, br) undone.

    The record is read raw so a cut record can be told by its length; wget-made WARCs keep
    these encodings (Common Crawl's are already decoded). At most `limit` + 1 bytes come out,
    so a compression bomb stays bounded.
    """
    from fastwarc.stream_io import BrotliReader, ChunkedReader, GzipReader

    transfer = (headers.get("Transfer-Encoding") or "").lower()
    content = (headers.get("Content-Encoding") or "").strip().lower()
    if "chunked" in transfer:
        raw = read_exactly(ChunkedReader(io.BytesIO(raw)), limit + 1)
    if content in ("gzip", "x-gzip"):
        return read_exactly(GzipReader(io.BytesIO(raw)), limit + 1)
    if content == "br":
        return read_exactly(BrotliReader(io.BytesIO(raw)), limit + 1)
    if content == "deflate":
        # servers send both zlib-wrapped and raw deflate under this name
        wbits = zlib.MAX_WBITS if raw[:1] == b"\x78" else -zlib.MAX_WBITS
        return zlib.decompressobj(wbits).decompress(raw, limit + 1)
    return raw


def decode_html(payload: bytes, declared_charset: str | None = None) -> str:
    """HTML bytes -> str: the declared charset, else the detected one; bad bytes replaced.

    A wrong declaration is common (latin-1 pages sent as UTF-8), so when the declared charset
    fails strictly the detected one is tried before falling back to replacement characters.
    """
    from resiliparse.parse.encoding import detect_encoding, map_encoding_to_html5

    declared = map_encoding_to_html5(declared_charset, False) if declared_charset else None
    charset = declared or detect_encoding(payload, from_html_meta=True)
    for candidate in (charset, detect_encoding(payload)):
        try:
            return payload.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


_HTML_LANG = re.compile(
    r"<html\b[^>]*?\blang\s*=\s*[\"']?\s*([a-z]{1,8}(?:[-_][a-z0-9]{1,8})*)", re.IGNORECASE
)


def html_lang(html: str, content_language: str | None = None) -> str | None:
    """The page's declared language: <html lang>, else the first Content-Language value."""
    # the <html> tag comes right after the doctype and comments: no need to scan the whole page
    match = _HTML_LANG.search(html, 0, 16384)
    value = match.group(1) if match else (content_language or "").split(",")[0].strip()
    return value.replace("_", "-").lower() or None


def replacement_ratio(text: str) -> float:
    chars = len(text) - sum(text.count(c) for c in " \t\r\n")
    return text.count("\ufffd") / chars if chars > 0 else 0.0
