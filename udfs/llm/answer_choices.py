"""Answer choices for a small generator: the spans of a page a short answer could be.

A strong model finds a checkable fact on a page by itself. A small one (SmolLM2-135M) mostly
invents its answer, or copies one from the few-shot examples: on the sample pages 23 of 34 of
its answers were not in the page at all. With `tasks.answer_choices=N` the generate prompt lists
up to N spans of the page (numbers, dates, names: the rule engine's span finder, on sentences
that are neither boilerplate nor instructions) and the JSON schema makes the answer one of them,
so the model only has to pick a fact and ask about it. Its answer type is then the span's own.
"""

from __future__ import annotations

from webscale_rl.udfs.llm import qa_checks
from webscale_rl.udfs.llm.engine_rules import RuleEngineParams
from webscale_rl.udfs.llm.rule_questions import _usable_sentence, find_spans
from webscale_rl.udfs.llm.rule_text import split_sentences


def answer_choices(document: str, limit: int) -> list[tuple[str, str]]:
    """Up to `limit` distinct (span, answer_type) of the page, in page order, spread over it."""
    params = RuleEngineParams()
    checks = qa_checks.QACheckParams()
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for sentence in split_sentences(document or ""):
        if not _usable_sentence(sentence, params):
            continue
        # At most two spans a sentence, so the choices cover the page, not its first paragraph.
        for _, text, answer_type, _, _ in sorted(find_spans(sentence), key=lambda s: s[4])[:2]:
            key = qa_checks.normalize(text)
            too_long = len(text) > checks.answer_max_chars
            if key and key not in seen and not too_long:
                seen.add(key)
                found.append((text, answer_type))
    if len(found) <= limit:
        return found
    step = len(found) / limit
    return [found[int(i * step)] for i in range(limit)]


def choice_type(answer: str, choices: list[tuple[str, str]]) -> str | None:
    """The answer type of the choice `answer` is, or None when it is none of them."""
    for text, answer_type in choices:
        if text == answer:
            return answer_type
    return None
