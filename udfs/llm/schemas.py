"""JSON schemas of the four LLM tasks' replies, for structured output.

Every string and array is bounded: a small model constrained by an unbounded schema can loop
inside one string until max_tokens and come back truncated. On SmolLM2-135M over 16 sample pages,
the bounds took truncated replies from 8/16 to 0/16 (llm_filter), 2/16 to 0 (identify) and 6/16
to 0 (verify); `bench/llm_schema_bounds.py`, figures in bench/README.md.
"""

from __future__ import annotations

from webscale_rl.udfs.llm.interface import TASKS
from webscale_rl.udfs.llm.qa_checks import ANSWER_TYPES


def _object(properties: dict, required: list[str] | None = None) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": required or list(properties),
        "additionalProperties": False,
    }


# Longest strings the schemas allow, in characters.
REASON_MAX_CHARS = 160
PERSONA_MAX_CHARS = 100
QUESTION_MAX_CHARS = 300
# Shortest question a model may write: one that carries its background is a sentence, and the
# floor keeps a small model from placeholders such as "[Question]".
QUESTION_MIN_CHARS = 30


def _text(max_chars: int, min_chars: int = 1) -> dict:
    return {"type": "string", "minLength": min_chars, "maxLength": max_chars}


def task_schema(task: str, params=None, choices: list[str] | None = None) -> dict:
    """JSON schema of the task's reply (for structured output); `choices`: generate's answer
    must be one of them (`tasks.answer_choices`)."""
    if params is None:
        from webscale_rl.udfs.llm.tasks import TaskParams

        params = TaskParams()
    boolean = {"type": "boolean"}
    reason = _text(REASON_MAX_CHARS)
    if task == "llm_filter":
        return _object({"informative": boolean, "self_contained": boolean, "reason": reason})
    if task == "identify":
        personas = {
            "type": "array",
            "items": _text(PERSONA_MAX_CHARS),
            "minItems": 1,
            "maxItems": params.max_personas,
        }
        return _object({"domain": {"type": "string", "enum": params.domains}, "personas": personas})
    if task == "generate":
        checks = params.checks
        question = _text(QUESTION_MAX_CHARS, max(QUESTION_MIN_CHARS, checks.question_min_chars))
        answer = {"type": "string", "enum": choices} if choices else _text(checks.answer_max_chars)
        answer_type = {"type": "string", "enum": list(ANSWER_TYPES)}
        if choices:
            # Answer first: a small model picks a fact of the page, then asks about it (decoding
            # follows the schema's property order).
            return _object({"answer": answer, "answer_type": answer_type, "question": question})
        return _object({"question": question, "answer": answer, "answer_type": answer_type})
    if task == "verify":
        return _object(
            {
                "correct": boolean,
                "leaks_answer": boolean,
                "self_contained": boolean,
                "has_context": boolean,
                "reason": reason,
            }
        )
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
