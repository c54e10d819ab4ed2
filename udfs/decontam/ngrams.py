"""Benchmark decontamination: drop QA pairs that overlap an eval benchmark.

Three checks, in this order; the first that fires names the benchmark item, the method and a
score (rejects.detail):

- `exact_ngram`: lm-evaluation-harness's Janitor. Text is lowercased, punctuation deleted, split
  on whitespace and compared as word 13-grams; a text shorter than n words is compared whole (its
  whole word sequence is its one "n-gram"). The index maps a stable 64-bit hash of each benchmark
  n-gram to its item, so it keeps no n-gram text: the matched n-gram is reported from the QA text.
- `containment`: the QA text holds a benchmark item's whole word sequence (number words read as
  digits), e.g. a short MMLU or BBH question inside a longer generated question.
- `near_match`: a window of the QA text holds most of an item's word weight: one or two words
  substituted, inserted or dropped, clauses reordered, digits for number words (udfs/near_match).

Items too short or too generic for near matches ("Which of the following is true?", "−4 + (−3) =")
are compared whole: with the whole QA text (exact_ngram) and with every run of whole sentences of
the question (`containment`, udfs/decontam/sentences.py), so a lead-in and an instruction around
a copied item do not hide it while generic phrasing inside a sentence never removes a row. The
indexes are built once on the driver and broadcast; candidate generation is an inverted index,
not a scan of the benchmarks.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Loading benchmark files lives in benchmark_files; these names stay importable from here.
from webscale_rl.udfs.decontam.benchmark_files import (  # noqa: F401
    DEFAULT_DATA_ROOT,
    BenchmarkSpec,
    benchmark_texts,
    default_benchmarks,
    load_benchmark_items,
    missing_files,
    resolve_files,
)
from webscale_rl.udfs.decontam.near_match import NearIndex, NearMatchParams, numbers_as_digits
from webscale_rl.udfs.decontam.sentences import SentenceIndex, content_length, sentence_tokens

# Everything that is neither a word character nor whitespace, plus "_" (which \w keeps). This is
# the Janitor's string.punctuation deletion made Unicode-aware, so "Janet’s" (curly quote, as
# in GSM8K) and "Janet's" normalize alike.
_PUNCT = re.compile(r"[^\w\s]|_")

Method = Literal["exact_ngram", "containment", "near_match"]


class Contamination(NamedTuple):
    benchmark: str
    item_id: str
    ngram: str


class Match(NamedTuple):
    """One removal: which item, how, how strongly, the matched words and the QA text checked."""

    benchmark: str
    item_id: str
    method: str  # exact_ngram | containment | near_match
    score: float  # 1.0 for exact_ngram and containment; the weight share for near_match
    matched: str  # the normalised words of the QA text that matched
    checked: str  # the QA columns of the checked text, e.g. "question+answer"


# hash -> (benchmark, item_id). One tuple per benchmark text, shared by all its n-grams, so the
# index pickles to a few bytes per entry.
NgramIndex = dict[int, tuple[str, str]]


def normalize(text: str) -> list[str]:
    """Lowercase, delete punctuation, split on whitespace (the Janitor's normalize_string)."""
    return _PUNCT.sub("", text.lower()).split()


def canonical_tokens(text: str) -> list[str]:
    """The words containment and near_match compare: lowercase, punctuation as a space (so a
    formula is several words: one changed symbol costs one word, not the whole formula), then
    number words as digits."""
    return numbers_as_digits(_PUNCT.sub(" ", text.lower()).split())


def ngrams(tokens: Sequence[str], n: int) -> list[str]:
    """Word n-grams joined by one space; a sequence shorter than n is one "n-gram" of itself."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if len(tokens) < n:
        return [" ".join(tokens)] if tokens else []
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def ngram_hash(ngram: str) -> int:
    """Stable signed 64-bit hash (same on every executor and run; fits a Spark LongType)."""
    digest = hashlib.blake2b(ngram.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


class DecontamParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = Field(13, ge=1, description="N-gram length in words (13, as GPT-3 and lm-eval).")
    benchmarks: list[BenchmarkSpec] = Field(
        default_factory=default_benchmarks,
        description="Eval sets to decontaminate against; default: all of shared/data/benchmarks.",
    )
    check_fields: list[list[str]] = Field(
        default_factory=lambda: [["question"], ["question", "answer"]],
        description="QA texts to check: each entry is a list of QA columns joined by one space. "
        "The question alone catches a short question compared whole; question + answer catches "
        "n-grams that run across the two.",
    )
    data_root: str = Field(
        DEFAULT_DATA_ROOT,
        description="Folder or URI (s3://, abfss://, dbfs:/, /Volumes/...) that relative "
        "benchmark paths resolve against; a relative folder is taken from the driver's working "
        "directory, else from beside the checkout. `deploy/fetch_benchmarks.py --out DIR` "
        "writes the default benchmarks there.",
    )
    on_missing: Literal["error", "skip"] = Field(
        "error",
        description="A benchmark whose files are missing: `error` stops the run before its first "
        "stage; `skip` leaves it out and says so in the stage notes and the `benchmarks_skipped` "
        "metric.",
    )
    near: NearMatchParams = Field(
        default_factory=NearMatchParams,
        description="Containment and near-match checks beyond the n-gram check.",
    )

    @model_validator(mode="after")
    def _check(self) -> DecontamParams:
        names = [b.name for b in self.benchmarks]
        dupes = sorted({x for x in names if names.count(x) > 1})
        if dupes:
            raise ValueError(f"benchmark names must be unique; repeated: {dupes}")
        if not self.check_fields or any(not cols for cols in self.check_fields):
            raise ValueError("check_fields needs at least one non-empty list of QA columns")
        return self


# ---------------------------------------------------------------- n-gram index (lm-eval)


def build_ngram_index(
    specs: Sequence[BenchmarkSpec], n: int = 13, data_root: str | os.PathLike = DEFAULT_DATA_ROOT
) -> NgramIndex:
    """hash of every benchmark n-gram -> (benchmark, item_id) of its first occurrence."""
    return _ngram_index(_all_items(specs, data_root), n)


def _all_items(specs, data_root, spark=None) -> list[tuple[str, str, str, bool]]:
    return [
        (spec.name, item_id, text, whole)
        for spec in specs
        for item_id, text, whole in benchmark_texts(spec, data_root, spark)
    ]


def _ngram_index(items: Sequence[tuple], n: int) -> NgramIndex:
    index: NgramIndex = {}
    for name, item_id, text, *_ in items:
        value = (name, item_id)
        for gram in ngrams(normalize(text), n):
            index.setdefault(ngram_hash(gram), value)
    return index


def find_contamination(text: str | None, index: Mapping[int, tuple[str, str]], n: int = 13):
    """The first n-gram of `text` found in the index as Contamination, else None."""
    if not text:
        return None
    for gram in ngrams(normalize(text), n):
        hit = index.get(ngram_hash(gram))
        if hit is not None:
            return Contamination(hit[0], hit[1], gram)
    return None


def qa_texts(qa: Mapping[str, Any], check_fields: Sequence[Sequence[str]]) -> list[str]:
    """The texts of one QA row to check: each entry's columns joined by one space."""
    return [text for _, text in _named_texts(qa, check_fields)]


def _named_texts(qa: Mapping[str, Any], check_fields) -> list[tuple[str, str]]:
    texts = []
    for cols in check_fields:
        # Only strings count: a missing value may arrive from pandas as None or NaN.
        present = [c for c in cols if isinstance(qa.get(c), str)]
        if present:
            texts.append(("+".join(present), " ".join(qa[c] for c in present)))
    return texts


def check_qa(
    qa: Mapping[str, Any],
    index: Mapping[int, tuple[str, str]],
    n: int = 13,
    check_fields: Sequence[Sequence[str]] = (("question",), ("question", "answer")),
) -> Contamination | None:
    """The n-gram check alone: the first match in any checked text of a QA row, else None."""
    for text in qa_texts(qa, check_fields):
        hit = find_contamination(text, index, n)
        if hit is not None:
            return hit
    return None


# ---------------------------------------------------------------- all three checks


class DecontamIndex:
    """The n-gram index and the near-match index, built once on the driver and broadcast."""

    def __init__(self, items: Sequence[tuple[str, str, str, bool]], params: DecontamParams):
        """`items`: (benchmark, item_id, text, whole) for every benchmark text; answer options
        (whole=False) are left to the n-gram check."""
        self.n = params.n
        self.check_fields = [list(c) for c in params.check_fields]
        self.ngrams = _ngram_index(items, params.n)
        self.near = self.sentences = None
        self.sentence_fields = list(params.near.sentence_fields)
        if params.near.enabled:
            whole = [((name, item_id), text) for name, item_id, text, w in items if w]
            texts = [(label, canonical_tokens(text)) for label, text in whole]
            self.near = NearIndex(texts, params.near)
            min_words = params.near.sentence_min_words
            self.sentences = _sentence_index(whole, texts, self.near, min_words)

    @classmethod
    def build(cls, specs, params: DecontamParams, data_root=DEFAULT_DATA_ROOT, spark=None):
        return cls(_all_items(specs, data_root, spark), params)

    def metrics(self) -> dict[str, int]:
        out = {"index_ngrams": len(self.ngrams)}
        if self.near is not None:
            out.update(near_items=len(self.near), near_items_generic=self.near.skipped)
            out.update(sentence_items=len(self.sentences))
        return out

    def find(self, qa: Mapping[str, Any]) -> Match | None:
        """The first match of a QA row (n-gram check over every text first), else None."""
        texts = _named_texts(qa, self.check_fields)
        for checked, text in texts:
            hit = find_contamination(text, self.ngrams, self.n)
            if hit is not None:
                return Match(hit.benchmark, hit.item_id, "exact_ngram", 1.0, hit.ngram, checked)
        if self.near is None:
            return None
        for checked, text in _outermost(texts):
            tokens = canonical_tokens(text)
            hit = self.near.best(tokens)
            if hit is not None:
                name, item_id = self.near.labels[hit.item]
                method = "containment" if hit.contained else "near_match"
                return Match(name, item_id, method, hit.score, hit.matched, checked)
        return self._find_sentences(qa)

    def _find_sentences(self, qa: Mapping[str, Any]) -> Match | None:
        """A short or generic item that is whole sentences of a sentence field (containment)."""
        for column in self.sentence_fields:
            text = qa.get(column)
            hit = self.sentences.find(text) if isinstance(text, str) else None
            if hit is not None:
                (name, item_id), matched = hit
                return Match(name, item_id, "containment", 1.0, matched, column)
        return None


def _sentence_index(whole, canonical, near: NearIndex, min_words: int) -> SentenceIndex:
    """The items the near index leaves out (short or generic), with at least `min_words` words
    and symbols: shorter ones ("6", "True", "Neural networks:") are compared with the whole QA
    text only."""
    chosen = []
    for (label, text), (_, canon) in zip(whole, canonical, strict=True):
        if canon and near.is_specific(canon):
            continue  # scored by the near index, which finds it contained anywhere
        toks = sentence_tokens(text)
        if content_length(toks) >= min_words:
            chosen.append((label, toks))
    return SentenceIndex(chosen)


def _outermost(texts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Texts not inside another checked text: any window of the question is also one of
    question + answer, so the longer text alone finds every near match."""
    return [
        (name, text)
        for i, (name, text) in enumerate(texts)
        if not any(
            text in other and (text != other or j < i)
            for j, (_, other) in enumerate(texts)
            if j != i
        )
    ]
