import gzip
import json
import re
import socket

import pytest
from pydantic import ValidationError

from webscale_rl.udfs.text import langid
from webscale_rl.udfs.text.langid import LangIdParams, check_language, detect_language

EN = "The committee met on Tuesday to discuss the new budget for schools and public libraries."
DE = "Der Ausschuss traf sich am Dienstag, um den neuen Haushalt für Schulen zu besprechen."


def warc_pages(path):
    """(declared <html lang>, extracted text) for each HTML response in a WARC."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    with open(path, "rb") as f:
        for record in ArchiveIterator(f, record_types=WarcRecordType.response):
            body = record.reader.read()
            html = bytes_to_str(body, detect_encoding(body))
            declared = re.search(r"<html[^>]*\blang=[\"']?([a-zA-Z]{2})", html)
            text = extract_plain_text(html, main_content=True)
            yield (declared.group(1).lower() if declared else None), text


def test_model_loads_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    langid._identifier.cache_clear()
    assert detect_language(EN)[0] == "en"
    assert "de" in langid.supported_languages()


def test_model_is_cached_per_process():
    assert langid._identifier() is langid._identifier()


@pytest.mark.parametrize(
    "text, lang",
    [
        (EN, "en"),
        (DE, "de"),
        ("我们是中国人，今天的天气很好，我们去公园散步吧。", "zh"),
        ("اللغة العربية هي إحدى أكثر اللغات انتشارا في العالم ويتحدث بها الملايين.", "ar"),
        ("Москва является столицей России и крупнейшим городом страны.", "ru"),
    ],
)
def test_detect_language(text, lang):
    detected, confidence = detect_language(text)
    assert detected == lang
    assert 0.5 <= confidence <= 1.0


@pytest.mark.parametrize("text", ["", "   \n", "12345 678", "\u200b\x00"])
def test_no_letters_is_undetermined(text):
    assert detect_language(text) == ("und", 0.0)
    assert check_language(text, LangIdParams()) == (False, "lang_not_kept", "und", 0.0)


def test_check_language_reasons():
    params = LangIdParams()
    assert check_language(EN, params)[:3] == (True, None, "en")
    rejected = check_language(DE, params)
    assert rejected[:3] == (False, "lang_not_kept", "de")
    assert rejected.detail.startswith("lang=de confidence=0.9")
    # a two-word snippet is never confidently anything
    low = check_language("hello there", LangIdParams(keep_languages=None, min_confidence=0.99))
    assert (low.keep, low.reason) == (False, "lang_low_confidence")
    assert low.confidence < 0.99
    assert check_language(DE, LangIdParams(keep_languages=["en", "de"])).keep


def test_only_the_first_chars_are_classified():
    text = EN + " " + DE * 50
    assert detect_language(text)[0] == "de"
    assert check_language(text, LangIdParams(max_chars_for_detection=len(EN))).keep


def test_params_validation():
    with pytest.raises(ValidationError):
        LangIdParams(keep_languages=[])
    with pytest.raises(ValidationError):
        LangIdParams(min_confidence=1.5)
    with pytest.raises(ValidationError):
        LangIdParams(threshold=0.5)
    with pytest.raises(ValueError, match="does not know"):
        check_language(EN, LangIdParams(keep_languages=["eng"]))
    with pytest.raises(TypeError):
        detect_language(b"bytes")


def test_english_ccnet_pages(shared_data):
    with gzip.open(shared_data / "text" / "cc_en_head-0091.jsonl.gz", "rt") as f:
        docs = [json.loads(line) for line in f]
    assert all(doc["metadata"]["language"] == "en" for doc in docs)
    kept = [check_language(doc["text"], LangIdParams()).keep for doc in docs]
    assert sum(kept) >= 0.9 * len(docs)


def test_german_and_english_web_pages(shared_data):
    pages = [
        (declared, text)
        for declared, text in warc_pages(shared_data / "web" / "web_pages_small.warc.gz")
        if declared in ("de", "en") and len(text) >= 300
    ]
    german = [text for declared, text in pages if declared == "de"]
    english = [text for declared, text in pages if declared == "en"]
    assert len(german) >= 10 and len(english) >= 3
    # pages declare their own language; allow a few mislabelled ones
    assert sum(detect_language(t)[0] == "de" for t in german) >= 0.9 * len(german)
    assert sum(detect_language(t)[0] == "en" for t in english) >= 0.75 * len(english)
    assert not any(check_language(t, LangIdParams()).keep for t in german)
