"""Thresholds of the heuristic quality filters (Gopher quality and repetition, C4, FineWeb),
with datatrove's defaults; udfs/text/quality.py applies them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FAMILIES = ("gopher_quality", "gopher_repetition", "c4", "fineweb")


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
