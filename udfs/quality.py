"""Heuristic quality filters for web documents: Gopher quality, Gopher repetition, C4, FineWeb.

Thresholds and semantics follow datatrove (huggingface/datatrove, Apache-2.0) 0.10:
`GopherQualityFilter`, `GopherRepetitionFilter`, `C4QualityFilter` and `FineWebQualityFilter`,
which implement Rae et al. 2021 (Gopher, Table A1), Raffel et al. 2020 (C4) and Penedo et al.
2024 (FineWeb). Where we differ from datatrove, a comment says why (mostly: we tokenise with one
regex instead of spaCy, so statistics are computed once per document at C speed).

Every family is a pure function of the text returning `(keep, reason)`; `check_quality` runs the
enabled families over one set of precomputed views and returns all statistics, so a Spark job can
keep them as columns and tune thresholds later in SQL without re-reading the corpus.

Word counting and non-Latin scripts: Python's `\\w` matches CJK ideographs, so an unspaced
Chinese or Japanese sentence is ONE word up to its punctuation. Word counts are then tiny and
mean word lengths huge, so Gopher rejects such pages (word_count / mean_word_length). That is
deliberate for the default pipeline, which keeps English only like the paper (language id runs
first). Arabic and Cyrillic are space-separated and counted like Latin text, but the stop words
are English, so they fail `stop_word_count`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from itertools import accumulate

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FAMILIES = ("gopher_quality", "gopher_repetition", "c4", "fineweb")

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


def _ratio_field(default: float | None, description: str) -> float | None:
    return Field(default, ge=0.0, le=1.0, description=description + " None disables the rule.")


class QualityParams(BaseModel):
    """Thresholds of the heuristic filters. A document fails a `min_*` rule when its value is
    strictly below the threshold and a `max_*` rule when strictly above (as in datatrove)."""

    model_config = ConfigDict(extra="forbid")

    enabled_rules: list[str] = Field(
        list(FAMILIES),
        description=f"Rule families to run, in this order (the first failure is the reason). "
        f"Any of {FAMILIES}.",
    )
    max_chars: int = Field(
        200_000,
        ge=1,
        description="Documents longer than this many characters are truncated to it before any "
        "statistic (truncate_long=True) or rejected as 'too_long'. Keeps cost per row bounded.",
    )
    truncate_long: bool = Field(
        True,
        description="True: truncate long documents to max_chars (the kept text is the truncated "
        "one). False: reject them with reason 'too_long'.",
    )

    # Gopher quality (Rae et al. 2021, A.1.1; datatrove GopherQualityFilter defaults).
    gopher_min_words: int | None = Field(
        50, ge=0, description="Min words (tokens with a non-symbol character). None disables."
    )
    gopher_max_words: int | None = Field(
        100_000,
        ge=0,
        description="Max words. Only reachable if max_chars allows ~500k chars. None disables.",
    )
    gopher_min_mean_word_length: float | None = Field(
        3, ge=0, description="Min mean word length in characters. None disables."
    )
    gopher_max_mean_word_length: float | None = Field(
        10, ge=0, description="Max mean word length in characters. None disables."
    )
    gopher_max_symbol_word_ratio: float | None = Field(
        0.1,
        ge=0,
        description="Max ratio of '#' to tokens and of ellipses ('...', '…') to tokens. "
        "None disables.",
    )
    gopher_max_bullet_lines_ratio: float | None = _ratio_field(
        0.9, "Max fraction of lines starting with a bullet ('•' or '-')."
    )
    gopher_max_ellipsis_lines_ratio: float | None = _ratio_field(
        0.3, "Max fraction of lines ending with an ellipsis."
    )
    gopher_min_alpha_words_ratio: float | None = _ratio_field(
        0.8, "Min fraction of tokens (punctuation tokens included) with an alphabetic character."
    )
    gopher_min_stop_words: int | None = Field(
        2, ge=0, description="Min number of distinct Gopher stop words present. None disables."
    )

    # Gopher repetition (Rae et al. 2021, Table A1; datatrove GopherRepetitionFilter defaults).
    gopher_max_dup_line_frac: float | None = _ratio_field(
        0.3, "Max fraction of lines that duplicate an earlier line."
    )
    gopher_max_dup_para_frac: float | None = _ratio_field(
        0.3, "Max fraction of paragraphs (split on blank lines) duplicating an earlier one."
    )
    gopher_max_dup_line_char_frac: float | None = _ratio_field(
        0.2, "Max fraction of characters in duplicated lines."
    )
    gopher_max_dup_para_char_frac: float | None = _ratio_field(
        0.2, "Max fraction of characters in duplicated paragraphs."
    )
    gopher_top_ngram_max_char_frac: dict[int, float] = Field(
        {2: 0.20, 3: 0.18, 4: 0.16},
        description="n -> max fraction of characters covered by the most frequent n-gram.",
    )
    gopher_dup_ngram_max_char_frac: dict[int, float] = Field(
        {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        description="n -> max fraction of characters in duplicated n-grams (non-overlapping).",
    )

    # C4 (Raffel et al. 2020; datatrove C4QualityFilter defaults, split on lines).
    c4_output_cleaned_text: bool = Field(
        True,
        description="Return the C4 line-cleaned text as the text to keep (only if 'c4' is "
        "enabled); otherwise the original text.",
    )
    c4_remove_citations: bool = Field(
        True, description="Remove Wikipedia-style citations like '[1]', '[edit]' from lines."
    )
    c4_filter_no_terminal_punct: bool = Field(
        True, description="Drop lines not ending in . ? ! \" ' (or ending in '...')."
    )
    c4_min_words_per_line: int = Field(3, ge=0, description="Drop lines with fewer words.")
    c4_max_word_length: int | None = Field(
        1000, ge=1, description="Drop lines with a longer whitespace word. None disables."
    )
    c4_min_sentences: int | None = Field(
        5, ge=0, description="Min sentences in the kept lines. None disables."
    )
    c4_filter_lorem_ipsum: bool = Field(
        True, description="Reject documents whose kept lines contain 'lorem ipsum'."
    )
    c4_filter_javascript: bool = Field(True, description="Drop lines mentioning 'javascript'.")
    c4_filter_curly_bracket: bool = Field(
        True, description="Reject documents whose kept lines contain '{' (code, templates)."
    )
    c4_filter_policy: bool = Field(
        True, description="Drop cookie / privacy-policy / terms-of-use boilerplate lines."
    )

    # FineWeb (Penedo et al. 2024; datatrove FineWebQualityFilter defaults).
    fineweb_min_line_punct_ratio: float | None = _ratio_field(
        0.12, "Min fraction of non-blank lines ending in terminal punctuation."
    )
    fineweb_short_line_length: int = Field(
        30, ge=0, description="A line of at most this many characters counts as short."
    )
    fineweb_max_short_line_ratio: float | None = _ratio_field(
        0.67, "Max fraction of non-blank lines that are short."
    )
    fineweb_max_char_dup_ratio: float | None = _ratio_field(
        0.01, "Max fraction of non-newline characters in duplicated non-blank lines."
    )
    fineweb_max_list_ratio: float | None = Field(
        0.3, ge=0, description="Max ratio of newlines to tokens (list-like pages). None disables."
    )

    @field_validator("enabled_rules")
    @classmethod
    def _known_families(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown rule families {unknown}; choose from {FAMILIES}")
        if len(set(value)) != len(value):
            raise ValueError(f"enabled_rules has duplicates: {value}")
        return value

    @field_validator("gopher_top_ngram_max_char_frac", "gopher_dup_ngram_max_char_frac")
    @classmethod
    def _ngram_thresholds(cls, value: dict[int, float]) -> dict[int, float]:
        for n, frac in value.items():
            if n < 1 or not 0.0 <= frac <= 1.0:
                raise ValueError(f"n-gram threshold {n}: {frac} needs n >= 1 and 0 <= frac <= 1")
        return dict(sorted(value.items()))

    @model_validator(mode="after")
    def _min_below_max(self) -> QualityParams:
        pairs = [
            ("gopher_min_words", "gopher_max_words"),
            ("gopher_min_mean_word_length", "gopher_max_mean_word_length"),
        ]
        for low, high in pairs:
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"{low}={lo} is above {high}={hi}")
        return self


@dataclass
class QualityResult:
    keep: bool
    reason: str | None  # "<family>:<rule>" of the FIRST failing rule, "empty" or "too_long"
    detail: str | None  # measured value vs threshold, e.g. "word_count=12 < 50"
    stats: dict[str, float] = field(default_factory=dict)
    text: str = ""  # the text to keep: C4 line-cleaned if enabled, else the (truncated) input


@dataclass
class _Views:
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


def gopher_quality_stats(v: _Views) -> dict[str, float]:
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


def gopher_repetition_stats(v: _Views, params: QualityParams) -> dict[str, float]:
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


def fineweb_stats(v: _Views, params: QualityParams) -> dict[str, float]:
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


# ---------------------------------------------------------------- rules per family

# (rule name, statistic, "min" | "max", threshold or None when disabled)
_Rule = tuple[str, str, str, float | None]


def _rules(family: str, p: QualityParams) -> list[_Rule]:
    if family == "gopher_quality":
        return [
            ("word_count", "word_count", "min", p.gopher_min_words),
            ("word_count", "word_count", "max", p.gopher_max_words),
            ("mean_word_length", "mean_word_length", "min", p.gopher_min_mean_word_length),
            ("mean_word_length", "mean_word_length", "max", p.gopher_max_mean_word_length),
            ("hash_word_ratio", "hash_word_ratio", "max", p.gopher_max_symbol_word_ratio),
            ("ellipsis_word_ratio", "ellipsis_word_ratio", "max", p.gopher_max_symbol_word_ratio),
            ("bullet_lines_ratio", "bullet_lines_ratio", "max", p.gopher_max_bullet_lines_ratio),
            (
                "ellipsis_lines_ratio",
                "ellipsis_lines_ratio",
                "max",
                p.gopher_max_ellipsis_lines_ratio,
            ),
            ("alpha_words_ratio", "alpha_words_ratio", "min", p.gopher_min_alpha_words_ratio),
            ("stop_word_count", "stop_word_count", "min", p.gopher_min_stop_words),
        ]
    if family == "gopher_repetition":
        rules = [
            (name, name, "max", getattr(p, f"gopher_max_{name}"))
            for name in ("dup_para_frac", "dup_para_char_frac", "dup_line_frac")
        ]
        rules.append(
            ("dup_line_char_frac", "dup_line_char_frac", "max", p.gopher_max_dup_line_char_frac)
        )
        for n, frac in p.gopher_top_ngram_max_char_frac.items():
            rules.append((f"top_{n}_gram_char_frac", f"top_{n}_gram_char_frac", "max", frac))
        for n, frac in p.gopher_dup_ngram_max_char_frac.items():
            rules.append((f"dup_{n}_gram_char_frac", f"dup_{n}_gram_char_frac", "max", frac))
        return rules
    if family == "c4":
        return [
            ("lorem_ipsum", "c4_lorem_ipsum", "max", 0),
            ("curly_bracket", "c4_curly_bracket", "max", 0),
            ("too_few_sentences", "c4_sentences", "min", p.c4_min_sentences),
        ]
    if family == "fineweb":
        return [
            ("line_punct_ratio", "line_punct_ratio", "min", p.fineweb_min_line_punct_ratio),
            ("short_line_ratio", "short_line_ratio", "max", p.fineweb_max_short_line_ratio),
            ("char_dup_ratio", "char_dup_ratio", "max", p.fineweb_max_char_dup_ratio),
            ("list_ratio", "list_ratio", "max", p.fineweb_max_list_ratio),
        ]
    raise ValueError(f"unknown rule family {family!r}; choose from {FAMILIES}")


def _first_failure(family: str, stats: dict[str, float], params: QualityParams):
    """(reason, detail) of the family's first failing rule, or None."""
    for name, key, kind, threshold in _rules(family, params):
        if threshold is None:
            continue
        value = stats[key]
        if (kind == "min" and value < threshold) or (kind == "max" and value > threshold):
            op = "<" if kind == "min" else ">"
            return f"{family}:{name}", f"{key}={value:.4g} {op} {threshold:g}"
    return None


# ---------------------------------------------------------------- entry points


def _family_stats(family: str, v: _Views, params: QualityParams) -> tuple[dict, str | None]:
    """Statistics of one family, plus the cleaned text for C4."""
    if family == "gopher_quality":
        return gopher_quality_stats(v), None
    if family == "gopher_repetition":
        return gopher_repetition_stats(v, params), None
    if family == "c4":
        return c4_clean(v.text, params)
    if family == "fineweb":
        return fineweb_stats(v, params), None
    raise ValueError(f"unknown rule family {family!r}; choose from {FAMILIES}")


def check_quality(text: str, params: QualityParams) -> QualityResult:
    """Run the enabled rule families on one document.

    All statistics of the enabled families are computed (no early exit) so that every row carries
    the same columns; reason/detail name the first failing rule in `enabled_rules` order. All
    families see the same (possibly truncated) input text; C4's cleaned text is only an output.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    stats: dict[str, float] = {"n_chars": float(len(text)), "truncated": 0.0}
    if not text or text.isspace():
        return QualityResult(False, "empty", "no non-whitespace character", stats, text)
    if len(text) > params.max_chars:
        if not params.truncate_long:
            detail = f"n_chars={len(text)} > {params.max_chars}"
            return QualityResult(False, "too_long", detail, stats, text)
        text = text[: params.max_chars]
        stats["truncated"] = 1.0

    views = _Views(text)
    kept_text = text
    failure = None
    for family in params.enabled_rules:
        family_stats, cleaned = _family_stats(family, views, params)
        stats.update(family_stats)
        if cleaned is not None and params.c4_output_cleaned_text:
            kept_text = cleaned
        if failure is None:
            failure = _first_failure(family, family_stats, params)
    if failure is None:
        return QualityResult(True, None, None, stats, kept_text)
    return QualityResult(False, failure[0], failure[1], stats, kept_text)


def _check_family(family: str, text: str, params: QualityParams | None) -> tuple[bool, str | None]:
    params = params or QualityParams()
    result = check_quality(text, params.model_copy(update={"enabled_rules": [family]}))
    return result.keep, result.reason


def gopher_quality(text: str, params: QualityParams | None = None) -> tuple[bool, str | None]:
    """Gopher quality rules alone: (keep, reason)."""
    return _check_family("gopher_quality", text, params)


def gopher_repetition(text: str, params: QualityParams | None = None) -> tuple[bool, str | None]:
    """Gopher repetition rules alone: (keep, reason)."""
    return _check_family("gopher_repetition", text, params)


def c4_quality(text: str, params: QualityParams | None = None) -> tuple[bool, str | None]:
    """C4 document rules alone: (keep, reason). The cleaned text is in check_quality's result."""
    return _check_family("c4", text, params)


def fineweb_quality(text: str, params: QualityParams | None = None) -> tuple[bool, str | None]:
    """FineWeb rules alone: (keep, reason)."""
    return _check_family("fineweb", text, params)
