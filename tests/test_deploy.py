"""The deployment files call what the package really has: entry point, stages, arguments, config.

Nothing here talks to a cloud: the Databricks bundle and the EMR steps are parsed, every task's
command line is parsed by the CLI's own parser, and its `--set` overrides by the config loader.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from deploy_files import emr_steps, load_bundle
from deploy_files import substitute as substitute_in

from webscale_rl.cli import build_parser
from webscale_rl.jobs.base import config_from_args, load_stage
from webscale_rl.stages import LLM_STAGES
from webscale_rl.stages import NAMES as STAGES

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "deploy" / "databricks"
EMR = REPO / "deploy" / "emr"
GPU_STAGES = set(LLM_STAGES)  # declared `llm` (webscale_rl/stages.py): GPUs with vLLM


BUNDLE_DATA = load_bundle()
JOB = BUNDLE_DATA["resources"]["jobs"]["webscale_rl_pipeline"]
TASKS = {t["task_key"]: t for t in JOB["tasks"]}
CLUSTERS = {c["job_cluster_key"]: c["new_cluster"] for c in JOB["job_clusters"]}


def substitute(value: str, target: str = "dev") -> str:
    return substitute_in(BUNDLE_DATA, value, target)


def task_order() -> list[str]:
    """Task keys in dependency order; asserts the dependencies form one chain."""
    order, seen = [], set()
    while len(order) < len(TASKS):
        ready = [
            k
            for k, t in TASKS.items()
            if k not in seen and all(d["task_key"] in seen for d in t.get("depends_on", []))
        ]
        assert len(ready) == 1, f"tasks must form one chain, ready at once: {ready}"
        order.append(ready[0])
        seen.add(ready[0])
    return order


def test_bundle_runs_the_pipeline_stages_in_order():
    # tests/test_deploy_platforms.py checks the stage each task runs, on both platforms.
    assert task_order() == list(STAGES)


def test_tasks_call_the_package_entry_point():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    scripts = project["scripts"]
    for key, task in TASKS.items():
        wheel_task = task["python_wheel_task"]
        # Databricks matches the wheel's distribution name with - and _ treated alike.
        assert re.sub(r"[-_.]+", "_", wheel_task["package_name"]) == re.sub(
            r"[-_.]+", "_", project["name"]
        )
        assert wheel_task["entry_point"] in scripts, key
        module, func = scripts[wheel_task["entry_point"]].split(":")
        assert callable(getattr(importlib.import_module(module), func)), key
        assert any("whl" in lib for lib in task["libraries"]), f"{key}: the wheel is not installed"


def test_wheel_artifact_builds_from_the_repo_root():
    artifact = BUNDLE_DATA["artifacts"]["webscale_rl_wheel"]
    assert artifact["type"] == "whl"
    assert (BUNDLE / artifact["path"] / "pyproject.toml").is_file()
    assert "pip wheel --no-deps" in artifact["build"]
    for task in TASKS.values():
        for lib in task["libraries"]:
            if "whl" in lib:  # library paths are relative to the resources file
                assert (BUNDLE / "resources" / lib["whl"]).parent.resolve() == REPO / "dist"


def test_targets_and_unity_catalog():
    assert {"dev", "prod"} <= set(BUNDLE_DATA["targets"])
    assert BUNDLE_DATA["variables"]["catalog"]["default"] == "main.webscale_rl"
    assert {p["name"] for p in JOB["parameters"]} >= {"input", "run_name"}


@pytest.mark.parametrize("stage", list(STAGES))
def test_task_arguments_parse_and_configure(stage):
    for target in ("dev", "prod"):
        argv = [substitute(a, target) for a in TASKS[stage]["python_wheel_task"]["parameters"]]
        args = build_parser().parse_args(argv)
        assert (args.command, args.name) == ("stage", stage)
        cfg = config_from_args(args, load_stage(stage))  # every --set key exists and validates
        assert cfg.catalog == substitute("${var.catalog}", target)
        assert cfg.mlflow.tracking_uri == "databricks"
        if stage == "ingest":
            assert cfg.ingest.input == substitute("{{job.parameters.input}}")
        if stage in GPU_STAGES:
            assert cfg.llm.engine == "vllm"


def test_llm_stages_run_on_gpus_with_a_pinned_vllm():
    for key, task in TASKS.items():
        cluster = CLUSTERS[task["job_cluster_key"]]
        conf = cluster.get("spark_conf", {})
        if key in GPU_STAGES:
            assert "gpu-ml" in substitute(cluster["spark_version"])
            assert substitute(conf["spark.task.resource.gpu.amount"]).isdigit()
            pins = [lib["pypi"]["package"] for lib in task["libraries"] if "pypi" in lib]
            assert any(re.fullmatch(r"vllm==\d+(\.\d+)+", substitute(p)) for p in pins), pins
        else:
            assert "gpu" not in substitute(cluster["spark_version"])
            assert "spark.task.resource.gpu.amount" not in conf
    # The CPU clusters before and after the GPU stages are different clusters, so the first
    # one can stop while the GPUs work.
    gpu = [i for i, s in enumerate(STAGES) if s in GPU_STAGES]
    before, after = STAGES[gpu[0] - 1], STAGES[gpu[-1] + 1]
    assert TASKS[before]["job_cluster_key"] != TASKS[after]["job_cluster_key"]


# ------------------------------------------------------------------------------------------ EMR


def split_submit(args: list[str]) -> tuple[list[str], str, list[str]]:
    """spark-submit options, the primary .py resource, the job's own arguments."""
    i = next(i for i, a in enumerate(args) if a.endswith(".py"))
    return args[:i], args[i], args[i + 1 :]


def test_emr_steps_submit_every_stage_in_order():
    names = [split_submit(s["Args"])[1].rsplit("/", 1)[1][:-3] for s in emr_steps()]
    assert names == list(STAGES)


@pytest.mark.parametrize("step", emr_steps(), ids=lambda s: s["Name"])
def test_emr_step(step):
    args = step["Args"]
    assert step["Jar"] == "command-runner.jar" and args[0] == "spark-submit"
    opts, job, rest = split_submit(args)
    stage = job.rsplit("/", 1)[1][:-3]
    assert (REPO / "jobs" / f"{stage}.py").is_file(), (
        f"no job file for spark-submit: jobs/{stage}.py"
    )
    assert f"io.delta:delta-spark_2.13:{version('delta-spark')}" in opts
    # PySpark ships --py-files to executors only under a .zip/.egg name (see deploy/submit.sh).
    py_files = opts[opts.index("--py-files") + 1]
    assert py_files.endswith(".zip")
    gpu_conf = {o for o in opts if o.startswith("spark.task.resource.gpu.amount=")}
    assert bool(gpu_conf) == (stage in GPU_STAGES)
    if stage in GPU_STAGES:
        assert any(o.startswith("spark.executor.resource.gpu.discoveryScript=") for o in opts)
    # The job file prepends `stage <name>`: its arguments must parse after that.
    parsed = build_parser().parse_args(["stage", stage, *rest])
    assert parsed.name == stage
    cfg = config_from_args(parsed, load_stage(stage))
    assert cfg.lakehouse.startswith("s3://")


def test_emr_configurations_enable_yarn_gpu_scheduling():
    conf = {c["Classification"]: c for c in json.loads((EMR / "configurations.json").read_text())}
    assert conf["yarn-site"]["Properties"]["yarn.resource-types"] == "yarn.io/gpu"
    assert "DominantResourceCalculator" in str(conf["capacity-scheduler"])
    subprocess.run(["bash", "-n", str(EMR / "bootstrap.sh")], check=True)


# ---------------------------------------------------------------------------------- submit.sh


def dry_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPO / "deploy" / "submit.sh"), "--dry-run", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_submit_builds_the_spark_submit_command():
    out = dry_run("--master", "spark://h:7077", "stage", "filter", "--output", "x")
    assert out.returncode == 0, out.stderr
    cmd = out.stdout
    assert f"--packages io.delta:delta-spark_2.13:{version('delta-spark')}" in cmd
    assert "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension" in cmd
    assert "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog" in cmd
    assert re.search(r"--py-files \S+webscale_rl-\S+-py3-none-any\.zip", cmd)
    assert cmd.rstrip().endswith(f"{REPO}/jobs/filter.py --output x")
    whole = dry_run("--master", "yarn", "run", "--input", "y")
    assert whole.stdout.rstrip().endswith(f"{REPO}/jobs/pipeline.py --input y")


@pytest.mark.parametrize(
    "args",
    [["stage", "ingest"], ["--master", "yarn", "stage", "../etc"], ["--master", "yarn"]],
)
def test_submit_rejects_bad_usage(args):
    out = dry_run(*args)
    assert out.returncode == 2 and "submit.sh:" in out.stderr
