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


# How a question about a focused fact may open, by the fact's answer type: a 135M model asked
# for a year wrote "What is the name of the person who first proved that pi is irrational?"
# (answer 1761); opening with "In what year" keeps question and answer about the same thing.
# Alternatives, not (?:...): llama.cpp's pattern converter reads plain groups.
QUESTION_STEMS = {
    "date": ("In what year", "In which year", "When", "On what date", "What year"),
    "number": ("How many", "How much", "How long", "How far", "How high", "How old", "What"),
    "name": ("Who", "What", "Which"),
}


def question_shape(min_chars: int, max_chars: int, answer_type: str | None = None) -> dict:
    """A question a small model cannot turn into something else: a capital first, no newline,
    quote or '?' inside, and one '?' at the end. SmolLM2-135M otherwise pastes the page or
    loops ("The answer is 100. The answer is 100. ...") inside the field. The length bounds
    are in the pattern too: grammar backends (llama.cpp) ignore min/maxLength beside one."""
    inside = r'[^?"\\\n]'
    stems = QUESTION_STEMS.get(answer_type or "")
    if not stems:
        pattern = "^[A-Z]" + inside + f"{{{min_chars - 2},{max_chars - 2}}}" + r"\?$"
    else:
        # The body's floor counts from the shortest stem, its cap from the longest.
        low = min_chars - 2 - min(map(len, stems))
        high = max_chars - 2 - max(map(len, stems))
        pattern = f"^({'|'.join(stems)}) " + inside + f"{{{low},{high}}}" + r"\?$"
    return _text(max_chars, min_chars) | {"pattern": pattern}


def task_schema(
    task: str, params=None, choices: list[str] | None = None, focus_type: str | None = None
) -> dict:
    """JSON schema of the task's reply (for structured output); `choices`: generate's answer
    must be one of them (`tasks.answer_choices`); `focus_type`: the one focused fact's answer
    type (`tasks.focus_fact`), which also fixes how the question opens."""
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
        floor = max(QUESTION_MIN_CHARS, checks.question_min_chars)
        question = _text(QUESTION_MAX_CHARS, floor)
        answer = {"type": "string", "enum": choices} if choices else _text(checks.answer_max_chars)
        answer_type = {"type": "string", "enum": [focus_type] if focus_type else list(ANSWER_TYPES)}
        if choices:
            question = question_shape(floor, QUESTION_MAX_CHARS, focus_type)
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
