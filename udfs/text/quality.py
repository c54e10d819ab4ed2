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

from dataclasses import dataclass, field

from webscale_rl.udfs.text.quality_params import FAMILIES, QualityParams
from webscale_rl.udfs.text.quality_stats import (
    TextViews,
    c4_clean,
    fineweb_stats,
    gopher_quality_stats,
    gopher_repetition_stats,
)


@dataclass
class QualityResult:
    keep: bool
    reason: str | None  # "<family>:<rule>" of the FIRST failing rule, "empty" or "too_long"
    detail: str | None  # measured value vs threshold, e.g. "word_count=12 < 50"
    stats: dict[str, float] = field(default_factory=dict)
    text: str = ""  # the text to keep: C4 line-cleaned if enabled, else the (truncated) input


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


def _family_stats(family: str, v: TextViews, params: QualityParams) -> tuple[dict, str | None]:
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

    views = TextViews(text)
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
