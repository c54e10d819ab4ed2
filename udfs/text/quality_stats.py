"""Per-document statistics of the quality filters, one function per family, computed from one
shared set of splits of the text (tokens, words) so each split is made once per document.

Tokens come from one regex rather than spaCy (datatrove's tokenizer): statistics are computed at
C speed, close to datatrove's values; where they differ, a comment says why.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from itertools import accumulate

from webscale_rl.udfs.text.quality_params import QualityParams

# One token = a run of word characters (keeping "3.14", "1,000", "10:30", "9/11", "U.S" and
# "don't" whole, close to spaCy's English tokenizer that datatrove uses), an ellipsis, or one
# other visible symbol.
# Zero-width and BOM characters are neither, so they produce no token at all.
_INVISIBLE = "\u00ad\u200b-\u200f\u2060\ufeff"
_WORD_PATTERN = r"\w+(?:[.,:/'\u2019]\w+)*"
_TOKEN_RE = re.compile(rf"{_WORD_PATTERN}|\.\.\.|…|[^\w\s{_INVISIBLE}]")
_WORD_RE = re.compile(_WORD_PATTERN)
_HAS_ALPHA = re.compile(r"[^\W\d_]").search

# Gopher's stop words (Rae et al. 2021, A.1.1). Matched case-sensitively, as datatrove does.
STOP_WORDS = frozenset(["the", "be", "to", "of", "and", "that", "have", "with"])
BULLETS = ("•", "-")  # datatrove's bullet markers
ELLIPSES = ("...", "…")

_PARAGRAPH_SPLIT = re.compile(r"\n{2,}")
_LINE_SPLIT = re.compile(r"\n+")

# C4 (tensorflow_datasets c4_utils, via datatrove): a kept line must end like a sentence.
C4_END_PUNCTUATION = (".", "?", "!", '"', "'")
C4_POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
# Sentence boundaries inside a kept line: terminal punctuation (maybe closed by a quote or
# bracket) followed by whitespace. An approximation of spaCy's sentencizer that datatrove runs.
_SENTENCE_BREAK = re.compile(
    r"[.!?。！？]+[\"'”’)\]]*\s+(?=\S)"  # "end. Next"
    r"|(?<=[a-z]{2})[.!?]+(?=[A-Z])"  # "end.Next", common in extracted text
)

# Unicode sentence-terminal punctuation, the set datatrove's FineWeb filter uses
# (datatrove.utils.text.TERMINAL_PUNCTUATION, Apache-2.0).
TERMINAL_PUNCTUATION = frozenset(
    "!.?\u0589\u061d\u061e\u061f\u06d4\u0700\u0701\u0702\u07f9\u0837\u0839\u083d\u083e\u0964"
    "\u0965\u104a\u104b\u1362\u1367\u1368\u166e\u1735\u1736\u17d4\u17d5\u17d6\u17d9\u17da\u1803"
    "\u1809\u1944\u1945\u1aa8\u1aa9\u1aaa\u1aab\u1b5a\u1b5b\u1b5e\u1b5f\u1b7d\u1b7e\u1c3b\u1c3c"
    "\u1c7e\u1c7f\u203c\u203d\u2047\u2048\u2049\u2e2e\u2e3c\u2e53\u2e54\u3002\ua4ff\ua60e\ua60f"
    "\ua6f3\ua6f7\ua876\ua877\ua8ce\ua8cf\ua92f\ua9c8\ua9c9\uaa5d\uaa5e\uaa5f\uaaf0\uaaf1\uabeb"
    "\ufe52\ufe56\ufe57\uff01\uff0e\uff1f\uff61\U00010a56\U00010a57\U00010f55\U00010f56"
    "\U00010f57\U00010f58\U00010f59\U00010f86\U00010f87\U00010f88\U00010f89\U00011047\U00011048"
    "\U000110be\U000110bf\U000110c0\U000110c1\U00011141\U00011142\U00011143\U000111c5\U000111c6"
    "\U000111cd\U000111de\U000111df\U00011238\U00011239\U0001123b\U0001123c\U000112a9\U0001144b"
    "\U0001144c\U000115c2\U000115c3\U000115c9\U000115ca\U000115cb\U000115cc\U000115cd\U000115ce"
    "\U000115cf\U000115d0\U000115d1\U000115d2\U000115d3\U000115d4\U000115d5\U000115d6\U000115d7"
    "\U00011641\U00011642\U0001173c\U0001173d\U0001173e\U00011944\U00011946\U00011a42\U00011a43"
    "\U00011a9b\U00011a9c\U00011c41\U00011c42\U00011ef7\U00011ef8\U00011f43\U00011f44\U00016a6e"
    "\U00016a6f\U00016af5\U00016b37\U00016b38\U00016b44\U00016e98\U0001bc9f\U0001da88"
)


@dataclass
class TextViews:
    """Splits of one document, each computed at most once and shared by all families."""

    text: str

    @cached_property
    def tokens(self) -> list[str]:
        """Words and symbol tokens."""
        return _TOKEN_RE.findall(self.text)

    @cached_property
    def words(self) -> list[str]:
        """Tokens with a word character."""
        return _WORD_RE.findall(self.text)


# ---------------------------------------------------------------- statistics per family


def gopher_quality_stats(v: TextViews) -> dict[str, float]:
    text, words = v.text, v.words
    n_tokens = max(len(v.tokens), 1)
    lines = text.splitlines() or [""]
    return {
        "word_count": float(len(words)),
        "mean_word_length": sum(map(len, words)) / len(words) if words else 0.0,
        "hash_word_ratio": text.count("#") / n_tokens,
        "ellipsis_word_ratio": (text.count("...") + text.count("…")) / n_tokens,
        "bullet_lines_ratio": sum(line.lstrip().startswith(BULLETS) for line in lines) / len(lines),
        "ellipsis_lines_ratio": sum(line.rstrip().endswith(ELLIPSES) for line in lines)
        / len(lines),
        # Denominator counts punctuation tokens too, as datatrove does with spaCy tokens.
        "alpha_words_ratio": sum(1 for w in words if _HAS_ALPHA(w)) / n_tokens,
        "stop_word_count": float(len(STOP_WORDS.intersection(words))),
    }


def _duplicates(items: list[str]) -> tuple[int, int]:
    """(number of items repeating an earlier one, characters in those repeats)."""
    counts = Counter(items)
    dup_items = len(items) - len(counts)
    dup_chars = sum(len(item) * (c - 1) for item, c in counts.items() if c > 1)
    return dup_items, dup_chars


def _ngram_stats(tokens: list[str], text_len: int, top_ns, dup_ns) -> dict[str, float]:
    """Gopher n-gram character fractions, exact to datatrove's definitions.

    Only n-grams occurring at least twice matter for both statistics, and an m-gram can only
    repeat where the n-grams (n < m) at its start and end positions repeat. So the smallest n is
    counted over all positions and each larger n only over the surviving candidate positions.
    """
    denom = max(text_len, 1)
    prefix = list(accumulate(map(len, tokens), initial=0))  # characters before token i
    stats: dict[str, float] = {}
    candidates: list[int] | None = None  # None: every position
    rep_set: set[int] = set()
    prev_n = 0
    for n in sorted(set(top_ns) | set(dup_ns)):
        if candidates is None:
            grams = list(zip(*(tokens[k:] for k in range(n)), strict=False))
            positions: range | list[int] = range(len(grams))
        else:
            positions = [
                i for i in candidates if i + n - prev_n in rep_set and i + n <= len(tokens)
            ]
            grams = [tuple(tokens[i : i + n]) for i in positions]
        counts = Counter(grams)
        repeated = [(i, g) for i, g in zip(positions, grams, strict=True) if counts[g] > 1]
        if n in top_ns:
            stats[f"top_{n}_gram_char_frac"] = _top_ngram_chars(repeated, counts, n, prefix) / denom
        if n in dup_ns:
            stats[f"dup_{n}_gram_char_frac"] = _dup_ngram_chars(repeated, n, prefix) / denom
        candidates = [i for i, _ in repeated]
        rep_set = set(candidates)
        prev_n = n
    return stats


def _top_ngram_chars(repeated, counts: Counter, n: int, prefix: list[int]) -> int:
    """Characters of the most frequent n-gram (space-joined) times its count.

    Ties go to the first occurrence, like datatrove's Counter.most_common(1); when nothing
    repeats, that is the document's first n-gram.
    """
    n_tokens = len(prefix) - 1
    if n_tokens < n:
        return 0
    if not repeated:
        return prefix[n] + n - 1
    top = max(counts.values())
    first = next(i for i, g in repeated if counts[g] == top)
    return (prefix[first + n] - prefix[first] + n - 1) * top


def _dup_ngram_chars(repeated, n: int, prefix: list[int]) -> int:
    """Characters (joined without spaces) of n-grams seen before, scanning left to right and
    jumping past each duplicate, as datatrove's find_all_duplicate. Positions whose n-gram occurs
    once never count nor matter later, so only the repeated positions are walked."""
    seen: set[tuple[str, ...]] = set()
    dup_chars, next_free = 0, 0
    for i, gram in repeated:
        if i < next_free:
            continue
        if gram in seen:
            dup_chars += prefix[i + n] - prefix[i]
            next_free = i + n
        else:
            seen.add(gram)
    return dup_chars


def gopher_repetition_stats(v: TextViews, params: QualityParams) -> dict[str, float]:
    text = v.text
    denom = max(len(text), 1)
    paragraphs = _PARAGRAPH_SPLIT.split(text.strip())
    lines = _LINE_SPLIT.split(text)
    dup_paras, dup_para_chars = _duplicates(paragraphs)
    dup_lines, dup_line_chars = _duplicates(lines)
    stats = {
        "dup_para_frac": dup_paras / len(paragraphs),
        "dup_para_char_frac": dup_para_chars / denom,
        "dup_line_frac": dup_lines / len(lines),
        "dup_line_char_frac": dup_line_chars / denom,
    }
    stats.update(
        _ngram_stats(
            v.tokens,
            len(text),
            params.gopher_top_ngram_max_char_frac,
            params.gopher_dup_ngram_max_char_frac,
        )
    )
    return stats


def c4_clean(text: str, params: QualityParams) -> tuple[dict[str, float], str]:
    """C4 line cleaning. Returns statistics and the kept lines joined by newlines.

    As in C4 and datatrove, 'lorem ipsum' and '{' only count in lines that survive the
    punctuation and length filters (then the whole document fails).
    """
    kept: list[str] = []
    n_lines = sentences = lorem = curly = 0
    for raw in text.splitlines():
        n_lines += 1
        line = raw.strip()
        if params.c4_remove_citations and "[" in line:
            line = _CITATION.sub("", line)
        if params.c4_filter_no_terminal_punct and (
            not line.endswith(C4_END_PUNCTUATION) or line.endswith("...")
        ):
            continue
        words = raw.split()  # datatrove counts words before removing citations
        if len(words) < params.c4_min_words_per_line:
            continue
        if params.c4_max_word_length is not None and max(map(len, words), default=0) > (
            params.c4_max_word_length
        ):
            continue
        lower = line.lower()
        if params.c4_filter_lorem_ipsum and "lorem ipsum" in lower:
            lorem = 1
        if params.c4_filter_javascript and "javascript" in lower:
            continue
        if params.c4_filter_curly_bracket and "{" in line:
            curly = 1
        if params.c4_filter_policy and any(p in lower for p in C4_POLICY_SUBSTRINGS):
            continue
        sentences += 1 + len(_SENTENCE_BREAK.findall(line))
        kept.append(line)
    stats = {
        "c4_lines": float(n_lines),
        "c4_kept_lines": float(len(kept)),
        "c4_sentences": float(sentences),
        "c4_lorem_ipsum": float(lorem),
        "c4_curly_bracket": float(curly),
    }
    return stats, "\n".join(kept).strip()


def fineweb_stats(v: TextViews, params: QualityParams) -> dict[str, float]:
    text = v.text
    # datatrove keeps non-blank lines unstripped here.
    lines = [line for line in text.split("\n") if line and not line.isspace()]
    n_lines = max(len(lines), 1)
    n_newlines = text.count("\n")
    short = params.fineweb_short_line_length
    return {
        "line_punct_ratio": sum(1 for line in lines if line[-1] in TERMINAL_PUNCTUATION) / n_lines,
        "short_line_ratio": sum(1 for line in lines if len(line) <= short) / n_lines,
        "char_dup_ratio": _duplicates(lines)[1] / max(len(text) - n_newlines, 1),
        "list_ratio": n_newlines / max(len(v.tokens), 1),
    }
