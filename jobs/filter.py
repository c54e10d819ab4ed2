"""Filter: language, then heuristic quality rules (Gopher, C4, FineWeb) -> `documents_filtered`.

Runs before any LLM call, so every document dropped here saves GPU time. The first failing rule
and its measured value go to `rejects`; every document's statistics are kept in `quality_stats`
so SQL can show why it was kept.

The language verdict only compares the `lang` and `lang_score` ingest stored with the config, so
it is decided in Spark SQL (`language_verdict`) before any row goes to Python: a document it
rejects (more than half of a real Common Crawl snapshot) reaches the pandas UDF with its verdict
and without its text, and only the documents it keeps send their text to the quality rules.
"""

from __future__ import annotations

from webscale_rl import tables
from webscale_rl.config import Config, FilterSettings
from webscale_rl.errors import WebscaleError
from webscale_rl.jobs.base import StageResult, stage_main_for
from webscale_rl.row_stage import row_stage
from webscale_rl.schemas.tables import DOCUMENTS, FILTERED
from webscale_rl.stages import declared
from webscale_rl.udfs.text.langid import LangIdParams

DECL = declared("filter")  # name, tables, key: webscale_rl/stages.py
NAME, INPUT, OUTPUT, KEY = DECL.name, DECL.input, DECL.output, DECL.key

# The language verdict's columns on the rows handed to the UDF (null reason: language kept).
LANG_REASON, LANG_DETAIL = "_lang_reason", "_lang_detail"
_TWO_63 = 2**63


def _thousandths(p):
    """round(p * 1000) as a Column, for a probability `p` in [0, 1]: half to even on the exact
    binary value of the double, as Python's `round(p, 3)` and `f"{p:.3f}"` round (Spark's
    `round` and `format_number` start from the shortest decimal text of the double and differ
    at some ties, e.g. 0.0005).

    The double product `p * 1000` is within 1e-12 of the exact one, so it rounds right unless it
    is that close to a tie k + 0.5; there `p` is compared with the tie (2k + 1) / 2000 in
    decimal integers: near a tie 2**-11 < p < 1, so `p * 2**63` is an integer that fits a bigint.
    """
    from decimal import Decimal

    from pyspark.sql import functions as F

    scaled = p * F.lit(1000.0)
    k = F.floor(scaled)
    near_tie = F.abs(scaled - k - F.lit(0.5)) < F.lit(1e-9)
    exact = (p * F.lit(float(_TWO_63))).cast("bigint").cast("decimal(19,0)")
    tie = (k * 2 + 1).cast("decimal(10,0)") * F.lit(Decimal(_TWO_63))
    above = exact * F.lit(Decimal(2000)) - tie  # (p - (2k + 1) / 2000) * 2000 * 2**63
    up = (
        F.when(~near_tie, scaled - k > F.lit(0.5))
        .when(above != 0, above > 0)
        .otherwise(k % 2 == 1)  # an exact tie (p = odd / 16): to the even neighbour
    )
    return k + F.when(up, 1).otherwise(0)


def _score_text(score, fixed: bool):
    """The text Python gave a score in the verdict's detail (the score reached pandas as a
    float64, a null as NaN): `f"{score:.3f}"` when `fixed`, else `str(round(score, 3))` (the
    same digits without trailing zeros, one decimal at least). Exact for null, NaN, +-inf and
    [0, 1]; a score outside [0, 1] (not a probability, never written by ingest) gets Spark's
    `format_number`, which can differ from Python in the last digit at a tie."""
    from pyspark.sql import functions as F

    n = _thousandths(score)
    probability = (score >= 0) & (score <= 1) & (score.cast("string") != "-0.0")
    text = (
        F.when(score.isNull() | F.isnan(score), F.lit("nan"))
        .when(score == float("inf"), F.lit("inf"))
        .when(score == float("-inf"), F.lit("-inf"))
        .when(~probability, F.regexp_replace(F.format_number(score, 3), ",", ""))
        .when(n == 1000, F.lit("1.000"))
        .otherwise(F.concat(F.lit("0."), F.lpad(n.cast("string"), 3, "0")))
    )
    if fixed:
        return text
    # "0.990" -> "0.99", "1.000" -> "1.0"; "nan" and "inf" have no "." and stay
    return F.regexp_replace(text, r"(\.[0-9]*?[0-9])0+$", "$1")


def language_verdict(params: LangIdParams):
    """(reason, detail) Columns over `lang` and `lang_score`, the language ingest already
    detected (no second pass); a null reason keeps the document. The one implementation of the
    language rule: a language not in `keep_languages` (a null one too) is `lang_not_kept`,
    then a score below `min_confidence` is `lang_low_confidence` (a null or NaN score is not)."""
    from pyspark.sql import functions as F

    lang, score = F.col("lang"), F.col("lang_score").cast("double")
    keep = params.keep_languages
    not_kept = F.coalesce(~lang.isin(keep), F.lit(True)) if keep else F.lit(False)
    low = F.coalesce(score < F.lit(float(params.min_confidence)), F.lit(False))
    shown = F.concat(F.lit("lang="), F.coalesce(lang, F.lit("None")), F.lit(" score="))
    reason = (
        F.when(not_kept, F.lit("lang_not_kept"))
        .when(low, F.lit("lang_low_confidence"))
        .otherwise(F.lit(None).cast("string"))
    )
    detail = (
        F.when(not_kept, F.concat(shown, _score_text(score, fixed=False)))
        .when(
            low,
            F.concat(
                shown,
                _score_text(score, fixed=True),
                F.lit(f" < {params.min_confidence}"),
            ),
        )
        .otherwise(F.lit(None).cast("string"))
    )
    return reason, detail


def with_language_verdict(docs, params: LangIdParams):
    """`docs` with the verdict's columns added and, for the rows it rejects, a null `text` (the
    only unbounded column): those rows reach the UDF with their verdict only."""
    from pyspark.sql import functions as F

    reason, detail = language_verdict(params)
    docs = docs.withColumn(LANG_REASON, reason).withColumn(LANG_DETAIL, detail)
    rejected = F.col(LANG_REASON).isNotNull()
    return docs.withColumn("text", F.when(~rejected, F.col("text")))


def filter_batch(pdf, settings: FilterSettings, run_id: str):
    """Pure pandas: documents with the language verdict's columns -> filtered rows with status
    columns. A document the language rule rejected keeps that reason; the others go through
    the quality rules."""
    from webscale_rl.udfs.text.quality import check_quality

    out = pdf.copy()
    reasons, details, texts, stats = [], [], [], []
    for text, lang_reason, lang_detail in zip(
        out["text"], out[LANG_REASON], out[LANG_DETAIL], strict=True
    ):
        ok, reason, detail = lang_reason is None, lang_reason, lang_detail
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
    in_ref = tables.table_ref(cfg, INPUT)
    if not tables.exists(spark, in_ref):
        raise WebscaleError(
            f"stage {NAME}: input table {in_ref} does not exist; run the stage before it"
        )
    # A clear error naming the column, before the verdict's expressions refer to them.
    tables.check_columns(tables.read(spark, in_ref), DOCUMENTS, f"stage {NAME} input {in_ref}")
    return row_stage(
        spark,
        cfg,
        NAME,
        INPUT,
        OUTPUT,
        FILTERED,
        key="doc_id",
        transform=lambda pdf: filter_batch(pdf, settings, run_id),
        derive=lambda docs: with_language_verdict(docs, settings.langid),
        input_schema=DOCUMENTS,
    )


main = stage_main_for(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
