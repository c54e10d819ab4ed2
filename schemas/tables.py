"""The StructType of every table the pipeline writes, in one place.

Stages write exactly these columns (`tables.conform` checks it) so SQL over the lakehouse sees one
stable layout, and an input table with missing or mistyped columns is caught before any work.
"""

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)


def _s(name, dtype=None, nullable=True):
    return StructField(name, dtype or StringType(), nullable)


DOCUMENTS = StructType(
    [
        _s("doc_id", nullable=False),
        _s("url"),
        _s("source"),  # file or table the row came from
        _s("source_format"),  # warc | wet | jsonl | parquet | delta
        _s("source_id"),  # WARC-Record-ID or the input's own id
        _s("lang"),
        _s("lang_score", DoubleType()),
        _s("text", nullable=False),
        _s("n_chars", IntegerType()),
        _s("truncated", BooleanType()),
        _s("warc_date"),
        _s("content_digest"),
        _s("ingested_at", TimestampType()),
        _s("run_id"),
    ]
)

REJECTS = StructType(
    [
        _s("stage", nullable=False),
        _s("row_id", nullable=False),  # the input row's id in that stage (doc_id, qa_id, record id)
        _s("doc_id"),
        _s("reason", nullable=False),
        _s("detail"),
        _s("run_id"),
        _s("rejected_at", TimestampType()),
    ]
)

# Per-document quality statistics, kept so SQL can show why a document was kept or dropped.
QUALITY_STATS = MapType(StringType(), DoubleType())

FILTERED = StructType(
    [f for f in DOCUMENTS.fields if f.name not in ("run_id",)]
    + [_s("quality_stats", QUALITY_STATS), _s("run_id")]
)

DEDUPED = StructType(
    [f for f in FILTERED.fields if f.name not in ("run_id",)]
    + [_s("cluster_id"), _s("cluster_size", LongType()), _s("run_id")]
)

TOKEN_COLUMNS = [
    _s("model"),
    _s("prompt_version"),
    _s("sampling"),  # JSON of the sampling parameters
    _s("prompt_tokens", LongType()),
    _s("completion_tokens", LongType()),
]

# One row per document kept by the LLM filter: its domain and personas. `text` is carried so
# generate needs no join; the token columns sum the llm_filter and identify calls, and
# `prompt_version` / `sampling` (JSON, by task) name both.
ANNOTATIONS = StructType(
    [
        _s("doc_id", nullable=False),
        _s("url"),
        _s("source"),
        _s("text"),
        _s("informative", BooleanType()),
        _s("self_contained", BooleanType()),
        _s("filter_reason"),
        _s("domain"),
        _s("personas", ArrayType(StringType())),
        *TOKEN_COLUMNS,
        _s("run_id"),
        _s("created_at", TimestampType()),
    ]
)

QA_CORE = [
    _s("qa_id", nullable=False),
    _s("doc_id", nullable=False),
    _s("question"),
    _s("answer"),
    _s("answer_type"),
    _s("domain"),
    _s("persona"),
    _s("url"),
    _s("source"),
]

# One row per (document, persona): qa_id = sha2(doc_id#persona_idx). Token columns: generate.
QA_CANDIDATES = StructType(
    [
        *QA_CORE,
        _s("persona_idx", IntegerType()),
        *TOKEN_COLUMNS,
        _s("run_id"),
        _s("created_at", TimestampType()),
    ]
)

# Candidates that passed the deterministic checks and the LLM checker: the generation's
# provenance is kept, and the checker's call is recorded in the verify_* columns.
VERIFY_TOKEN_COLUMNS = [_s("verify_" + f.name, f.dataType) for f in TOKEN_COLUMNS]
QA_VERIFIED = StructType(
    [
        *QA_CORE,
        _s("persona_idx", IntegerType()),
        *TOKEN_COLUMNS,
        _s("verify_reason"),
        *VERIFY_TOKEN_COLUMNS,
        _s("run_id"),
        _s("created_at", TimestampType()),
    ]
)

QA = StructType(
    [
        *QA_CORE,
        _s("model"),
        _s("prompt_version"),
        _s("run_id"),
        _s("created_at", TimestampType()),
    ]
)

QA_DEDUPED = StructType(
    [f for f in QA_VERIFIED.fields if f.name != "run_id"]
    + [_s("cluster_id"), _s("cluster_size", LongType()), _s("run_id")]
)
QA_CLEAN = QA_VERIFIED

BY_NAME = {
    "documents": DOCUMENTS,
    "rejects": REJECTS,
    "filtered": FILTERED,
    "deduped": DEDUPED,
    "annotations": ANNOTATIONS,
    "qa_candidates": QA_CANDIDATES,
    "qa_verified": QA_VERIFIED,
    "qa_deduped": QA_DEDUPED,
    "qa_clean": QA_CLEAN,
    "qa": QA,
}
