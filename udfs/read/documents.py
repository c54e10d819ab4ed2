"""Raw input records -> document rows (pure pandas, runs inside the ingest UDF).

A raw record is one WARC/WET record, JSON line or table row, already reduced to `url`, `text`
and where it came from; a record the reader could not use carries `reject_reason`.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

import pandas as pd

from webscale_rl.ids import content_digest, doc_id
from webscale_rl.udfs.frames import rows_frame

# Control characters other than tab/newline break downstream tokenisers and prompts.
_CONTROL = {c: None for c in range(32) if c not in (9, 10, 13)} | {0x7F: None}


def clean_text(text: str) -> str:
    text = unicodedata.normalize("NFC", text).translate(_CONTROL)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.strip()


def detect_lang(text: str) -> tuple[str | None, float | None]:
    from webscale_rl.udfs.text.langid import detect_language

    lang, score = detect_language(text)
    return lang, float(score)


def _str(value) -> str | None:
    """Arrow nulls arrive in pandas as None or NaN; only real strings count."""
    return value if isinstance(value, str) else None


def to_documents(raw: pd.DataFrame, max_text_chars: int, run_id: str) -> pd.DataFrame:
    """One output row per raw record: a document, or the record with its reject reason."""
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = []
    for rec in raw.to_dict("records"):
        reason, detail = _str(rec.get("reject_reason")), _str(rec.get("reject_detail"))
        text = _str(rec.get("text"))
        out = {
            "_row_id": rec["row_id"],
            "url": _str(rec.get("url")),
            "source": _str(rec.get("source")),
            "source_format": _str(rec.get("source_format")),
            "source_id": _str(rec.get("source_id")),
            "warc_date": _str(rec.get("warc_date")),
            "ingested_at": now,
            "run_id": run_id,
            "truncated": False,
        }
        if reason is None:
            if text is None:
                reason, detail = "missing_text", "no text field or a non-string value"
            else:
                text = clean_text(text)
                if not text:
                    reason, detail = "empty_text", "no text left after cleaning"
        if reason is None:
            if len(text) > max_text_chars:
                text, out["truncated"] = text[:max_text_chars], True
            lang, score = detect_lang(text)
            out.update(
                doc_id=doc_id(out["url"], text),
                text=text,
                n_chars=len(text),
                content_digest=content_digest(text),
                lang=lang,
                lang_score=score,
                _reject_reason=None,
                _reject_detail=None,
            )
        else:
            out.update(
                doc_id=None,
                text="",
                n_chars=0,
                content_digest=None,
                lang=None,
                lang_score=None,
                _reject_reason=reason,
                _reject_detail=(detail or "")[:1000] or None,
            )
        rows.append(out)
    return rows_frame(rows, DOC_RESULT_COLUMNS)


DOC_RESULT_COLUMNS = [
    "doc_id",
    "url",
    "source",
    "source_format",
    "source_id",
    "lang",
    "lang_score",
    "text",
    "n_chars",
    "truncated",
    "warc_date",
    "content_digest",
    "ingested_at",
    "run_id",
    "_reject_reason",
    "_reject_detail",
    "_row_id",
]
