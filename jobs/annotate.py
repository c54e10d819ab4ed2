"""Annotate: LLM filter, then domain + personas, per document -> `annotations`.

Reads the near-dedup output (`documents_deduped`); when that table does not exist the stage
stops and names dedup (`--allow-skip dedup` reads `documents_filtered` instead: see
jobs/pipeline.py). It reads only `doc_id`, `url`, `source` and `text`. Two engine calls per
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
from webscale_rl.stages import declared
from webscale_rl.udfs.llm.stage import LLMStageParams, StageSpec, Step, run_llm_stage

DECL = declared("annotate")  # name, tables, key: webscale_rl/stages.py
NAME, INPUT, OUTPUT, KEY = DECL.name, DECL.input, DECL.output, DECL.key

INPUT_COLUMNS = StructType(
    [f for f in DOCUMENTS.fields if f.name in (KEY, "url", "source", "text")]
)
SPEC = StageSpec(
    name=NAME,
    key=KEY,
    columns=tuple(f.name for f in ANNOTATIONS.fields),
    steps=(Step(task="llm_filter"), Step(task="identify")),
)


def run(spark, cfg: Config, params: LLMStageParams | None = None) -> StageResult:
    ref = tables.table_ref(cfg, INPUT)
    if not tables.exists(spark, ref):
        raise WebscaleError(
            f"stage {NAME}: input table {ref} does not exist: run stage dedup first "
            "(or skip it explicitly with --allow-skip dedup)"
        )
    tables.check_columns(tables.read(spark, ref), INPUT_COLUMNS, f"{NAME} input {ref}")
    columns = INPUT_COLUMNS.fieldNames()
    return run_llm_stage(
        spark,
        cfg,
        SPEC,
        ANNOTATIONS,
        INPUT,
        OUTPUT,
        params=params,
        derive=lambda docs: docs.select(*columns),
    )


main = stage_main_for(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
