"""Which input format a file holds, from its first bytes: WARC, WET, JSON lines or Parquet
(gzip undone across the record-per-member boundaries of a .warc.gz)."""

from __future__ import annotations

import json
import re
import zlib

HEAD_BYTES = 64 * 1024
GZIP_MAGIC = b"\x1f\x8b"


def plain_head(head: bytes, limit: int = HEAD_BYTES) -> bytes:
    """`head` gunzipped when it is gzip, across record-per-member boundaries.

    The head of a large file ends inside a member; what decompressed so far is kept. A WARC's
    first member is only the warcinfo record, so stopping there would hide the record types.
    """
    if not head.startswith(GZIP_MAGIC):
        return head
    out: list[bytes] = []
    data, room = head, limit
    while data.startswith(GZIP_MAGIC) and room > 0:
        member = zlib.decompressobj(31)
        try:
            chunk = member.decompress(data, room)
        except zlib.error:
            break
        out.append(chunk)
        room -= len(chunk)
        if not member.eof:
            break
        data = member.unused_data
    return b"".join(out)


def _looks_like_jsonl(text: bytes) -> bool:
    if not text.startswith(b"{"):
        return False
    line, newline, _ = text.partition(b"\n")
    if not newline:
        # a first document longer than the head: the opening brace and a key is all we see
        return text[1:].lstrip().startswith(b'"')
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def sniff_format(head: bytes) -> str | None:
    """ "warc", "wet", "jsonl" or "parquet" from a file's first bytes (raw or gunzipped); else None."""
    if head.startswith(b"PAR1"):
        return "parquet"
    text = plain_head(head).lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"WARC/"):
        types = set(re.findall(rb"^WARC-Type:[ \t]*(\w+)", text, flags=re.MULTILINE))
        return "wet" if b"conversion" in types and b"response" not in types else "warc"
    if _looks_like_jsonl(text):
        return "jsonl"
    return None


def sniff_path(path: str) -> str | None:
    """`sniff_format` of a local file's head."""
    with open(path, "rb") as f:
        return sniff_format(f.read(HEAD_BYTES))
