"""HTML -> main text.

One entry point, `html_to_text`, with the extractor chosen by name so the pipeline config can
switch it. The default was picked by `bench/extraction_eval.py` (bench/README.md, "HTML
extraction"): on trafilatura's gold snippets Resiliparse has the best recall (0.96) at 12x
trafilatura's page rate; trafilatura has the better precision (0.91 vs 0.75) and F1.

trafilatura and jusText are imported lazily: they are optional (dev) dependencies, and a
cluster that only uses the default must not need them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

DEFAULT_EXTRACTOR = "resiliparse"


def _resiliparse(html: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(html, main_content=True)


def _trafilatura(html: str, fast: bool) -> str:
    import trafilatura

    # Settings of trafilatura's own benchmark: tables are content, comments are not.
    text = trafilatura.extract(
        html, fast=fast, include_comments=False, include_tables=True, include_formatting=False
    )
    return text or ""


@cache
def _justext_stoplist() -> frozenset[str]:
    import justext

    # The union of all languages' stop words: the language is not known before extraction.
    words: set[str] = set()
    for language in justext.get_stoplists():
        words |= justext.get_stoplist(language)
    return frozenset(words)


def _justext(html: str) -> str:
    import justext

    paragraphs = justext.justext(html, _justext_stoplist())
    return "\n".join(p.text for p in paragraphs if not p.is_boilerplate)


EXTRACTORS: dict[str, Callable[[str], str]] = {
    "resiliparse": _resiliparse,
    "trafilatura": lambda html: _trafilatura(html, fast=False),
    "trafilatura_fast": lambda html: _trafilatura(html, fast=True),
    "justext": _justext,
}


def html_to_text(html: str, extractor: str = DEFAULT_EXTRACTOR) -> str:
    """The main text of an HTML page ("" when there is none). Parser errors propagate."""
    if extractor not in EXTRACTORS:
        raise ValueError(f"unknown extractor {extractor!r}; choose one of {sorted(EXTRACTORS)}")
    if not isinstance(html, str):
        raise TypeError(f"html must be str, got {type(html).__name__} (decode bytes first)")
    if not html.strip():
        return ""
    return EXTRACTORS[extractor](html).strip()
