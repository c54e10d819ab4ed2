"""Each stage's declaration (webscale_rl/stages.py) agrees with everything built on it or beside
it: its job module, the config's table names, the schemas, the LLM stage settings and the deploy
files. No Spark session, no network."""

from __future__ import annotations

import pytest
from deploy_files import emr_steps, load_bundle

from webscale_rl import stages
from webscale_rl.cli import build_parser
from webscale_rl.config import Config, TableNames
from webscale_rl.jobs import pipeline
from webscale_rl.jobs.base import load_stage
from webscale_rl.schemas import tables as schemas
from webscale_rl.udfs.llm.placement import LLM_STAGES
from webscale_rl.udfs.llm.stage import LLMStageParams

JOB = load_bundle()["resources"]["jobs"]["webscale_rl_pipeline"]
GPU_CONF = "spark.task.resource.gpu.amount"


def databricks_stages() -> dict[str, bool]:
    """stage a task runs -> whether its cluster gives tasks GPUs."""
    clusters = {c["job_cluster_key"]: c["new_cluster"] for c in JOB["job_clusters"]}
    out = {}
    for task in JOB["tasks"]:
        args = build_parser().parse_args([str(a) for a in task["python_wheel_task"]["parameters"]])
        conf = clusters[task["job_cluster_key"]].get("spark_conf", {})
        out[args.name] = GPU_CONF in conf
    return out


def emr_stages() -> dict[str, bool]:
    """stage a step submits -> whether it asks GPUs per task."""
    out = {}
    for step in emr_steps():
        args = step["Args"]
        job = next(a for a in args if a.endswith(".py"))
        out[job.rsplit("/", 1)[1][: -len(".py")]] = any(a.startswith(GPU_CONF) for a in args)
    return out


def test_the_runner_cli_and_llm_settings_read_the_declarations():
    assert list(pipeline.STAGES) == list(stages.NAMES)
    assert pipeline.SKIPPABLE == tuple(s.name for s in stages.STAGES if s.skippable)
    assert LLM_STAGES == tuple(s.name for s in stages.STAGES if s.llm)
    # llm_stages.<stage> settings come from the declarations: one per LLM stage, no others
    layout = {"commit_chunks", "tasks"}
    assert set(LLMStageParams.model_fields) - layout == set(LLM_STAGES)
    choices = next(
        a.choices for a in build_parser()._subparsers._group_actions[0].choices["stage"]._actions
        if a.dest == "name"
    )  # fmt: skip
    assert list(choices) == list(stages.NAMES)


def test_table_names_are_the_declared_tables():
    declared = stages.tables()
    assert list(TableNames.model_fields) == [t[0] for t in declared]
    for logical, default, description in declared:
        field = TableNames.model_fields[logical]
        assert (field.default, field.description) == (default, description), logical
    # Behaviour kept: the names every lakehouse already has.
    assert Config().tables.model_dump() == {
        "documents": "documents",
        "rejects": "rejects",
        "filtered": "documents_filtered",
        "deduped": "documents_deduped",
        "annotations": "annotations",
        "qa_candidates": "qa_candidates",
        "qa_verified": "qa_verified",
        "qa_deduped": "qa_deduped",
        "qa_clean": "qa_clean",
        "qa": "qa",
    }
    assert set(schemas.BY_NAME) == set(TableNames.model_fields), (
        "every logical table has its schema in schemas/tables.py BY_NAME, and only those"
    )


@pytest.mark.parametrize("name", stages.NAMES)
def test_a_stage_declaration_agrees_with_its_module_tables_schema_and_deploy(name):
    decl = stages.declared(name)
    module = load_stage(name)
    assert module.__name__ == f"webscale_rl.jobs.{decl.module}"
    assert (module.NAME, module.INPUT, module.OUTPUT, module.KEY) == (
        decl.name,
        decl.input,
        decl.output,
        decl.key,
    ), f"jobs/{decl.module}.py: NAME/INPUT/OUTPUT/KEY must come from its declaration"
    assert callable(module.run) and callable(module.main)

    # Tables: both are config `tables.*` keys; the input is an earlier stage's output.
    assert decl.output in TableNames.model_fields
    earlier = [s.output for s in stages.STAGES[: stages.NAMES.index(name)]]
    if decl.input is None:
        assert stages.NAMES.index(name) == 0, "only the first stage reads files"
    else:
        assert decl.input in earlier, f"{name} reads {decl.input}, which no earlier stage writes"
    assert decl.output not in earlier, f"{decl.output} is written by two stages"

    # Schema: the output table's schema exists and holds the key.
    assert decl.schema is schemas.BY_NAME[decl.output]
    assert decl.key in decl.schema.fieldNames(), f"{decl.output} schema has no {decl.key}"

    # Deploy: a Databricks task and an EMR step run it, on GPUs exactly when it runs an LLM.
    for platform, deployed in (("databricks", databricks_stages()), ("emr", emr_stages())):
        assert name in deployed, f"{name} is declared but {platform} does not run it"
        assert deployed[name] == decl.llm, (
            f"{platform}: {name} {'asks' if deployed[name] else 'does not ask'} GPUs per task "
            f"but is declared llm={decl.llm}"
        )


def test_nothing_is_deployed_that_is_not_declared():
    for deployed in (databricks_stages(), emr_stages()):
        assert list(deployed) == list(stages.NAMES)
