"""Rule-based reward for Webscale-RL QA pairs, usable from verl and TRL.

verl calls `compute_score(data_source, solution_str, ground_truth, extra_info)` once per
response (set `custom_reward_function.path` to this file, `.name=compute_score`; keys under
`custom_reward_function.reward_kwargs` arrive as keyword arguments). TRL's GRPOTrainer calls a
function with `completions` plus every dataset column as keyword arguments: `trl_reward`.

Scoring: extract the final answer (last `\\boxed{}`, else an "Answer:" line, else the last
non-empty line), then compare it with the ground truth by answer type. Anything unexpected
scores 0.0: a reward function must never crash a training step.
"""

# No `from __future__ import annotations`: verl may load this file by path without registering
# it in sys.modules, and dataclasses then cannot resolve string annotations.
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

try:
    import webscale_rl  # noqa: F401
except ModuleNotFoundError:
    # Loaded by path (verl's custom_reward_function.path) from a checkout that is not installed:
    # the package is the folder this file sits in.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from webscale_rl.answer_comparison import (
    ANSWER_TYPES,
    RewardParams,
    infer_answer_type,
    normalise_answer_type,
    score_answer,
)
from webscale_rl.answer_dates import parse_date
from webscale_rl.answer_extraction import clean_answer, extract_answer
from webscale_rl.answer_numbers import parse_number

__all__ = [
    "ANSWER_TYPES",
    "MAX_ANSWER_CHARS",
    "RewardParams",
    "compute_score",
    "extract_answer",
    "infer_answer_type",
    "make_trl_reward",
    "normalise_answer_type",
    "parse_date",
    "parse_number",
    "score_answer",
    "trl_reward",
]

# Longer than any sensible short answer; caps the work sympy and the regexes can be asked to do.
MAX_ANSWER_CHARS = 1000


def _params_from(kwargs: dict) -> RewardParams:
    known = {k: v for k, v in kwargs.items() if k in RewardParams.model_fields}
    params = kwargs.get("params")
    if isinstance(params, RewardParams):
        return params.model_copy(update=known)
    return RewardParams(**known)


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> float:
    """verl custom reward: 1.0 if the response's final answer matches, else 0.0.

    `extra_info["answer_type"]` picks the comparison; without it the type is inferred from the
    gold. Keyword arguments named like RewardParams fields (rel_tol, f1_threshold,
    partial_credit) tune it. Never raises on bad responses or gold answers; invalid settings
    raise pydantic's ValidationError, since a silent all-zero reward would waste a whole run.
    """
    params = _params_from(kwargs)
    try:
        if not isinstance(solution_str, str) or not isinstance(ground_truth, str | int | float):
            return 0.0
        answer_type = extra_info.get("answer_type") if isinstance(extra_info, dict) else None
        pred = extract_answer(solution_str)[:MAX_ANSWER_CHARS]
        gold = clean_answer(str(ground_truth)[:MAX_ANSWER_CHARS])
        return score_answer(pred, gold, answer_type, params)
    except Exception:  # noqa: BLE001 - a reward must never kill a training step
        return 0.0


def _completion_text(completion: object) -> str:
    """TRL completions are strings, or (conversational) lists of chat messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion:
        last = completion[-1]
        if isinstance(last, dict) and isinstance(last.get("content"), str):
            return last["content"]
    if isinstance(completion, dict) and isinstance(completion.get("content"), str):
        return completion["content"]
    return ""


def _per_row(values: object, n: int, name: str) -> list:
    if values is None or isinstance(values, str):
        return [values] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries but there are {n} completions")
    return values


def trl_reward(completions, ground_truth, answer_type=None, **kwargs) -> list[float]:
    """TRL GRPOTrainer reward: the dataset's `ground_truth`/`answer_type` columns arrive as lists.

    Extra TRL arguments (prompts, completion_ids, trainer_state, other columns) are ignored.
    Mismatched list lengths are a wiring bug and raise ValueError; bad rows score 0.0.
    """
    completions = list(completions)
    golds = _per_row(ground_truth, len(completions), "ground_truth")
    types = _per_row(answer_type, len(completions), "answer_type")
    params = _params_from(kwargs)
    return [
        compute_score("webscale_rl", _completion_text(c), g, {"answer_type": t}, params=params)
        for c, g, t in zip(completions, golds, types, strict=True)
    ]


def make_trl_reward(params: RewardParams) -> Callable[..., list[float]]:
    """A TRL reward function with fixed parameters (TRL logs it under its __name__)."""

    def webscale_rl_reward(completions, ground_truth, answer_type=None, **kwargs):
        return trl_reward(completions, ground_truth, answer_type, params=params)

    return webscale_rl_reward
