"""Reading the JSON object out of a model's reply, and repairing near misses.

Structured output (vLLM, llama.cpp, OpenAI) makes well-formed JSON; a server that ignores
`response_format`, or a small model without it, writes prose around the object, fences it, or
misses by a little: single quotes, Python's True/False/None, unquoted keys, a trailing comma, a
closing brace or quote left out. `extract_json` tries the reply as it is first and repairs only
when nothing parses; the repaired text must still be one JSON object, and the task's parser
then checks every field as usual.
"""

from __future__ import annotations

import ast
import json
import re

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_MAX_JSON_STARTS = 50  # how many '{' we try before calling a reply malformed
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_BARE_KEY = re.compile(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_]*)\s*:")
_PY_LITERAL = re.compile(r"\b(True|False|None)\b")
_JSON_LITERAL = {"True": "true", "False": "false", "None": "null"}


def extract_json(text: str) -> dict | None:
    """The first JSON object in `text`: bare, inside ``` fences, or after leading prose; else a
    repaired near miss (`repair_json`); else None."""
    text = text.strip()
    candidates = [text, *(m.group(1).strip() for m in _FENCE.finditer(text))]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    start = text.find("{")
    for _ in range(_MAX_JSON_STARTS):
        if start < 0:
            break
        try:
            value, _end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return repair_json(text)


def repair_json(text: str) -> dict | None:
    """A near-miss object made valid, or None. Tries, from the first '{': a Python dict literal
    (single quotes, True/None), then JSON with bare keys quoted, Python literals spelled as JSON,
    trailing commas dropped and an unterminated string, list or object closed."""
    start = text.find("{")
    if start < 0:
        return None
    body = text[start:].strip().removesuffix("```").strip()
    end = body.rfind("}")
    whole = body[: end + 1] if end >= 0 else body
    try:
        value = ast.literal_eval(whole)  # literals only: never runs code
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return json.loads(json.dumps(value))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    fixed = _BARE_KEY.sub(r'\1"\2":', body)
    fixed = _PY_LITERAL.sub(lambda m: _JSON_LITERAL[m.group(1)], fixed)
    fixed = _TRAILING_COMMA.sub(r"\1", _close(fixed))
    try:
        value = json.loads(fixed)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _close(text: str) -> str:
    """`text` cut after its outermost object closes, or with its open string/brackets closed."""
    stack, in_string, escaped = [], False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
            if not stack:
                return text[: i + 1]
    return text + ('"' if in_string else "") + "".join(reversed(stack))
