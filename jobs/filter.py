"""Filter: language, then heuristic quality rules (Gopher, C4, FineWeb) -> `documents_filtered`.

Runs before any LLM call, so every document dropped here saves GPU time. The first failing rule
and its measured value go to `rejects`; every document's statistics are kept in `quality_stats`
so SQL can show why it was kept.
"""

from __future__ import annotations

from webscale_rl.config import Config, FilterSettings
from webscale_rl.jobs.base import StageResult, stage_main_for
from webscale_rl.row_stage import row_stage
from webscale_rl.schemas.tables import DOCUMENTS, FILTERED
from webscale_rl.stages import declared
from webscale_rl.udfs.text.langid import LangIdParams

DECL = declared("filter")  # name, tables, key: webscale_rl/stages.py
NAME, INPUT, OUTPUT, KEY = DECL.name, DECL.input, DECL.output, DECL.key


def language_verdict(lang: str | None, score: float | None, params: LangIdParams):
    """Keep, or the reason: uses the language ingest already detected (no second pass)."""
    keep = params.keep_languages
    if keep and lang not in keep:
        return (
            False,
            "lang_not_kept",
            f"lang={lang} score={score if score is None else round(score, 3)}",
        )
    if score is not None and score < params.min_confidence:
        return (
            False,
            "lang_low_confidence",
            f"lang={lang} score={score:.3f} < {params.min_confidence}",
        )
    return True, None, None


def filter_batch(pdf, settings: FilterSettings, run_id: str):
    """Pure pandas: documents -> filtered rows with status columns."""
    from webscale_rl.udfs.text.quality import check_quality

    out = pdf.copy()
    reasons, details, texts, stats = [], [], [], []
    for text, lang, score in zip(out["text"], out["lang"], out["lang_score"], strict=True):
        ok, reason, detail = language_verdict(lang, score, settings.langid)
        st: dict = {}
        if ok:
            q = check_quality(text or "", settings.quality)
            st = {k: float(v) for k, v in q.stats.items()}
            text = q.text
            ok, reason, detail = q.keep, q.reason, q.detail
        reasons.append(None if ok else reason)
        details.append(None if ok else detail)
        texts.append(text if ok else "")
        stats.append(st)
    out["text"] = texts
    out["n_chars"] = [len(t) for t in texts]
    out["quality_stats"] = stats
    out["run_id"] = run_id
    out["_reject_reason"] = reasons
    out["_reject_detail"] = details
    out["_row_id"] = out["doc_id"]
    return out[[f.name for f in FILTERED.fields] + ["_reject_reason", "_reject_detail", "_row_id"]]


def run(spark, cfg: Config) -> StageResult:
    settings, run_id = cfg.filter, cfg.run_id
    return row_stage(
        spark,
        cfg,
        NAME,
        INPUT,
        OUTPUT,
        FILTERED,
        key="doc_id",
        transform=lambda pdf: filter_batch(pdf, settings, run_id),
        input_schema=DOCUMENTS,
    )


main = stage_main_for(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
