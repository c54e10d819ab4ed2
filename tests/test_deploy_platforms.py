"""The deploy files pass the checks of the tools that will read them, offline.

Databricks: the merged bundle against the Databricks CLI's bundle JSON schema. EMR: the steps
as the AWS CLI parses them and the cluster configuration against botocore's EMR model. The
shell scripts through `bash -n` and shellcheck. Every stage declared in webscale_rl/stages.py is
deployed on both platforms, nothing else is, and every path a task reads is set to one a cluster
can reach.
No Spark, no network: a few seconds.
"""

from __future__ import annotations

import copy
import shutil
import subprocess

import pytest
from deploy_files import (
    BUNDLE_SCHEMA,
    REPO,
    bundle_validator,
    emr_configurations,
    emr_request_errors,
    emr_step_requests,
    emr_steps,
    load_bundle,
    load_bundle_schema,
    merge,
    schema_errors,
    substitute,
)

from webscale_rl import files
from webscale_rl.cli import build_parser
from webscale_rl.config import Config
from webscale_rl.jobs.base import config_from_args, load_stage
from webscale_rl.stages import LLM_STAGES
from webscale_rl.stages import NAMES as STAGES

BUNDLE = load_bundle()
JOB = BUNDLE["resources"]["jobs"]["webscale_rl_pipeline"]
SCRIPTS = [REPO / "deploy" / "emr" / "bootstrap.sh", REPO / "deploy" / "submit.sh"]


@pytest.fixture(scope="module")
def validator():
    if not BUNDLE_SCHEMA.is_file():
        pytest.skip(f"Databricks bundle schema not found at {BUNDLE_SCHEMA}")
    return bundle_validator(load_bundle_schema())


# ------------------------------------------------------------------------------ Databricks


def test_bundle_matches_the_databricks_cli_schema(validator):
    assert schema_errors(validator, BUNDLE) == []


def test_schema_patterns_are_applied_with_unicode_classes(validator):
    """The schema's Go patterns (\\p{L}, \\p{N}) are checked, not dropped: an integer field takes
    a `${var.name}` reference, with non-ASCII letters too, and nothing else."""
    path = ["resources", "jobs", "webscale_rl_pipeline", "job_clusters", 0, "new_cluster"]

    def with_workers(value):
        doc = copy.deepcopy(BUNDLE)
        node = doc
        for key in path:
            node = node[key]
        node["num_workers"] = value
        return schema_errors(validator, doc)

    assert with_workers("${var.cpu_workers}") == []
    assert with_workers("${var.größe2}") == []
    assert with_workers("${var.cpu workers}") != []
    assert with_workers("eight") != []


def test_schema_rejects_an_unknown_task_field(validator):
    doc = copy.deepcopy(BUNDLE)
    doc["resources"]["jobs"]["webscale_rl_pipeline"]["tasks"][0]["python_wheel_task"][
        "entry_pont"
    ] = "webscale-rl"
    errors = schema_errors(validator, doc)
    assert errors and "entry_pont" in " ".join(errors)


def test_bundle_merge_follows_the_cli(tmp_path):
    assert merge({"a": [1], "b": {"x": 1}}, {"a": [2], "b": {"y": 2}, "c": None}) == {
        "a": [1, 2],
        "b": {"x": 1, "y": 2},
        "c": None,
    }
    assert merge({"a": "x"}, {"a": "y"}) == {"a": "y"}
    with pytest.raises(ValueError, match="cannot merge"):
        merge({"a": {"x": 1}}, {"a": [1]})
    (tmp_path / "databricks.yml").write_text(
        "bundle: {name: b}\ninclude: [res/*.yml]\nresources: {jobs: {a: {name: A}}}\n"
    )
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "x.yml").write_text("resources: {jobs: {b: {name: B, v: on}}}\n")
    merged = load_bundle(tmp_path)
    # `on` stays a string, as in the CLI's YAML 1.2 loader.
    assert merged["resources"]["jobs"] == {"a": {"name": "A"}, "b": {"name": "B", "v": "on"}}
    (tmp_path / "res" / "y.yml").write_text("resources: {jobs: {a: {name: again}}}\n")
    with pytest.raises(ValueError, match="defined twice"):
        load_bundle(tmp_path)


# ------------------------------------------------------------------------------------- EMR


def test_emr_steps_are_a_valid_add_job_flow_steps_request():
    requests = emr_step_requests(emr_steps())
    assert len(requests) == len(emr_steps())
    params = {"JobFlowId": "j-ABCDEFGHIJKLM", "Steps": requests}
    assert emr_request_errors("AddJobFlowSteps", params) == []


def test_emr_cluster_request_with_configurations_is_valid():
    params = {
        "Name": "webscale-rl",
        "ReleaseLabel": "emr-7.9.0",
        "Applications": [{"Name": "Spark"}],
        "Instances": {
            "InstanceGroups": [
                {"InstanceRole": "MASTER", "InstanceType": "m6i.xlarge", "InstanceCount": 1},
                {"InstanceRole": "CORE", "InstanceType": "g5.2xlarge", "InstanceCount": 4},
            ],
            "KeepJobFlowAliveWhenNoSteps": False,
        },
        "BootstrapActions": [
            {
                "Name": "webscale-rl",
                "ScriptBootstrapAction": {
                    "Path": "s3://YOUR-BUCKET/webscale-rl/bootstrap.sh",
                    "Args": ["s3://YOUR-BUCKET/webscale-rl/webscale_rl-0.1.0-py3-none-any.whl"],
                },
            }
        ],
        "Configurations": emr_configurations(),
        "Steps": emr_step_requests(emr_steps()),
        "JobFlowRole": "EMR_EC2_DefaultRole",
        "ServiceRole": "EMR_DefaultRole",
    }
    assert emr_request_errors("RunJobFlow", params) == []


def test_emr_checks_catch_a_bad_enum_and_a_bad_type():
    steps = emr_step_requests(emr_steps())
    steps[0]["ActionOnFailure"] = "CANCEL"
    steps[1]["HadoopJarStep"]["Args"] = "spark-submit"
    errors = emr_request_errors("AddJobFlowSteps", {"JobFlowId": "j-1", "Steps": steps})
    assert any("Steps[0].ActionOnFailure: 'CANCEL' is not one of" in e for e in errors), errors
    assert any("Steps[1].HadoopJarStep.Args" in e for e in errors), errors
    conf = [{"Classification": "yarn-site", "Properties": {"a": 1}}]
    errors = emr_request_errors(
        "RunJobFlow", {"Name": "x", "Instances": {}, "Configurations": conf}
    )
    assert errors and "Configurations[0].Properties.a" in errors[0]


# ----------------------------------------------------------------------------- shell scripts


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_parse(script):
    out = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_pass_shellcheck(script):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (`make setup` installs Debian's as root)")
    out = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# ------------------------------------------------------------------ stages and their paths


def bundle_tasks() -> list[tuple[str, list[str]]]:
    """(stage the task runs, its arguments) in the order the tasks depend on each other."""
    tasks = {t["task_key"]: t for t in JOB["tasks"]}
    order, done = [], set()
    while len(order) < len(tasks):
        ready = sorted(
            k
            for k, t in tasks.items()
            if k not in done and all(d["task_key"] in done for d in t.get("depends_on", []))
        )
        assert ready, f"tasks depend on each other in a cycle: {sorted(set(tasks) - done)}"
        order.append(ready[0])
        done.add(ready[0])
    out = []
    for key in order:
        argv = [str(a) for a in tasks[key]["python_wheel_task"]["parameters"]]
        out.append((build_parser().parse_args(argv).name, argv))
    return out


def emr_tasks() -> list[tuple[str, list[str]]]:
    """(stage the step runs, the job's arguments after `stage <name>`) in step order."""
    out = []
    for step in emr_steps():
        args = step["Args"]
        i = next(i for i, a in enumerate(args) if a.endswith(".py"))
        out.append((args[i].rsplit("/", 1)[1][: -len(".py")], args[i + 1 :]))
    return out


def missing_and_extra(deployed: list[str]) -> str:
    return (
        f"in the pipeline, not deployed: {[s for s in STAGES if s not in deployed]}; "
        f"deployed, not in the pipeline: {[s for s in deployed if s not in STAGES]}"
    )


@pytest.mark.parametrize("platform", ["databricks", "emr"])
def test_every_pipeline_stage_is_deployed_in_order_and_nothing_else(platform):
    deployed = [s for s, _ in (bundle_tasks() if platform == "databricks" else emr_tasks())]
    assert deployed == list(STAGES), missing_and_extra(deployed)


def cluster_path(value: str) -> bool:
    """A path every node of a cluster resolves the same way: a URI Hadoop's FileSystem opens
    (s3://, abfss://, gs://, dbfs:/; not a node's own file:) or an absolute path (/Volumes, a
    FUSE mount)."""
    if files.URI.match(value):
        return not files.is_local(value)
    return value.startswith("/")


def unset_paths(stage: str, cfg: Config) -> list[str]:
    """The config paths `stage` reads that are unset, relative, or the local demo default."""
    bad = []
    if cfg.lakehouse == Config().lakehouse or not cluster_path(cfg.lakehouse):
        bad.append(f"lakehouse={cfg.lakehouse}")
    if stage == "ingest":
        given = cfg.ingest.input
        inputs = [given] if isinstance(given, str) else list(given or [])
        # The default (the local demo file, or none) is not a cluster's input.
        if given == Config().ingest.input or not inputs or not all(map(cluster_path, inputs)):
            bad.append(f"ingest.input={given}")
    if stage in LLM_STAGES and not (cfg.llm.model or "").startswith("/"):
        # Weights are read from a local or FUSE folder: nothing is downloaded at run time.
        bad.append(f"llm.model={cfg.llm.model}")
    if stage == "decontaminate":
        # Benchmark files are read through webscale_rl/files.py (udfs/decontam/benchmark_files.py): a
        # URI root (s3://, dbfs:/, abfss://) works as well as /Volumes or a FUSE folder.
        root = cfg.decontam.data_root
        elsewhere = [b.name for b in cfg.decontam.benchmarks if not cluster_path(b.path)]
        if elsewhere and (root == Config().decontam.data_root or not cluster_path(root)):
            bad.append(f"decontam.data_root={root} (benchmarks {', '.join(elsewhere)})")
    if cfg.publish.exports_dir and not cluster_path(cfg.publish.exports_dir):
        bad.append(f"publish.exports_dir={cfg.publish.exports_dir}")
    return bad


def deployed_config(platform: str, stage: str) -> Config:
    """The config a deployed task of `stage` runs with (Databricks: per target)."""
    if platform == "emr":
        rest = dict(emr_tasks())[stage]
        args = build_parser().parse_args(["stage", stage, *rest])
    else:
        target = platform.split("-", 1)[1]
        argv = dict(bundle_tasks())[stage]
        args = build_parser().parse_args([substitute(BUNDLE, a, target) for a in argv])
    return config_from_args(args, load_stage(stage))


@pytest.mark.parametrize("platform", ["databricks-dev", "databricks-prod", "emr"])
@pytest.mark.parametrize("stage", list(STAGES))
def test_every_path_a_task_reads_is_set(platform, stage):
    bad = unset_paths(stage, deployed_config(platform, stage))
    assert not bad, f"{stage}: paths not set for a cluster: {bad}"


def test_cluster_paths_are_uris_or_absolute():
    for ok in ("s3://b/benchmarks", "dbfs:/benchmarks", "abfss://c@a.dfs.core.windows.net/b"):
        assert cluster_path(ok), ok
    assert cluster_path("/Volumes/main/webscale_rl/benchmarks")
    for bad in ("../shared/data/benchmarks", "benchmarks", "file:/tmp/x", "file:///tmp/x"):
        assert not cluster_path(bad), bad
    cfg = Config().model_copy(update={"lakehouse": "s3://b/lh"})
    assert any(b.startswith("decontam.data_root=") for b in unset_paths("decontaminate", cfg))
    cfg.decontam.data_root = "s3://b/benchmarks"
    assert unset_paths("decontaminate", cfg) == []
