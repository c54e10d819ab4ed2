"""HTML -> main text: boilerplate goes, the article stays; quality floor on real gold pages."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
from fastwarc.warc import ArchiveIterator, WarcRecordType

from webscale_rl.udfs.read.extract import DEFAULT_EXTRACTOR, EXTRACTORS, html_to_text
from webscale_rl.udfs.read.warc import decode_html

# paragraphs over 200 characters: jusText only trusts a page that has some
ARTICLE = [
    "The harbour committee met on Tuesday to discuss the new ferry timetable for the island. "
    "Two evening crossings will be added during the summer months, the chair told reporters "
    "after the meeting.",
    "Residents asked for a later last ferry on Fridays, and the operator agreed to a trial "
    "that starts in June. The winter service stays as it is, with three crossings a day in "
    "each direction and no change to fares.",
]
PAGE = f"""<!DOCTYPE html><html lang="en"><head><title>Ferry news</title>
<script>var tracking = "do not extract me";</script><style>p {{ color: red }}</style></head>
<body><nav><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li>
<li><a href="/sport">Sport</a></li><li><a href="/contact">Contact</a></li></ul></nav>
<main><article><h1>New ferry timetable</h1>
{"".join(f"<p>{p}</p>" for p in ARTICLE)}
</article></main>
<footer><p>Copyright 2024 Island Gazette. All rights reserved.</p>
<a href="/privacy">Privacy policy</a> <a href="/imprint">Imprint</a></footer></body></html>"""


def installed(extractor: str) -> bool:
    module = {"trafilatura_fast": "trafilatura"}.get(extractor, extractor)
    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize("extractor", sorted(EXTRACTORS))
def test_main_text_kept_scripts_dropped(extractor):
    if not installed(extractor):
        pytest.skip(f"{extractor} not installed")
    text = html_to_text(PAGE, extractor)
    for sentence in ARTICLE:
        assert sentence in text
    assert "do not extract me" not in text and "color: red" not in text


def test_default_drops_page_furniture():
    text = html_to_text(PAGE)
    assert "All rights reserved" not in text and "Privacy policy" not in text


def test_empty_and_textless_pages():
    assert html_to_text("") == ""
    assert html_to_text("   \n") == ""
    assert html_to_text("<html><body><script>x=1</script></body></html>") == ""


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown extractor"):
        html_to_text(PAGE, "readability")
    with pytest.raises(TypeError):
        html_to_text(PAGE.encode())


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_default_quality_on_gold_pages(shared_data):
    """Trafilatura's gold snippets on the small WARC's pages: a floor well under the bench figures
    (bench/README.md), so only a broken extractor or a broken decode fails it."""
    gold = json.loads((shared_data / "extraction_gold/trafilatura_evaldata.json").read_text())
    by_file = {item["file"]: item for item in gold.values()}
    tp = fp = fn = pages = 0
    with open(shared_data / "web/web_pages_small.warc.gz", "rb") as f:
        for record in ArchiveIterator(f, record_types=WarcRecordType.response):
            fixture = record.headers.get("X-Source-Fixture") or ""
            item = by_file.get(fixture.rsplit("/", 1)[-1])
            if item is None:
                continue
            text = norm(html_to_text(decode_html(record.reader.read(), record.http_charset)))
            found = sum(norm(s) in text for s in item["with"])
            tp, fn = tp + found, fn + len(item["with"]) - found
            fp += sum(norm(s) in text for s in item["without"])
            pages += 1
    assert pages >= 30
    assert tp / (tp + fn) >= 0.75, f"recall {tp / (tp + fn):.2f} with {DEFAULT_EXTRACTOR}"
    assert tp / (tp + fp) >= 0.6, f"precision {tp / (tp + fp):.2f} with {DEFAULT_EXTRACTOR}"
