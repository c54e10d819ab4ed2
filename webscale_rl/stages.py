"""The one declaration of every stage: name, input and output tables, key, schema, resources.

Everything that needs to know the stages reads `STAGES` here: the runner (jobs/pipeline.py), the
CLI's stage choices, the table names (`TableNames` in config.py is built from the declared
output tables), the LLM stages (udfs/llm/placement.LLM_STAGES) with their `llm_stages.<stage>`
settings, and the deploy checks. Each job module takes its `NAME`, `INPUT`, `OUTPUT` and `KEY`
from its declaration (`DECL = declared(...)`).

It sits in the package core and imports nothing of jobs/ or udfs/ (config.py imports it), and no
Spark: the output schema is looked up in schemas/tables.py only when asked for.

Adding a stage: its job module under jobs/, its output schema in schemas/tables.py (`BY_NAME`),
and one `StageDecl` below, in pipeline order; tests/test_stage_declarations.py checks they
agree, and tests/test_deploy_platforms.py that the deploy files run it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StageDecl:
    name: str  # the stage name (CLI, rejects.stage, MLflow); its module is jobs/<name>.py
    input: str | None  # logical input table (config `tables.*`); None: reads files (ingest)
    output: str  # logical output table (config `tables.*`), its schema schemas.tables.BY_NAME
    table: str  # the output table's default name
    description: str  # what the output table holds (the config's documentation)
    key: str  # id column of the input units and output rows
    llm: bool = False  # runs an LLM engine: llm_stages.<name> settings, GPUs per task with vLLM
    skippable: bool = False  # output rows are a subset of input rows: --allow-skip may skip it
    # Replaces its whole output in one commit (publish): no partial state to resume from, so no
    # commit crash points; every other stage commits through tables.commit_results.
    whole_table: bool = False

    @property
    def module(self) -> str:
        """The module under webscale_rl.jobs that runs the stage."""
        return self.name

    @property
    def schema(self):
        """The output table's Spark schema (imports pyspark)."""
        from webscale_rl.schemas.tables import BY_NAME

        return BY_NAME[self.output]


# In the order the pipeline runs them.
STAGES: tuple[StageDecl, ...] = (
    StageDecl("ingest", None, "documents", "documents", "Ingested documents.", "doc_id"),
    StageDecl(
        "filter",
        "documents",
        "filtered",
        "documents_filtered",
        "Documents that passed quality and language filters.",
        "doc_id",
        skippable=True,
    ),
    StageDecl(
        "dedup",
        "filtered",
        "deduped",
        "documents_deduped",
        "Documents left after near-duplicate removal.",
        "doc_id",
        skippable=True,
    ),
    StageDecl(
        "annotate",
        "deduped",
        "annotations",
        "annotations",
        "LLM filter + domain and personas per document.",
        "doc_id",
        llm=True,
    ),
    StageDecl(
        "generate",
        "annotations",
        "qa_candidates",
        "qa_candidates",
        "Generated QA pairs, one per (document, persona).",
        "qa_id",
        llm=True,
    ),
    StageDecl(
        "verify",
        "qa_candidates",
        "qa_verified",
        "qa_verified",
        "QA pairs that passed the checks.",
        "qa_id",
        llm=True,
    ),
    StageDecl(
        "qa_dedup",
        "qa_verified",
        "qa_deduped",
        "qa_deduped",
        "Verified QA pairs after question near-dedup.",
        "qa_id",
        skippable=True,
    ),
    StageDecl(
        "decontaminate",
        "qa_deduped",
        "qa_clean",
        "qa_clean",
        "QA pairs after benchmark decontamination.",
        "qa_id",
        skippable=True,
    ),
    StageDecl(
        "publish", "qa_clean", "qa", "qa", "The published dataset.", "qa_id", whole_table=True
    ),
)

# Tables no stage outputs: (logical name, default name, description).
REJECTS = ("rejects", "rejects", "Every rejected row of every stage, with its reason.")

NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
LLM_STAGES: tuple[str, ...] = tuple(s.name for s in STAGES if s.llm)
SKIPPABLE: tuple[str, ...] = tuple(s.name for s in STAGES if s.skippable)


def declared(name: str) -> StageDecl:
    """The declaration of stage `name` (KeyError naming the stages when there is none)."""
    for decl in STAGES:
        if decl.name == name:
            return decl
    raise KeyError(f"no stage {name!r} declared; stages: {', '.join(NAMES)}")


def tables() -> list[tuple[str, str, str]]:
    """Every logical table as (logical name, default name, description), in the config's order:
    the ingested documents, the rejects, then each stage's output."""
    outputs = [(s.output, s.table, s.description) for s in STAGES]
    return [outputs[0], REJECTS, *outputs[1:]]
