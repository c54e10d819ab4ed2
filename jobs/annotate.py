"""Annotate: LLM filter, then domain + personas, per document -> `annotations`.

Reads the near-dedup output (`documents_deduped`); when that table does not exist (dedup did
not run) it reads `documents_filtered` and says so in the stage notes. Two engine calls per
document: every llm_filter request of a pandas batch first, then identify for the survivors
only. A document the filter or identify turns down goes to `rejects` (stage `annotate`) with
the task's reason: `not_informative`, `not_self_contained`, `domain_not_in_list`,
`too_many_personas`, `malformed_json`, `missing_field:<name>`, `truncated`, ...
"""

from __future__ import annotations

from pyspark.sql.types import StructType

from webscale_rl import tables
from webscale_rl.config import Config
from webscale_rl.errors import WebscaleError
from webscale_rl.jobs.base import StageResult, stage_main_for
from webscale_rl.schemas.tables import ANNOTATIONS, DOCUMENTS
from webscale_rl.udfs.llm_stage import LLMStageParams, StageSpec, Step, run_llm_stage

NAME = "annotate"
INPUT = "deduped"
FALLBACK_INPUT = "filtered"
OUTPUT = "annotations"
KEY = "doc_id"

INPUT_COLUMNS = StructType(
    [f for f in DOCUMENTS.fields if f.name in (KEY, "url", "source", "text")]
)
SPEC = StageSpec(
    name=NAME,
    key=KEY,
    columns=tuple(f.name for f in ANNOTATIONS.fields),
    steps=(Step(task="llm_filter"), Step(task="identify")),
)


def input_table(spark, cfg: Config) -> str:
    """The logical input: `deduped` when dedup has written it, else `filtered`."""
    if tables.exists(spark, tables.table_ref(cfg, INPUT)):
        return INPUT
    return FALLBACK_INPUT


def input_units(spark, cfg: Config):
    ref = tables.table_ref(cfg, input_table(spark, cfg))
    return tables.read(spark, ref).select(KEY) if tables.exists(spark, ref) else None


def run(spark, cfg: Config, params: LLMStageParams | None = None) -> StageResult:
    logical = input_table(spark, cfg)
    ref = tables.table_ref(cfg, logical)
    if not tables.exists(spark, ref):
        raise WebscaleError(
            f"stage {NAME}: neither {tables.table_ref(cfg, INPUT)} nor {ref} exists; "
            "run filter (and dedup) first"
        )
    docs = tables.read(spark, ref)
    tables.check_columns(docs, INPUT_COLUMNS, f"{NAME} input {ref}")
    docs = docs.select(*INPUT_COLUMNS.fieldNames())
    result = run_llm_stage(spark, cfg, SPEC, ANNOTATIONS, logical, OUTPUT, docs, params)
    if logical != INPUT:
        result.notes.append(f"input {ref}: no near-dedup table yet, read the filtered documents")
    return result


main = stage_main_for(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
