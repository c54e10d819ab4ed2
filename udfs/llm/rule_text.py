"""Words and sentences as the rule engine (udfs/llm/engine_rules.py) reads a page: content words,
a sentence splitter that keeps abbreviations and initials whole, and the sentences that read
like instructions to a model, which the rules never use."""

from __future__ import annotations

import re

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    out over own same she should so some such than that the their theirs them then there these
    they this those through to too under until up very was we were what when where which while
    who whom why will with would you your yours yourself yourselves us may might must shall one
    many much every get got make made like well even still yet via per i'm it's don't""".split()
)
PRONOUN_STARTS = frozenset(
    "it this that these those they he she we i you there here his her their its our my them "
    "such another".split()
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’\-]*")


def content_words(text: str) -> list[str]:
    """Lowercased non-stopwords of 3+ letters, with a crude plural/verb 's' stripped."""
    out = []
    for word in _WORD.findall(text.lower()):
        word = word.strip("'’-")
        if len(word) < 3 or word in STOPWORDS:
            continue
        out.append(word[:-1] if len(word) > 3 and word.endswith("s") else word)
    return out


# --- sentence splitting ----------------------------------------------------------------------

_ABBREV = frozenset(
    "st mr mrs ms dr jr sr prof vs etc e.g i.e no mt ft inc ltd co corp dept approx fig jan feb "
    "mar apr jun jul aug sep sept oct nov dec u.s u.k".split()
)
# An initial or dotted initials ('J', 'K.K', 'U.S', 'a.m') with the final dot stripped.
_INITIALS = re.compile(r"(?:[a-z]\.)*[a-z]")
_BOUNDARY = re.compile(r"[.!?][\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Sentences of a page: line breaks always split; '.!?' + capital splits unless after an
    abbreviation or initials ('St. Moritz', 'J. Smith', 'Showa Denko K.K. Tokyo')."""
    sentences = []
    for line in (text or "").splitlines():
        start = 0
        for match in _BOUNDARY.finditer(line):
            before = line[start : match.start()].split()
            last = before[-1].lower().rstrip(".") if before else ""
            if last in _ABBREV or _INITIALS.fullmatch(last):
                continue
            sentences.append(line[start : match.end()].strip())
            start = match.end()
        if line[start:].strip():
            sentences.append(line[start:].strip())
    return sentences


# Sentences that talk to the model rather than about the world (prompt injection, planted JSON).
# The rules neither ask about them nor accept them as support; a few honest sentences
# ("answer every question in the exam") are lost too, which is the safe side.
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget)\b.{0,40}\b(?:above|previous|prior|earlier|instructions?|rules?)\b"
    r"|\b(?:system|developer)\s*(?:prompt|message|mode)\b|\byou are now\b|\b(?:assistant|system)\s*:"
    r"|[\"'](?:question|answer|answer_type|domain|personas|informative|correct|reason)[\"']\s*:"
    r"|\b(?:output|write|reply|respond|answer|mark|choose|print)\b[^.]{0,60}\b(?:json|question|"
    r"answer|personas?|domain|correct|uninformative|informative)\b",
    re.IGNORECASE,
)


def looks_like_instruction(sentence: str) -> bool:
    return _INSTRUCTION.search(sentence) is not None
