"""Deterministic ids: the same input always gets the same id, on any cluster, in any partitioning."""

import hashlib
from urllib.parse import urlsplit, urlunsplit


def stable_hash(*parts: str | None, length: int = 32) -> str:
    """Hex digest of the parts, joined unambiguously (None differs from "")."""
    h = hashlib.sha256()
    for p in parts:
        h.update(b"\x00" if p is None else b"\x01" + p.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()[:length]


def normalize_url(url: str | None) -> str:
    """Lower-case scheme and host, drop the fragment, default ports and a trailing slash on the root."""
    if not url:
        return ""
    url = url.strip().strip("<>")
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    host = (parts.hostname or "").lower()
    port = parts.port if parts.port not in (None, 80, 443) else None
    netloc = f"{host}:{port}" if port else host
    path = parts.path or "/"
    return urlunsplit((parts.scheme.lower(), netloc, path, parts.query, ""))


def content_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def doc_id(url: str | None, text: str) -> str:
    """A document is its normalised URL plus what it says: the same page re-crawled unchanged is one row."""
    return stable_hash(normalize_url(url), content_digest(text))
