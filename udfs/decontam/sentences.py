"""Whole sentences: a short or generic benchmark item that makes up whole sentences of a QA text.

lm-evaluation-harness compares a benchmark text shorter than n words with the whole QA text, and
the near-match index leaves out items too short or too generic to tell from everyday phrasing
("Which of the following is a true statement?", "−4 + (−3) ="). A generator that copies such an
item wraps it in a lead-in and an instruction, so the whole-text comparison misses it. Here the
same comparison runs on every run of whole sentences of the QA text: the item must start where a
sentence starts and end where one ends (at ? . ! : ;, the end of the text, a capitalised word,
or after its own "="). A phrase inside a
sentence ("Which of the following is a true statement about the tunnel?") never matches, so
generic phrasing alone still removes nothing. Sentence punctuation at an item's edges is left out:
"Which of the following is true" without its "?" is still the item.

Tokens keep operators and brackets ("+", "(", "="): in arithmetic and logic items they are the
content ("not ( True ) and ( True ) is" and "( not True ) and ( True ) is" are two items), and
without them "−4 + (−3) =" would be the two words "4 3".
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

# A decimal or grouped number ("3.5", "1,000"), a word, or one symbol that carries content.
_TOKEN = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+|[.?!:;=+\-×÷*/^<>()\[\]%•·]")
_MINUS = str.maketrans({"−": "-", "–": "-"})
# Where a sentence of the QA text ends.
BOUNDARY = frozenset(".?!:;")
# An item ending in "=" closes itself: "8 + 8 ÷ 2 + 2 =" ends where the answer would start.
CLOSING = "="


def sentence_tokens(text: str) -> list[str]:
    """Lowercase words, numbers and content symbols; other punctuation and spacing dropped."""
    return [t.lower() for t in _TOKEN.findall(text.translate(_MINUS))]


def _capitalised(text: str) -> list[bool]:
    """For each of `sentence_tokens(text)`: does it start with a capital letter?"""
    return [t[0].isupper() for t in _TOKEN.findall(text.translate(_MINUS))]


def _key(tokens: Sequence[str]) -> int:
    digest = hashlib.blake2b(" ".join(tokens).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def content_length(tokens: Sequence[str]) -> int:
    """Tokens that are not sentence punctuation."""
    return sum(t not in BOUNDARY for t in tokens)


class SentenceIndex:
    """Hash of each item's tokens -> its label; only the lengths that occur are looked up."""

    def __init__(self, items: Iterable[tuple[tuple[str, str], list[str]]]):
        """`items`: (label, sentence_tokens) of the short and generic benchmark texts."""
        self.labels: dict[int, tuple[str, str]] = {}
        lengths = set()
        for label, toks in items:
            toks = _strip_edges(toks)
            if toks:
                self.labels.setdefault(_key(toks), label)
                lengths.add(len(toks))
        self.lengths = sorted(lengths)

    def __len__(self) -> int:
        return len(self.labels)

    def find(self, text: str) -> tuple[tuple[str, str], str] | None:
        """(label, matched words) of the first item that is whole sentences of `text`."""
        toks = sentence_tokens(text)
        starts = [0] + [i + 1 for i, t in enumerate(toks) if t in BOUNDARY]
        ends = {len(toks)} | {i for i, t in enumerate(toks) if t in BOUNDARY}
        ends |= {i + 1 for i, t in enumerate(toks) if t == CLOSING}
        # A capital after the item ends it too: "... ) ) is Explain your reasoning." (a BBH
        # input has no closing punctuation of its own).
        ends |= {i for i, cap in enumerate(_capitalised(text)) if cap}
        for s in starts:
            for length in self.lengths:
                e = s + length
                if e > len(toks):
                    break
                if e in ends:
                    label = self.labels.get(_key(toks[s:e]))
                    if label is not None:
                        return label, " ".join(toks[s:e])
        return None


def _strip_edges(tokens: list[str]) -> list[str]:
    """Without sentence punctuation at either end: a QA sentence starts after it and ends
    before it."""
    i, j = 0, len(tokens)
    while i < j and tokens[i] in BOUNDARY:
        i += 1
    while j > i and tokens[j - 1] in BOUNDARY:
        j -= 1
    return tokens[i:j]
