"""Per-stage engines (`llm_stages.<stage>.llm.*` over `llm.*`) and where vLLM may run."""

import pytest

from webscale_rl.config import load_config
from webscale_rl.errors import ConfigError
from webscale_rl.udfs.llm import placement as llm_placement
from webscale_rl.udfs.llm.engine import LLMParams
from webscale_rl.udfs.llm.placement import gpu_profile
from webscale_rl.udfs.llm.stage import engine_params

CHECKER = [
    "llm_stages.verify.llm.engine=openai",
    "llm_stages.verify.llm.model=small",
    "llm_stages.verify.llm.base_url=http://127.0.0.1:9/v1",
    "llm_stages.verify.llm.temperature=0.3",
]


def test_a_stage_overrides_only_its_own_keys(tmp_path):
    cfg = load_config(
        overrides=["llm.max_concurrency=3", "llm.rules.verify_min_support=0.2", *CHECKER],
        lakehouse=str(tmp_path),
    )
    verify = engine_params(cfg, "verify")
    assert (verify.engine, verify.model, verify.temperature) == ("openai", "small", 0.3)
    assert verify.max_concurrency == 3  # not overridden: from llm
    assert verify.rules.verify_min_support == 0.2
    assert verify.journal_dir == str(tmp_path / "_llm_journal")  # a paid engine is journaled
    for stage in ("annotate", "generate"):
        assert engine_params(cfg, stage).engine == "none"
        assert engine_params(cfg, stage).journal_dir is None


def test_nested_override_merges_key_by_key(tmp_path):
    cfg = load_config(overrides=["llm_stages.generate.llm.rules.verify_min_support=0.9"])
    rules = engine_params(cfg, "generate").rules
    assert rules.verify_min_support == 0.9
    assert rules.model_dump() | {"verify_min_support": 0.9} == rules.model_dump()


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["llm_stages.verify.llm.modle=x"], "unknown llm key(s) ['modle']"),
        (["llm_stages.verify.llm.engine=openai"], "llm_stages.verify.llm: llm.model is required"),
        (
            ["llm_stages.annotate.llm.max_concurrency=lots"],
            "llm_stages.annotate.llm: max_concurrency",
        ),
    ],
)
def test_bad_stage_overrides_fail_at_load_naming_the_key(sets, message):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=sets)
    assert message in str(err.value)


def test_vllm_in_local_mode_has_no_resource_profile(monkeypatch):
    vllm = LLMParams(engine="vllm", model="m")
    assert gpu_profile(vllm, "local[2]") is None
    monkeypatch.setattr(llm_placement, "local_gpu_count", lambda: 0)
    assert gpu_profile(vllm, "local[*]") is None  # gpus_per_task=0: vLLM's CPU build
    with pytest.raises(ConfigError, match="shows no GPU"):
        gpu_profile(vllm.model_copy(update={"gpus_per_task": 1}), "local[*]")
    monkeypatch.setattr(llm_placement, "local_gpu_count", lambda: 1)
    assert gpu_profile(vllm.model_copy(update={"gpus_per_task": 1}), "local[*]") is None


def test_cluster_without_enough_executor_gpus_is_a_clear_error():
    vllm = LLMParams(engine="vllm", model="m", tensor_parallel_size=2)
    with pytest.raises(ConfigError, match="executors offer 1"):
        gpu_profile(vllm, "spark://host:7077", "1")
    profile = gpu_profile(vllm, "spark://host:7077", "2")
    assert profile.taskResources["gpu"].amount == 2.0


def test_local_gpu_count_respects_hidden_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert llm_placement.local_gpu_count() == 0
