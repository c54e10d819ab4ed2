"""Language identification on CPU with py3langid (langid.py's model, shipped inside the wheel).

Nothing is downloaded at run time: the model file is package data of py3langid. It is loaded
once per Python process, on first use, so Spark executors pay the ~1-2 s load once per worker.
Confidences are py3langid's normalised probabilities (a softmax over the model's languages,
tempered by text length), so a threshold such as 0.5 means the same for short and long pages.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

UNKNOWN = "und"  # ISO 639 code for "undetermined", returned for text without any letter


class LangIdParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep_languages: list[str] | None = Field(
        ["en"],
        description="ISO 639-1 codes to keep (py3langid labels). None keeps every language "
        "(only min_confidence applies). The paper keeps English only.",
    )
    min_confidence: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Min normalised probability of the detected language to keep a document.",
    )
    max_chars_for_detection: int = Field(
        10_000,
        ge=1,
        description="Only the first this many characters are classified: enough for a stable "
        "guess, and keeps cost bounded on very long pages.",
    )

    @field_validator("keep_languages")
    @classmethod
    def _codes(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("keep_languages is empty (use None to keep every language)")
        return value


class LangCheck(NamedTuple):
    keep: bool
    reason: str | None  # None, "lang_not_kept" or "lang_low_confidence"
    lang: str
    confidence: float

    @property
    def detail(self) -> str | None:
        """Names the language and its confidence for a rejected document."""
        return None if self.keep else f"lang={self.lang} confidence={self.confidence:.3f}"


@lru_cache(maxsize=1)
def _identifier():
    # Imported here so that importing this module (e.g. to read LangIdParams) stays cheap.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def supported_languages() -> list[str]:
    """Language codes the packaged model can return (loads the model)."""
    return list(_identifier().labels)


def detect_language(text: str, max_chars: int | None = None) -> tuple[str, float]:
    """(language code, normalised probability) of `text`, ("und", 0.0) if it has no letter."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    if max_chars is not None:
        if max_chars < 1:
            raise ValueError(f"max_chars must be >= 1, got {max_chars}")
        text = text[:max_chars]
    # Without letters the model has no evidence and returns an arbitrary near-uniform guess.
    if not any(ch.isalpha() for ch in text):
        return UNKNOWN, 0.0
    lang, confidence = _identifier().classify(text)
    return lang, float(confidence)


def check_language(text: str, params: LangIdParams) -> LangCheck:
    """Keep a document if its language is in keep_languages with enough confidence."""
    keep_languages = params.keep_languages
    if keep_languages is not None:
        unknown = set(keep_languages).difference(_identifier().labels)
        if unknown:
            raise ValueError(
                f"keep_languages has codes the model does not know: {sorted(unknown)}; "
                f"see supported_languages()"
            )
    lang, confidence = detect_language(text, params.max_chars_for_detection)
    if keep_languages is not None and lang not in keep_languages:
        return LangCheck(False, "lang_not_kept", lang, confidence)
    if confidence < params.min_confidence:
        return LangCheck(False, "lang_low_confidence", lang, confidence)
    return LangCheck(True, None, lang, confidence)
