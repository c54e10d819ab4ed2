"""Near matches: a QA text that holds a benchmark item inside a longer text, or lightly edited.

Words are `decontam.canonical_tokens`: lowercase, punctuation as a space (a formula is several
words), number words as digits ("twenty-five" -> "25"), so "three apples" and "3 apples" are the
same words.

An item's score against a QA text is the share of the item's word weight found inside one window
of the text about as long as the item. Words are counted as a multiset, in any order: reordered
clauses keep their score, a substituted or dropped word loses its weight, inserted words cost
nothing while the window's slack absorbs them. A word's weight is its inverse document frequency
over the configured benchmark texts (numbers at least NUMBER_WEIGHT), so words most items share
("which of the following is") weigh little and the rare words of an item decide. Items too short or too generic to tell apart from everyday
phrasing (fewer than `min_words` words or less than `min_weight` total weight) are left to the
whole-text comparison of the n-gram check.

Candidates come from prefix filtering, so no text is compared with every item: each item indexes
only its rarest words, enough of them that the words left out weigh clearly less than the
threshold. A text looks up its words' posting lists (short: rare words) and sums the weight it
shares with each item found; only items whose shared prefix weight plus all their unindexed
weight could reach the threshold get the windowed score.
"""

from __future__ import annotations

import math
import re
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

_SMALL = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen".split()
    )
}
_TENS = {
    w: 10 * (i + 2)
    for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}
# "twentyfive": hyphenated number words written together.
_COMPOUND = re.compile(f"({'|'.join(_TENS)})({'|'.join(w for w in _SMALL if 0 < _SMALL[w] < 10)})")
# An item's indexed prefix ends where the words left weigh less than this share of the threshold.
# Measured (bench/decontam_quality.py): 0.8 is the fastest of 0.6-0.95; recall does not change.
PREFIX_REST = 0.8


class NearMatchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        True,
        description="Also remove QA texts that contain a benchmark item or a light edit of one "
        "(containment and near_match); off: the n-gram check alone, as lm-evaluation-harness.",
    )
    threshold: float = Field(
        0.8,
        gt=0.0,
        le=1.0,
        description="Share of an item's word weight a window of the QA text must hold to be a "
        "near match. Measured (bench/README.md): 0.8 removed none of 3,244 clean QA pairs and "
        "97% of edited benchmark items; 0.75 catches more edits of short items (88% vs 78%) "
        "and removes 0.1% of clean pairs.",
    )
    min_words: int = Field(
        4, ge=1, description="Items with fewer words are only compared whole (n-gram check)."
    )
    min_weight: float = Field(
        14.0,
        ge=0.0,
        description="Items whose words weigh less in total (IDF over the benchmark texts, natural "
        'log) are generic phrasing ("Which of the following is a true statement?" weighs 13) '
        "and are only compared whole; the words a near match holds must weigh this much too.",
    )
    sentence_fields: list[str] = Field(
        default_factory=lambda: ["question"],
        description="QA columns whose sentences are compared whole with the short and generic "
        "items (a lead-in and an instruction around a copied MMLU question). The answer is "
        'left out: a short benchmark answer ("(a+5)(b+2)") is not a test item.',
    )
    sentence_min_words: int = Field(
        4,
        ge=1,
        description="Short and generic items with fewer words and symbols are compared with the "
        "whole QA text only, not with its sentences. Measured (bench/README.md): at 4 no "
        'paragraph of 13 MB of real text matches; at 3 short MATH answers ("1-2") do.',
    )
    window_slack: float = Field(
        0.25,
        ge=0.0,
        description="The window is the item's length plus this share of it (at least 2 words), "
        "room for inserted words.",
    )


def _number_value(token: str) -> tuple[int, str] | None:
    if token in _SMALL:
        return _SMALL[token], "unit"
    if token in _TENS:
        return _TENS[token], "tens"
    if token in _SCALES:
        return _SCALES[token], "scale"
    m = _COMPOUND.fullmatch(token)
    if m:
        return _TENS[m[1]] + _SMALL[m[2]], "unit"
    return None


def numbers_as_digits(tokens: Iterable[str]) -> list[str]:
    """Runs of number words become one number in digits: "two hundred five" -> "205".

    A unit after a unit starts a new number ("one two" -> "1 2"); a unit after tens or a scale
    adds to it ("twenty five" -> "25", "hundred five" -> "105").
    """
    out: list[str] = []
    total = current = 0
    prev = None  # kind of the last number word of the run, None outside a run

    def flush():
        nonlocal total, current, prev
        if prev is not None:
            out.append(str(total + current))
        total = current = 0
        prev = None

    for tok in tokens:
        word = _number_value(tok)
        if word is None:
            flush()
            out.append(tok)
            continue
        value, kind = word
        if kind == "scale":
            if value == 100:
                current = (current or 1) * 100
            else:
                total, current = total + (current or 1) * value, 0
        else:
            if prev is not None and not (
                prev == "scale" or (prev == "tens" and kind == "unit" and value < 10)
            ):
                flush()
            current += value
        prev = kind
    flush()
    return out


# A number weighs at least this much: digits are common words, but a run of them (an arithmetic
# expression) is as specific as a rare word, and a changed number is a different problem.
NUMBER_WEIGHT = 3.0


def _weight(word: str, n: int, df: int) -> float:
    idf = max(math.log(n / df), 0.0)
    return max(idf, NUMBER_WEIGHT) if word.isdigit() else idf


class NearHit(NamedTuple):
    item: int  # index into NearIndex.labels
    score: float
    contained: bool  # the item's whole word sequence occurs in the text
    matched: str  # the item's words when contained, else the text's window that matched


class NearIndex:
    """Weighted items and a posting list per prefix word; compact arrays, cheap to broadcast."""

    def __init__(self, texts: Sequence[tuple[tuple[str, str], list[str]]], p: NearMatchParams):
        """`texts`: ((benchmark, item_id), canonical tokens) for every benchmark text."""
        self.params = p
        seen: set[tuple[str, ...]] = set()
        unique = []
        for label, toks in texts:
            key = tuple(toks)
            if toks and key not in seen:  # the same words under two ids: keep the first
                seen.add(key)
                unique.append((label, toks))
        df: Counter[str] = Counter()
        for _, toks in unique:
            df.update(set(toks))
        n = max(len(unique), 1)
        self.words = list(df)
        self.vocab = {w: i for i, w in enumerate(self.words)}
        self.weights = array("d", (_weight(w, n, df[w]) for w in self.words))
        self.labels: list[tuple[str, str]] = []
        self.tokens = array("i")  # every indexed item's word ids, one after the other
        self.offsets = array("l", [0])
        self.total = array("d")  # an item's whole weight
        self.rest = array("d")  # the weight of its words outside the indexed prefix
        postings: dict[int, list[int]] = defaultdict(list)
        shares: dict[int, list[float]] = defaultdict(list)
        self.skipped = 0
        for label, toks in unique:
            ids = [self.vocab[t] for t in toks]
            bag = Counter(ids)
            total = sum(self.weights[t] * c for t, c in bag.items())
            if not self._specific(len(ids), total):
                self.skipped += 1
                continue
            item = len(self.labels)
            # Rarest words first (short posting lists), until what is left weighs less than
            # PREFIX_REST of the threshold: a text sharing too little of this prefix cannot reach it.
            ranked = sorted(bag.items(), key=lambda tc: (df[self.words[tc[0]]], tc[0]))
            rest = total
            for t, c in ranked:
                if rest < PREFIX_REST * p.threshold * total:
                    break
                postings[t].append(item)
                shares[t].append(self.weights[t] * c)
                rest -= self.weights[t] * c
            self.labels.append(label)
            self.total.append(total)
            self.rest.append(rest)
            self.tokens.extend(ids)
            self.offsets.append(len(self.tokens))
        self.postings = {t: np.array(items, np.int32) for t, items in postings.items()}
        self.shares = {t: np.array(w, np.float64) for t, w in shares.items()}
        self._np_total, self._np_rest = np.array(self.total), np.array(self.rest)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_acc", None)  # per-process scratch space, not broadcast
        return state

    def __len__(self) -> int:
        return len(self.labels)

    def _specific(self, n_words: int, total: float) -> bool:
        return n_words >= self.params.min_words and total >= self.params.min_weight

    def is_specific(self, tokens: Sequence[str]) -> bool:
        """Whether this index scores these canonical tokens of a benchmark text; False for the
        short and generic ones it leaves to whole comparisons."""
        total = sum(self.weights[self.vocab[t]] for t in tokens if t in self.vocab)
        return self._specific(len(tokens), total)

    def item_ids(self, item: int) -> array:
        return self.tokens[self.offsets[item] : self.offsets[item + 1]]

    def best(self, tokens: Sequence[str]) -> NearHit | None:
        """The best-scoring item at or above the threshold for these canonical tokens."""
        ids = [self.vocab.get(t, -1) for t in tokens]
        present = [t for t in set(ids) if t in self.postings]
        if not present:
            return None
        items = np.concatenate([self.postings[t] for t in present])
        shares = np.concatenate([self.shares[t] for t in present])
        # Sum the prefix weight the text shares with each item found, in a scratch array that
        # is zeroed again where it was touched (numpy: ~10x a Python loop over the postings).
        acc = self.__dict__.get("_acc")
        if acc is None:
            acc = self._acc = np.zeros(len(self.labels))
        np.add.at(acc, items, shares)
        # Upper bound of each item's score: its prefix weight the text holds (once per word, an
        # overestimate for repeated words) plus all of its unindexed weight.
        bound = (acc[items] + self._np_rest[items]) / self._np_total[items]
        acc[items] = 0.0
        threshold = self.params.threshold - 1e-9
        keep = bound >= threshold
        pairs = zip(bound[keep].tolist(), items[keep].tolist(), strict=True)
        candidates = sorted(set(pairs), reverse=True)
        best = None
        for upper, item in candidates:
            if best is not None and upper <= best[1]:
                break
            score, start, end = self._window_score(ids, item)
            # The words matched must be specific on their own, not only a share of the item.
            specific = score * self.total[item] >= self.params.min_weight
            if score >= threshold and specific and (best is None or score > best[1]):
                best = (item, score, start, end)
        if best is None:
            return None
        item, score, start, end = best
        contained = self._contains(tokens, item)
        matched = self._text(item) if contained else " ".join(tokens[start:end])
        return NearHit(item, round(min(score, 1.0), 4), contained, matched)

    def _text(self, item: int) -> str:
        return " ".join(self.words[t] for t in self.item_ids(item))

    def _contains(self, tokens: Sequence[str], item: int) -> bool:
        return f" {self._text(item)} " in f" {' '.join(tokens)} "

    def _window_score(self, ids: list[int], item: int) -> tuple[float, int, int]:
        """Best share of the item's weight in a window of `ids`; with the window's bounds."""
        item_ids = self.item_ids(item)
        need = Counter(item_ids)
        w = self.weights
        width = len(item_ids) + max(2, int(len(item_ids) * self.params.window_slack))
        have: Counter[int] = Counter()
        matched = best = 0.0
        best_end = min(width, len(ids))
        for j, t in enumerate(ids):
            if t in need:
                have[t] += 1
                if have[t] <= need[t]:
                    matched += w[t]
            if j >= width:
                old = ids[j - width]
                if old in need:
                    if have[old] <= need[old]:
                        matched -= w[old]
                    have[old] -= 1
            if matched > best + 1e-12:
                best, best_end = matched, j + 1
        return best / self.total[item], max(0, best_end - width), best_end
