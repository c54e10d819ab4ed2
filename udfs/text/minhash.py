"""MinHash-LSH near-duplicate detection as pure, vectorised numpy functions.

The Spark job (`webscale_rl.jobs.dedup`) calls these inside pandas UDFs; `reference_clusters` is
the same candidate + verify + connected-components logic in plain Python, used by the quality
benchmark and by the job's test to check that Spark finds the same clusters.

Hashing is stable across machines, processes and numpy versions: words are hashed with xxh3_64,
and everything after that is fixed-width unsigned integer arithmetic (wrapping mod 2**64), with
parameters derived from the seed by splitmix64 (numpy's random streams are not promised stable).

Defaults follow datatrove: 5-word shingles, 14 bands x 8 rows = 112 permutations. The LSH
threshold (1/14)**(1/8) ~= 0.72 sits just below the 0.8 Jaccard we call a duplicate, so a pair at
0.8 becomes a candidate with probability 1 - (1 - 0.8**8)**14 ~= 0.92 and one at 0.9 with ~0.9999;
exact-Jaccard verification then removes the candidates below `verify_threshold`.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np
import xxhash
from pydantic import BaseModel, ConfigDict, Field, model_validator

_MASK64 = (1 << 64) - 1
# Signature value of a document with no words: it gets no band hashes, so it is never a candidate
# (empty texts are caught as exact duplicates instead).
EMPTY = np.uint32(0xFFFFFFFF)
# Cap on shingles x permutations held at once by `signatures` (~7 MB of uint64 per block).
_BLOCK_SHINGLES = 8192


class MinHashParams(BaseModel):
    """Parameters of near-duplicate removal."""

    model_config = ConfigDict(extra="forbid")

    num_perm: int = Field(112, ge=1, description="MinHash permutations; must equal bands * rows.")
    bands: int = Field(
        14, ge=1, description="LSH bands: a pair is a candidate if any band matches."
    )
    rows: int = Field(
        8, ge=1, description="Signature rows per band; threshold ~ (1/bands)**(1/rows)."
    )
    ngram: int = Field(5, ge=1, description="Words per shingle.")
    seed: int = Field(
        1, ge=0, description="Seed of the permutations; must not change between runs."
    )
    verify: bool = Field(True, description="Check candidate pairs with the exact shingle Jaccard.")
    verify_threshold: float = Field(
        0.8, gt=0.0, le=1.0, description="Minimum exact Jaccard for a verified duplicate pair."
    )
    keep: Literal["longest", "best_quality", "smallest_id"] = Field(
        "longest", description="Which member of a cluster survives; ties go to the smallest id."
    )
    quality_column: str = Field(
        "quality_score",
        description="Numeric column ranked (higher is better) by keep=best_quality.",
    )
    text_column: str = Field("text", description="Column whose text is deduplicated.")
    keep_digits: bool = Field(
        False,
        description="Numbers are content (questions): normalisation keeps digits, decimal points "
        "and signs instead of mapping every digit to 0, and a verified pair whose numbers, "
        "units or month names differ is never a duplicate. Off for documents, where boilerplate "
        "differing only in dates and counts should still match.",
    )

    @model_validator(mode="after")
    def _bands_fill_signature(self) -> MinHashParams:
        if self.bands * self.rows != self.num_perm:
            raise ValueError(
                f"num_perm ({self.num_perm}) must equal bands * rows "
                f"({self.bands} * {self.rows} = {self.bands * self.rows})"
            )
        return self

    @property
    def lsh_threshold(self) -> float:
        """Jaccard at which a pair becomes a candidate with probability ~1/2."""
        return (1.0 / self.bands) ** (1.0 / self.rows)


# ---------------------------------------------------------------------------------------------
# Normalisation and shingles


@functools.cache
def _char_classes() -> tuple[frozenset[str], frozenset[str]]:
    # Built once per process (~0.2 s): every punctuation and symbol character plus invisible
    # control and format characters (zero-width spaces etc.) to delete, and every decimal digit.
    # Whitespace is kept: it separates words.
    drop, digits = [], []
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        cat = unicodedata.category(ch)
        if cat[0] in "PS" or (cat in ("Cc", "Cf") and not ch.isspace()):
            drop.append(ch)
        elif cat == "Nd":
            digits.append(ch)
    return frozenset(drop), frozenset(digits)


def normalize_for_dedup(text: str | None, keep_digits: bool = False) -> str:
    """NFKC, case-folded, punctuation and symbols removed, every digit -> 0 (unless
    `keep_digits`), whitespace collapsed.

    Punctuation is deleted rather than replaced by a space (as datatrove does), so "e-mail" and
    "email" agree. With `keep_digits` a number keeps its sign and decimal point ("-3.5" and "35"
    differ) while a thousands separator goes ("1,000" and "1000" agree).
    """
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text).casefold()
    if keep_digits:
        text = _NEGATIVE.sub("minus", _DECIMAL_POINT.sub("point", _THOUSANDS.sub("", text)))
    drop, digits = _char_classes()
    # A page uses few distinct characters: one C-speed str.replace per distinct offending
    # character is ~40x faster than a regex character class or str.translate over every char.
    present = set(text)
    for ch in present & drop:
        text = text.replace(ch, "")
    if not keep_digits:
        for ch in present & digits:
            text = text.replace(ch, "0")
    return " ".join(text.split())


_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_DECIMAL_POINT = re.compile(r"(?<=\d)\.(?=\d)")
_NEGATIVE = re.compile(r"(?<![\w.])[-\u2212](?=\d)")

# Words that change what a question asks as much as its numbers do: units and months (not
# "may", mostly a verb). Two questions that differ in one of them ask for different answers
# however alike the rest is.
UNIT_WORDS = frozenset(
    """mm cm m km metre metres meter meters kilometre kilometres kilometer kilometers mile miles
    inch inches foot feet yard yards g mg kg gram grams kilogram kilograms pound pounds lb lbs
    ounce ounces oz ton tons tonne tonnes ms sec second seconds minute minutes hour hours day
    days week weeks month months year years decade decades century centuries ml litre litres
    liter liters gallon gallons celsius fahrenheit kelvin degree degrees percent watt watts kw
    volt volts hz mph acre acres hectare hectares dollar dollars euro euros cent cents calorie
    calories joule joules newton newtons pascal pascals bc ad bce ce january february march
    april june july august september october november december""".split()
)


def content_tokens(text: str | None) -> tuple[str, ...]:
    """The numbers, units and month names of a text (normalised with digits kept), sorted."""
    words = normalize_for_dedup(text, keep_digits=True).split()
    return tuple(sorted(w for w in words if w in UNIT_WORDS or any(c.isdigit() for c in w)))


def text_hash(text: str | None, keep_digits: bool = False) -> int:
    """Signed 64-bit hash of the normalised text: equal values mark exact duplicates."""
    return _signed(xxhash.xxh3_64_intdigest(normalize_for_dedup(text, keep_digits).encode()))


def _signed(value: int) -> int:
    # Spark's LongType is signed.
    return value - (1 << 64) if value >= 1 << 63 else value


def _fmix64(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (in place): spreads every input bit over the output."""
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


def _splitmix_stream(seed: int, n: int) -> np.ndarray:
    """n pseudo-random uint64 values from the seed, identical on every platform."""
    out, state = [], seed & _MASK64
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) & _MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        out.append(z ^ (z >> 31))
    return np.array(out, dtype=np.uint64)


# Odd multipliers weighting a word by its position inside the shingle (so word order matters).
_POSITION_MULT = _splitmix_stream(0x5348494E474C45, 64) | np.uint64(1)


def shingles(text: str | None, ngram: int = 5, keep_digits: bool = False) -> np.ndarray:
    """uint64 hashes of the word n-grams of the normalised text (with repeats, in text order).

    A text with fewer than `ngram` words (but at least one) is a single shingle, so short texts
    such as questions still dedup; an empty text has none.
    """
    words = normalize_for_dedup(text, keep_digits).split()
    if not words:
        return np.empty(0, dtype=np.uint64)
    word_hashes = np.fromiter(
        (xxhash.xxh3_64_intdigest(w.encode()) for w in words), dtype=np.uint64, count=len(words)
    )
    n = min(ngram, len(words))
    count = len(words) - n + 1
    acc = np.zeros(count, dtype=np.uint64)
    for j in range(n):
        acc += word_hashes[j : j + count] * _POSITION_MULT[j % len(_POSITION_MULT)]
    return _fmix64(acc)


def shingle_set(text: str | None, ngram: int = 5, keep_digits: bool = False) -> np.ndarray:
    """Sorted unique shingle hashes: the set whose Jaccard defines a duplicate."""
    return np.unique(shingles(text, ngram, keep_digits))


def jaccard(a_shingles: np.ndarray, b_shingles: np.ndarray) -> float:
    """Exact Jaccard of two `shingle_set` results (sorted unique arrays); 0.0 if both are empty."""
    union = len(a_shingles) + len(b_shingles)
    if union == 0:
        return 0.0
    inter = len(np.intersect1d(a_shingles, b_shingles, assume_unique=True))
    return inter / (union - inter)


def pair_similarity(a: str | None, b: str | None, params: MinHashParams) -> float:
    """What verification compares with `verify_threshold`: the exact shingle Jaccard, or 0.0
    when numbers are content (`keep_digits`) and the two texts' numbers or units differ."""
    if params.keep_digits and content_tokens(a) != content_tokens(b):
        return 0.0
    sets = (shingle_set(t, params.ngram, params.keep_digits) for t in (a, b))
    return jaccard(*sets)


# ---------------------------------------------------------------------------------------------
# Signatures and bands


@functools.cache
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # Multiply-add-shift hashing h(x) = ((a*x + b) mod 2**64) >> 32 on 32-bit keys x with odd a:
    # a 2-universal family computed with numpy's native wrapping uint64 arithmetic.
    stream = _splitmix_stream(seed, 2 * num_perm)
    return stream[:num_perm] | np.uint64(1), stream[num_perm:]


def signatures(texts: Sequence[str | None], params: MinHashParams | None = None) -> np.ndarray:
    """MinHash signatures, shape (len(texts), num_perm), dtype uint32; empty text -> all EMPTY."""
    params = params or MinHashParams()
    a, b = _permutations(params.num_perm, params.seed)
    sig = np.full((len(texts), params.num_perm), EMPTY, dtype=np.uint32)
    # Many short documents are hashed in one numpy call; keys are the top 32 bits of a shingle.
    keys = [shingles(t, params.ngram, params.keep_digits) >> np.uint64(32) for t in texts]
    group: list[int] = []
    size = 0
    for i, k in enumerate(keys):
        if len(k) == 0:
            continue
        if size + len(k) > _BLOCK_SHINGLES and group:
            _minhash_group(keys, group, a, b, sig)
            group, size = [], 0
        group.append(i)
        size += len(k)
    if group:
        _minhash_group(keys, group, a, b, sig)
    return sig


def _hash_block(k: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    h = np.multiply.outer(k, a)
    h += b
    h >>= np.uint64(32)
    return h


def _minhash_group(keys, group, a, b, sig) -> None:
    if len(group) == 1 and len(keys[group[0]]) > _BLOCK_SHINGLES:
        # One long document: running minimum over slices keeps memory bounded.
        k = keys[group[0]]
        best = np.full(len(a), np.iinfo(np.uint64).max, dtype=np.uint64)
        for start in range(0, len(k), _BLOCK_SHINGLES):
            np.minimum(best, _hash_block(k[start : start + _BLOCK_SHINGLES], a, b).min(0), out=best)
        sig[group[0]] = best
        return
    lengths = np.array([len(keys[i]) for i in group])
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    block = _hash_block(np.concatenate([keys[i] for i in group]), a, b)
    sig[group] = np.minimum.reduceat(block, starts, axis=0)


def band_hashes_batch(sigs: np.ndarray, params: MinHashParams | None = None) -> np.ndarray:
    """One signed 64-bit hash per (document, band), shape (docs, bands); the band index is mixed
    in, so equal rows in different bands do not collide. Rows of empty documents are meaningless:
    filter them with `is_empty_signature`."""
    params = params or MinHashParams()
    sigs = np.asarray(sigs, dtype=np.uint32)
    if sigs.ndim != 2 or sigs.shape[1] != params.num_perm:
        raise ValueError(f"signatures must have shape (n, {params.num_perm}), got {sigs.shape}")
    rows = sigs.reshape(len(sigs), params.bands, params.rows).astype(np.uint64)
    h = np.broadcast_to(_splitmix_stream(params.seed ^ 0xBA4D, params.bands), rows.shape[:2]).copy()
    for r in range(params.rows):
        h ^= rows[:, :, r]
        h = _fmix64(h)
    return h.view(np.int64)


def band_hashes(signature: np.ndarray, params: MinHashParams | None = None) -> list[int]:
    """The band hashes of one signature; [] for an empty document (never a candidate)."""
    if is_empty_signature(signature):
        return []
    return band_hashes_batch(np.asarray(signature)[None, :], params)[0].tolist()


def is_empty_signature(signature: np.ndarray) -> bool:
    return bool(np.all(np.asarray(signature) == EMPTY))


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Fraction of equal signature positions: an unbiased estimate of the Jaccard."""
    return float(np.mean(np.asarray(sig_a) == np.asarray(sig_b)))


# ---------------------------------------------------------------------------------------------
# Reference clustering (what the Spark job computes, in one process)


def candidate_edges(ids: Sequence[Hashable], bands: np.ndarray, empty: np.ndarray) -> set[tuple]:
    """Edges (member, bucket's smallest id) for every bucket of equal (band, hash).

    Linking each member to the bucket minimum instead of to every other member keeps the number
    of pairs linear in the bucket size; connected components then recover the whole group.
    """
    buckets: dict[tuple[int, int], list] = {}
    for doc, row, is_empty in zip(ids, bands.tolist(), empty, strict=True):
        if is_empty:
            continue
        for band, value in enumerate(row):
            buckets.setdefault((band, value), []).append(doc)
    edges = set()
    for members in buckets.values():
        if len(members) > 1:
            root = min(members)
            edges.update((m, root) for m in members if m != root)
    return edges


def connected_components(ids: Sequence[Hashable], edges: set[tuple]) -> dict:
    """Map each id to the smallest id of its component (union-find)."""
    parent = {i: i for i in ids}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for x, y in edges:
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    return {i: find(i) for i in ids}


def reference_clusters(
    ids: Sequence[Hashable], texts: Sequence[str | None], params: MinHashParams | None = None
) -> dict:
    """id -> cluster id (smallest id in the cluster) by LSH candidates, optional exact-Jaccard
    verification of each candidate edge, and connected components."""
    params = params or MinHashParams()
    if len(ids) != len(texts):
        raise ValueError(f"{len(ids)} ids but {len(texts)} texts")
    if len(set(ids)) != len(ids):
        raise ValueError("ids must be unique")
    sigs = signatures(texts, params)
    empty = np.all(sigs == EMPTY, axis=1)
    edges = candidate_edges(ids, band_hashes_batch(sigs, params), empty)
    if params.verify:
        text_of = dict(zip(ids, texts, strict=True))
        edges = {
            (x, y)
            for x, y in edges
            if pair_similarity(text_of[x], text_of[y], params) >= params.verify_threshold
        }
    return connected_components(ids, edges)
