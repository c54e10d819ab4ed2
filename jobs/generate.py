"""Generate: one QA pair per (document, persona), with few-shot demos -> `qa_candidates`.

Input units are the personas of each annotated document: `units` explodes them and gives each
a deterministic `qa_id` (sha2 of `doc_id#persona_idx`), computed in Spark the same way for the
job and for the audit. The reply must pass the deterministic checks (`qa_checks.run_checks`:
short, grounded in the document, not leaked, not "according to the text") or the unit goes to
`rejects` with the failed check as its reason.
"""

from __future__ import annotations

from webscale_rl import tables
from webscale_rl.config import Config
from webscale_rl.errors import WebscaleError
from webscale_rl.jobs.base import StageResult, stage_main_for
from webscale_rl.schemas.tables import ANNOTATIONS, QA_CANDIDATES
from webscale_rl.stages import declared
from webscale_rl.udfs.llm.stage import LLMStageParams, StageSpec, Step, run_llm_stage

DECL = declared("generate")  # name, tables, key: webscale_rl/stages.py
NAME, INPUT, OUTPUT, KEY = DECL.name, DECL.input, DECL.output, DECL.key

SPEC = StageSpec(
    name=NAME,
    key=KEY,
    columns=tuple(f.name for f in QA_CANDIDATES.fields),
    steps=(Step(task="generate"),),
)


def qa_id_column(doc_id: str = "doc_id", persona_idx: str = "persona_idx"):
    from pyspark.sql import functions as F

    key = F.concat_ws("#", F.col(doc_id), F.col(persona_idx).cast("string"))
    return F.sha2(key, 256).substr(1, 32)


def units(annotations):
    """One row per (document, persona) with its qa_id and what the prompt needs."""
    from pyspark.sql import functions as F

    exploded = annotations.select(
        "doc_id",
        "url",
        "source",
        "text",
        "domain",
        F.posexplode("personas").alias("persona_idx", "persona"),
    )
    return exploded.withColumn(KEY, qa_id_column())


def _annotations(spark, cfg: Config):
    ref = tables.table_ref(cfg, INPUT)
    if not tables.exists(spark, ref):
        return None
    annotations = tables.read(spark, ref)
    # a clear error naming a missing or mistyped column, before any work
    tables.check_columns(annotations, ANNOTATIONS, f"stage {NAME} input {ref}")
    return annotations


def input_units(spark, cfg: Config):
    annotations = _annotations(spark, cfg)
    return None if annotations is None else units(annotations).select(KEY)


def run(spark, cfg: Config, params: LLMStageParams | None = None) -> StageResult:
    annotations = _annotations(spark, cfg)
    if annotations is None:
        raise WebscaleError(
            f"stage {NAME}: input table {tables.table_ref(cfg, INPUT)} does not exist; "
            "run annotate first"
        )
    return run_llm_stage(
        spark, cfg, SPEC, QA_CANDIDATES, INPUT, OUTPUT, params=params, derive=units
    )


main = stage_main_for(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
