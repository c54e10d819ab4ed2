"""The rule engine's `generate` task: extractive questions. Sentences holding a date, year,
amount, percentage, count or a capitalised name are ranked; the span is the answer and the
question quotes the sentence with the span blanked."""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

from webscale_rl.udfs.llm import qa_checks
from webscale_rl.udfs.llm.rule_text import (
    PRONOUN_STARTS,
    STOPWORDS,
    content_words,
    looks_like_instruction,
    split_sentences,
)

if TYPE_CHECKING:  # engine_rules imports this module
    from webscale_rl.udfs.llm.engine_rules import RuleEngineParams

_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
    r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?"
)
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
# No apostrophes inside a name word, so a possessive ends the name ("Theatre's play").
# Latin-1 letters too, so 'Paraná' or 'Müller' is not cut at the accent.
_UP, _LOW, _ANY = "A-ZÀ-ÖØ-Þ", "a-zß-öø-ÿ", "A-Za-zÀ-ÖØ-öø-ÿ"
_NAME_WORD = (
    rf"(?:O'[{_UP}][{_LOW}]+|[{_UP}][{_LOW}][{_ANY}\-]*|[{_UP}]{{2,}}[{_LOW}]*|(?:[{_UP}]\.)+)"
)
_NAME_LINK = r"(?:of|de|la|du|van|von|der|the|and|&|for)"
_NOT_NAMES = frozenset(
    "the a an in on at for to of and but or if when while after before this that these those it "
    "he she they we you i our my his her their its there here what which who how why monday "
    "tuesday wednesday thursday friday saturday sunday".split()
)
_UNIT_SKIP = frozenset(STOPWORDS | {"percent", "per", "cent", "years", "year", "th", "st", "nd"})

# (kind, pattern, answer_type, question lead, priority: lower is better)
SPAN_KINDS = [
    (
        "date",
        re.compile(
            rf"\b{_MONTH}\s+{_DAY},?\s+\d{{4}}\b|\b{_DAY}\s+(?:of\s+)?{_MONTH}\s+\d{{4}}\b"
            rf"|\b{_MONTH}\s+\d{{4}}\b"
        ),
        "date",
        "What date",
        0,
    ),
    (
        "money",
        re.compile(rf"[$€£¥]\s?(?:{_NUM})(?:\s?(?:million|billion|thousand|bn)\b)?"),
        "number",
        "What amount",
        1,
    ),
    (
        "percent",
        re.compile(rf"(?<![\w.,])(?:{_NUM})\s?(?:%|percent\b|per cent\b)"),
        "number",
        "What percentage",
        1,
    ),
    (
        "year",
        re.compile(r"(?<![\w$€£¥.,/:\-])(?:1[5-9]\d\d|20\d\d)(?:'?s)?(?![\w%]|[.,:/\-]\d)"),
        "date",
        "What year",
        0,
    ),
    (
        "count",
        re.compile(rf"(?<![\w$€£¥.,/:\-])(?:{_NUM})(?=\s+[a-z][a-z\-]{{2,}})"),
        "number",
        "What number",
        2,
    ),
    (
        "name",
        # not inside a word: 'iOS and Windows' must not give 'OS and Windows'
        re.compile(
            rf"(?<![\w'’]){_NAME_WORD}(?:\s+(?:{_NAME_LINK}\s+)?{_NAME_WORD}){{1,4}}(?![\w])"
        ),
        "name",
        "What name",
        1,
    ),
]


def _name_spans(sentence: str) -> list[tuple[int, int, str]]:
    """Capitalised multiword spans, not at the sentence start and not starting with a
    function word or month ('In March', 'The')."""
    spans = []
    for match in SPAN_KINDS[-1][1].finditer(sentence):
        words = match.group(0).split()
        if match.start() == 0 or words[0].lower().strip(".") in _NOT_NAMES:
            continue
        if re.fullmatch(_MONTH, words[0]):
            continue
        spans.append((match.start(), match.end(), match.group(0)))
    return spans


def _count_ok(sentence: str, start: int, end: int) -> bool:
    """A count is only a count if the next word is a noun-ish unit ('12 km', '4 fans')."""
    following = sentence[end:].split()
    return bool(following) and following[0].lower().strip(".,;:") not in _UNIT_SKIP


def find_spans(sentence: str) -> list[tuple[int, str, str, str, int]]:
    """Every answerable span of the sentence as (start, text, answer_type, lead, priority)."""
    spans, taken = [], []
    for kind, pattern, answer_type, lead, priority in SPAN_KINDS:
        found = (
            _name_spans(sentence)
            if kind == "name"
            else [(m.start(), m.end(), m.group(0)) for m in pattern.finditer(sentence)]
        )
        for start, end, text in found:
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue  # part of a span already found by an earlier kind ('May 2020' > '2020')
            if kind == "count" and not _count_ok(sentence, start, end):
                continue
            taken.append((start, end))
            spans.append((start, text.strip(), answer_type, lead, priority))
    return spans


# Site furniture, not knowledge: a question about it teaches nothing ("©2019 Capitol Hill ...").
_BOILERPLATE = re.compile(
    r"©|\bcopyright\b|\ball rights reserved\b|\bcookies?\b|\bprivacy policy\b"
    r"|\bterms (?:of (?:use|service)|and conditions)\b|\bsubscribe\b|\bnewsletter\b",
    re.IGNORECASE,
)


def _usable_sentence(sentence: str, params: RuleEngineParams) -> bool:
    n_words = len(sentence.split())
    return (
        6 <= n_words <= params.generate_max_sentence_words
        and not sentence.rstrip().endswith("?")
        and re.match(r"[\"'“‘(]?[A-Za-z0-9]", sentence) is not None
        and "http" not in sentence
        and "@" not in sentence
        and qa_checks.refers_to_document(sentence) is None
        and not looks_like_instruction(sentence)
        and not _BOILERPLATE.search(sentence)
    )


def _has_own_context(blanked: str, params: RuleEngineParams) -> bool:
    """Enough content words, and a pronoun start only when a name anchors the sentence."""
    if len(content_words(blanked.replace("____", " "))) < params.generate_min_context_words:
        return False
    first = re.sub(r"[^a-z]", "", (blanked.split() or [""])[0].lower())
    return first not in PRONOUN_STARTS or bool(_name_spans(blanked))


def document_topic(sentences: list[str], min_mentions: int = 3) -> str | None:
    """The most repeated capitalised name of the page, to anchor a statement that names
    nothing itself; None when no name is repeated `min_mentions` times."""
    counts = Counter(span for s in sentences for _, _, span in _name_spans(s))
    repeated = [(n, name) for name, n in counts.items() if n >= min_mentions]
    return max(repeated)[1] if repeated else None


def _question(lead: str, blanked: str, topic: str | None) -> str:
    about = f" about {topic}" if topic else ""
    quoted = blanked.replace('"', "'").replace("“", "'").replace("”", "'").rstrip()
    return f'{lead} completes this statement{about}: "{quoted}"?'


def qa_candidates(document: str, params: RuleEngineParams) -> list[dict]:
    """Ranked extractive QA pairs, at most one per sentence, best first."""
    sentences = split_sentences(document)
    topic = document_topic(sentences)
    checks = qa_checks.QACheckParams()
    ranked = []
    for position, sentence in enumerate(sentences):
        if not _usable_sentence(sentence, params):
            continue
        for start, answer, answer_type, lead, priority in sorted(
            find_spans(sentence), key=lambda s: (s[4], s[0])
        ):
            blanked = sentence[:start] + "____" + sentence[start + len(answer) :]
            if not _has_own_context(blanked, params):
                continue
            named = bool(_name_spans(blanked))
            # A topic only helps a statement that names nothing; elsewhere it misleads.
            anchor = topic if topic and not named and answer.lower() not in topic.lower() else None
            if answer_type == "date" and answer.endswith("s"):
                lead = "What decade"
            question = _question(lead, blanked, anchor)
            if qa_checks.answer_in_question(question, answer, checks):
                continue  # the same value occurs twice in the sentence
            score = priority - (0.5 if named else 0.0) + (0.5 if len(sentence.split()) > 35 else 0)
            ranked.append((score, position, question, answer, answer_type))
            break
    ranked.sort(key=lambda r: (r[0], r[1]))
    return [{"question": q, "answer": a, "answer_type": t} for _, _, q, a, t in ranked]


class NoCandidate(Exception):
    """The page offers no (further) sentence to ask about."""


def generate_qa(payload: dict, params: RuleEngineParams) -> dict:
    candidates = qa_candidates(payload["document"], params)
    k = int(payload.get("persona_idx") or 0)
    if k >= len(candidates):
        raise NoCandidate(f"no_candidate: {len(candidates)} usable sentences, persona {k}")
    return candidates[k]
