"""Verify: deterministic checks, then the LLM checker, per QA candidate -> `qa_verified`.

The checks run first because they are free: a candidate whose answer is too long, leaked in the
question, absent from its document, of the wrong type, or whose question leans on "the text" is
rejected with that check's name before any engine call. The rest go to the checker; a
`correct=false`, `leaks_answer=true` or `self_contained=false` verdict is rejected as
`checker_incorrect`, `checker_leak` or `checker_not_self_contained`. The document text comes
from `annotations` (joined on doc_id): a candidate without one is `missing_document`.
"""

from __future__ import annotations

from pyspark.sql.types import StructType

from webscale_rl import tables
from webscale_rl.config import Config
from webscale_rl.errors import WebscaleError
from webscale_rl.jobs.base import StageResult, stage_main_for
from webscale_rl.schemas.tables import ANNOTATIONS, QA_CANDIDATES, QA_VERIFIED
from webscale_rl.stages import declared
from webscale_rl.udfs.llm.prompts import truncate_document
from webscale_rl.udfs.llm.qa_checks import run_checks
from webscale_rl.udfs.llm.stage import LLMStageParams, StageSpec, Step, run_llm_stage
from webscale_rl.udfs.llm.tasks import TaskParams

DECL = declared("verify")  # name, tables, key: webscale_rl/stages.py
NAME, INPUT, OUTPUT, KEY = DECL.name, DECL.input, DECL.output, DECL.key
DOCUMENTS = "annotations"  # where the candidates' document text lives
TEXT_COLUMNS = StructType([f for f in ANNOTATIONS.fields if f.name in ("doc_id", "text")])


def grounding_check(row: dict, params: TaskParams) -> tuple[bool, str, str]:
    """The deterministic checks, on the document as the generator saw it (truncated alike)."""
    text = row.get("text")
    if not text:
        return False, "missing_document", f"no annotated document {row.get('doc_id')}"
    document = truncate_document(text, params.max_doc_chars)
    return run_checks(
        row.get("question") or "",
        row.get("answer") or "",
        (row.get("answer_type") or "").lower(),
        document,
        params.checks,
    )


SPEC = StageSpec(
    name=NAME,
    key=KEY,
    columns=tuple(f.name for f in QA_VERIFIED.fields),
    steps=(Step(check=grounding_check), Step(task="verify")),
    token_prefix="verify_",
)


def run(spark, cfg: Config, params: LLMStageParams | None = None) -> StageResult:
    refs = {name: tables.table_ref(cfg, name) for name in (INPUT, DOCUMENTS)}
    for name, ref in refs.items():
        if not tables.exists(spark, ref):
            raise WebscaleError(f"stage {NAME}: input table {ref} does not exist; run {name} first")
    candidates = tables.read(spark, refs[INPUT])
    texts = tables.read(spark, refs[DOCUMENTS])
    # clear errors naming a missing or mistyped column, before any work
    tables.check_columns(candidates, QA_CANDIDATES, f"stage {NAME} input {refs[INPUT]}")
    tables.check_columns(texts, TEXT_COLUMNS, f"stage {NAME} input {refs[DOCUMENTS]}")
    texts = texts.select("doc_id", "text")
    return run_llm_stage(
        spark,
        cfg,
        SPEC,
        QA_VERIFIED,
        INPUT,
        OUTPUT,
        params=params,
        derive=lambda candidates: candidates.join(texts, on="doc_id", how="left"),
    )


main = stage_main_for(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
