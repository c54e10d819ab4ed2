"""Deterministic QA checks, run on every generated pair before the (costly) LLM checker.

A pair survives only if its answer is short, grounded in the document (as text after
normalisation, or as the same number), absent from the question, and the question does not lean
on "the text" / "the passage" for its meaning. Each check is a pure function; `run_checks`
applies them in a fixed order and returns the first failure as `(False, reason, detail)`.
"""

from __future__ import annotations

import re
import unicodedata

from pydantic import BaseModel, ConfigDict, Field

# Reject reasons this module can return (the strings are part of the rejects table's contract).
ANSWER_TOO_LONG = "answer_too_long"
ANSWER_LEAKED = "answer_leaked"
ANSWER_NOT_IN_DOCUMENT = "answer_not_in_document"
REFERS_TO_DOCUMENT = "refers_to_document"
MISSING_ANSWER = "missing_field:answer"
MISSING_QUESTION = "missing_field:question"
BAD_ANSWER_TYPE = "bad_answer_type"

ANSWER_TYPES = ("number", "date", "name", "phrase", "expression")


class QACheckParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer_max_words: int = Field(12, ge=1, description="Longest answer, in words, still 'short'.")
    answer_max_chars: int = Field(100, ge=1, description="Longest answer, in characters.")
    question_min_chars: int = Field(10, ge=1, description="Shorter questions are malformed.")
    number_rel_tol: float = Field(
        1e-9, ge=0.0, description="Relative tolerance when an answer is matched as a number."
    )


# --- normalisation -------------------------------------------------------------------------

_THOUSANDS = re.compile(r"(?<=\d)[,\u202f\u00a0'](?=\d{3}(?!\d))")
_PERCENT = re.compile(r"\s*(%|\bper\s?cent\b)", re.IGNORECASE)


def _strip_punct(text: str) -> str:
    # Unicode categories P* (punctuation) and S* (symbols) become spaces; letters/digits stay,
    # and so does a decimal point or comma between digits ('4.2' must not yield a '2').
    return "".join(
        " "
        if unicodedata.category(ch)[0] in "PS"
        and not (
            ch in ".," and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()
        )
        else ch
        for i, ch in enumerate(text)
    )


def normalize(text: str) -> str:
    """NFKC, casefold, join thousands separators, '%' -> 'percent', punctuation -> space."""
    text = unicodedata.normalize("NFKC", text or "")
    text = _THOUSANDS.sub("", text)
    text = _PERCENT.sub(" percent ", text)
    text = _strip_punct(text.casefold())
    return " ".join(text.split())


def contains_phrase(haystack_norm: str, needle_norm: str) -> bool:
    """Token-bounded containment of normalised strings ('10' is not in '2010')."""
    if not needle_norm:
        return False
    return f" {needle_norm} " in f" {haystack_norm} "


# --- numbers -------------------------------------------------------------------------------

_NUMBER = re.compile(r"(?<![\w.])[-\u2212]?\d+(?:[,\u202f\u00a0']\d{3})*(?:\.\d+)?(?![\w])")
_CURRENCY = "$€£¥"


def numbers_in(text: str) -> list[float]:
    """Every number written in `text`, thousands separators removed (1,200 -> 1200.0)."""
    text = unicodedata.normalize("NFKC", text or "")
    out = []
    for match in _NUMBER.finditer(text):
        raw = re.sub(r"[,\u202f\u00a0']", "", match.group(0)).replace("\u2212", "-")
        try:
            out.append(float(raw))
        except ValueError:  # pragma: no cover - the regex only admits float syntax
            continue
    return out


def parse_number_answer(answer: str) -> tuple[float, str] | None:
    """An answer that is one number plus optional unit words -> (value, normalised unit words).

    '$1,200' -> (1200.0, ''), '45%' -> (45.0, 'percent'), '12 km' -> (12.0, 'km').
    Returns None when the answer holds no number or more than one.
    """
    text = unicodedata.normalize("NFKC", answer or "").strip().strip(_CURRENCY).strip()
    nums = _NUMBER.findall(text)
    if len(nums) != 1:
        return None
    rest = normalize(text.replace(nums[0], " ", 1))
    return numbers_in(nums[0])[0], rest


def _same_number(a: float, b: float, rel_tol: float) -> bool:
    return abs(a - b) <= rel_tol * max(abs(a), abs(b), 1.0)


# --- individual checks ---------------------------------------------------------------------


def check_lengths(question: str, answer: str, params: QACheckParams) -> tuple[bool, str, str]:
    if not answer or not answer.strip():
        return False, MISSING_ANSWER, "empty answer"
    if not question or len(question.strip()) < params.question_min_chars:
        return False, MISSING_QUESTION, "empty or too short question"
    n_words = len(answer.split())
    if (
        n_words > params.answer_max_words
        or len(answer.strip()) > params.answer_max_chars
        or "\n" in answer.strip()
    ):
        return False, ANSWER_TOO_LONG, f"{n_words} words, {len(answer.strip())} chars"
    return True, "", ""


_DOC_NOUNS = r"(?:text|passage|article|document|excerpt|snippet|paragraph|page|post|context)"
# "the text editor" / "the page count" are not references to the source; skip such compounds.
_NOT_A_REFERENCE = (
    r"(?!\s*-?\s*(?:editor|editors|message|messages|messaging|box|file|files|field|fields|"
    r"size|count|number|view|views|layout|title|book|books|type|mode)\b)"
)
_REFERS = re.compile(
    r"\b(?:according\s+to|based\s+on|in|from|per|within|as\s+(?:stated|mentioned|described|"
    r"shown|given)\s+in)\s+(?:the|this|that|above|given|provided|following)\s+"
    + _DOC_NOUNS
    + _NOT_A_REFERENCE
    + r"|\b(?:this|the\s+(?:above|given|provided|following)|the)\s+"
    r"(?:text|passage|article|document|excerpt|snippet)\b"
    + _NOT_A_REFERENCE
    + r"|\b(?:mentioned|described|stated|discussed|listed|shown|cited|given)\s+above\b"
    r"|\bthe\s+above\b|\baccording\s+to\s+the\s+(?:author|writer|source)\b",
    re.IGNORECASE,
)


def refers_to_document(question: str) -> str | None:
    """The phrase by which the question leans on an unseen source, or None."""
    match = _REFERS.search(unicodedata.normalize("NFKC", question or ""))
    return match.group(0) if match else None


def answer_in_question(question: str, answer: str, params: QACheckParams) -> bool:
    """True when the answer (text, or its number) already appears in the question."""
    if contains_phrase(normalize(question), normalize(answer)):
        return True
    parsed = parse_number_answer(answer)
    if parsed is None:
        return False
    value, _ = parsed
    return any(_same_number(value, n, params.number_rel_tol) for n in numbers_in(question))


def answer_in_document(answer: str, document: str, params: QACheckParams) -> bool:
    """True when the answer occurs in the document as text, or as the same number (+ unit)."""
    doc_norm = normalize(document)
    if contains_phrase(doc_norm, normalize(answer)):
        return True
    parsed = parse_number_answer(answer)
    if parsed is None:
        return False
    value, unit = parsed
    if not any(_same_number(value, n, params.number_rel_tol) for n in numbers_in(document)):
        return False
    # '12 km' needs both the 12 and the 'km'; a bare '3.50' matches '3.5' by value.
    return not unit or contains_phrase(doc_norm, unit)


_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_NUMBER_WORDS = (
    "zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
    "fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|billion|half|dozen"
)
_LOOKS_LIKE = {
    "number": re.compile(rf"\d|\b(?:{_NUMBER_WORDS})\b", re.IGNORECASE),
    "date": re.compile(rf"\d|\b(?:{_MONTHS})\b", re.IGNORECASE),
}


def check_answer_type(answer: str, answer_type: str) -> tuple[bool, str, str]:
    """The type is one we know, and numbers/dates at least look like numbers/dates."""
    if answer_type not in ANSWER_TYPES:
        return False, BAD_ANSWER_TYPE, f"unknown type {answer_type!r}"
    pattern = _LOOKS_LIKE.get(answer_type)
    if pattern is not None and not pattern.search(unicodedata.normalize("NFKC", answer)):
        return False, BAD_ANSWER_TYPE, f"{answer_type} answer without a {answer_type}"
    return True, "", ""


def run_checks(
    question: str,
    answer: str,
    answer_type: str,
    document: str,
    params: QACheckParams | None = None,
) -> tuple[bool, str, str]:
    """All deterministic checks in order; (True, "", "") or (False, reason, detail)."""
    params = params or QACheckParams()
    ok, reason, detail = check_lengths(question, answer, params)
    if not ok:
        return ok, reason, detail
    ok, reason, detail = check_answer_type(answer, answer_type)
    if not ok:
        return ok, reason, detail
    phrase = refers_to_document(question)
    if phrase:
        return False, REFERS_TO_DOCUMENT, phrase
    if answer_in_question(question, answer, params):
        return False, ANSWER_LEAKED, answer.strip()[:100]
    if not answer_in_document(answer, document, params):
        return False, ANSWER_NOT_IN_DOCUMENT, f"{answer_type}: {answer.strip()[:100]}"
    return True, "", ""
