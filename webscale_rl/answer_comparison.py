"""How a predicted answer is compared with the gold answer, by answer type: numbers with units
and tolerance, dates, normalised names and phrases, math expressions via math-verify."""

import re
import string
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from webscale_rl.answer_dates import MONTH_PATTERN, dates_match, parse_date
from webscale_rl.answer_numbers import find_single_number, numbers_match, parse_number

ANSWER_TYPES = ("number", "date", "name", "phrase", "expression")

# Generators and humans spell types differently; map the common variants.
_TYPE_ALIASES = {
    "numeric": "number",
    "numerical": "number",
    "integer": "number",
    "float": "number",
    "quantity": "number",
    "time": "date",
    "year": "date",
    "entity": "name",
    "person": "name",
    "place": "name",
    "location": "name",
    "organization": "name",
    "text": "phrase",
    "short_text": "phrase",
    "string": "phrase",
    "math": "expression",
    "formula": "expression",
    "latex": "expression",
    "equation": "expression",
}


class RewardParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rel_tol: float = Field(
        1e-4, ge=0.0, description="Relative tolerance for numeric answers (|a-b| <= tol*max|.|)."
    )
    f1_threshold: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="For name/phrase answers: also accept a token F1 >= this. None = exact only.",
    )
    partial_credit: bool = Field(
        False,
        description="For name/phrase answers that do not match: return the token F1 instead of 0.",
    )
    math_timeout_seconds: int = Field(
        5, ge=1, description="Timeout for math_verify parsing/verification (main thread only)."
    )


# ---------------------------------------------------------------------------- numbers and dates


def score_number(gold: str, pred: str, params: RewardParams) -> float:
    gold_q = parse_number(gold)
    if gold_q is None:
        return score_expression(gold, pred, params)
    pred_q = parse_number(pred) or find_single_number(pred)
    if pred_q is not None:
        return float(numbers_match(gold_q, pred_q, params.rel_tol))
    if "\\" in pred or "^" in pred:
        # LaTeX like \frac{1}{2} or 2^{10}: let math_verify decide.
        return score_expression(gold, pred, params)
    return 0.0


def score_date(gold: str, pred: str, params: RewardParams) -> float:
    gold_dates = parse_date(gold)
    if gold_dates is None:
        return score_phrase(gold, pred, params)
    pred_dates = parse_date(pred)
    return float(pred_dates is not None and dates_match(gold_dates, pred_dates))


# ---------------------------------------------------------------------------- names and phrases

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_HONORIFICS = re.compile(r"\b(?:dr|mr|mrs|ms|prof|sir|dame|st|saint)\b")
_PUNCT = str.maketrans({ch: " " for ch in string.punctuation + "‘’“”–—…·"})


def normalise_text(text: str, drop_honorifics: bool = False) -> str:
    """SQuAD-style: lower case, no accents, no punctuation, no articles, single spaces."""
    s = unicodedata.normalize("NFKD", text)
    s = "".join(ch for ch in s if not unicodedata.combining(ch)).lower()
    s = s.replace("&", " and ").translate(_PUNCT)
    s = _ARTICLES.sub(" ", s)
    if drop_honorifics:
        s = _HONORIFICS.sub(" ", s)
    return " ".join(s.split())


def token_f1(gold: str, pred: str) -> float:
    gold_tokens, pred_tokens = gold.split(), pred.split()
    common = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _score_text(gold: str, pred: str, params: RewardParams, drop_honorifics: bool) -> float:
    gold_n = normalise_text(gold, drop_honorifics)
    pred_n = normalise_text(pred, drop_honorifics)
    if not gold_n or not pred_n:
        return 0.0
    if gold_n == pred_n:
        return 1.0
    f1 = token_f1(gold_n, pred_n)
    if params.f1_threshold is not None and f1 >= params.f1_threshold:
        return 1.0
    return f1 if params.partial_credit else 0.0


def score_name(gold: str, pred: str, params: RewardParams) -> float:
    return _score_text(gold, pred, params, drop_honorifics=True)


def score_phrase(gold: str, pred: str, params: RewardParams) -> float:
    return _score_text(gold, pred, params, drop_honorifics=False)


# ---------------------------------------------------------------------------- expressions


def _as_math(text: str) -> str:
    # math_verify finds LaTeX inside $...$ or \boxed{}; bare text like '2x' would be read as '2'.
    return text if "$" in text or "\\boxed" in text else f"${text}$"


def score_expression(gold: str, pred: str, params: RewardParams) -> float:
    from math_verify import parse, verify

    # math_verify's timeout uses signal.alarm, which only works in the main thread (TRL and
    # Spark may call us from worker threads); elsewhere run without it, inputs are capped.
    in_main = threading.current_thread() is threading.main_thread()
    timeout = params.math_timeout_seconds if in_main else None
    gold_parsed = parse(_as_math(gold), parsing_timeout=timeout)
    pred_parsed = parse(_as_math(pred), parsing_timeout=timeout)
    if gold_parsed and pred_parsed:
        return float(verify(gold_parsed, pred_parsed, timeout_seconds=timeout))
    # Not parseable as math: fall back to a plain normalised comparison.
    squash = re.compile(r"[\s{}$]")
    return float(bool(gold.strip()) and squash.sub("", gold) == squash.sub("", pred))


# ---------------------------------------------------------------------------- dispatch

_SCORERS: dict[str, Callable[[str, str, RewardParams], float]] = {
    "number": score_number,
    "date": score_date,
    "name": score_name,
    "phrase": score_phrase,
    "expression": score_expression,
}

# LaTeX commands, powers, subscripts, algebra ('2x', 'p - q'), tuples and lists of numbers.
_MATHY = re.compile(
    r"\\[a-zA-Z]+|\^|_\{|_\d|[a-zA-Z]\s*[+\-*/=]|[+\-*/=]\s*[a-zA-Z]|\d[a-rt-zA-Z]\b"
    r"|^[\[(].*,.*[\])]$|^-?\d+(?:\s*,\s*-?\d+)+$"
)


def normalise_answer_type(answer_type: object) -> str | None:
    if not isinstance(answer_type, str):
        return None
    key = answer_type.strip().lower()
    key = _TYPE_ALIASES.get(key, key)
    return key if key in ANSWER_TYPES else None


def infer_answer_type(ground_truth: str) -> str:
    """Guess the type from the gold answer alone (used when extra_info carries none)."""
    text = ground_truth.strip()
    if parse_number(text) is not None:
        return "number"  # a bare year like '1969' compares fine as a number
    if _MATHY.search(text):
        return "expression"
    # A date needs a month name or a numeric y-m-d form; a lone 3-4 digit run is not enough.
    looks_dated = re.search(rf"(?i)\b{MONTH_PATTERN}\b", text) or re.search(r"\d[-/.]\d", text)
    if looks_dated and len(text.split()) <= 6 and parse_date(text) is not None:
        return "date"
    return "phrase"


def score_answer(
    pred: str, ground_truth: str, answer_type: str | None, params: RewardParams
) -> float:
    """Compare an already-extracted answer with the gold answer."""
    if not pred or not ground_truth.strip():
        return 0.0
    kind = normalise_answer_type(answer_type) or infer_answer_type(ground_truth)
    return float(_SCORERS[kind](ground_truth.strip(), pred, params))
