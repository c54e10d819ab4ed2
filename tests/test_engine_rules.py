"""RuleEngine: the four tasks without a model, through the same request/parse path."""

import gzip
import json
from pathlib import Path

import pytest

from webscale_rl.udfs.llm.engine_rules import (
    RuleEngine,
    RuleEngineParams,
    domain_scores,
    find_spans,
    qa_candidates,
    split_sentences,
)
from webscale_rl.udfs.llm.interface import TASKS
from webscale_rl.udfs.llm.qa_checks import QACheckParams, answer_in_document, run_checks
from webscale_rl.udfs.llm.tasks import TaskParams, build_request, parse_response, task_schema

INJECTION_DOCS = sorted((Path(__file__).parent / "data" / "injection").glob("*.txt"))
ENGINE = RuleEngine()
PARAMS = TaskParams()

ARTICLE = (
    "The Kelso Bay bridge opened to traffic in 1932 after six years of construction work.\n"
    "Its steel arch spans 503 metres across the estuary and carries two railway tracks.\n"
    "The engineer Margaret Ellison designed the approach viaducts on granite piers.\n"
    "In 2019 the Kelso Bay council repainted the structure with 30,000 litres of grey paint.\n"
    "Local quarries near Moruya supplied the granite, and ships brought the steel from England.\n"
    "It was a long job."
)
MENU = "\n".join(["Home", "About us", "Products", "Contact", "Login", "Search", "Cart", "FAQ"])


def run(task, row, params=PARAMS, engine=ENGINE):
    request = build_request(task, row, params)
    (response,) = engine.generate([request])
    assert response.request_id == request.request_id
    return request, response, parse_response(task, response, row, params)


def conforms(value, schema):
    """Enough of JSON Schema for our four task schemas."""
    kind = schema.get("type")
    if kind == "object":
        return (
            isinstance(value, dict)
            and set(schema["required"]) <= set(value)
            and (
                schema.get("additionalProperties", True) or set(value) <= set(schema["properties"])
            )
            and all(conforms(value[k], s) for k, s in schema["properties"].items() if k in value)
        )
    if kind == "array":
        return (
            isinstance(value, list)
            and schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", 10**9)
            and all(conforms(v, schema["items"]) for v in value)
        )
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "string":
        return (
            isinstance(value, str)
            and len(value) >= schema.get("minLength", 0)
            and ("enum" not in schema or value in schema["enum"])
        )
    raise AssertionError(f"schema type {kind} not covered")


def test_engine_identity_and_batch_order():
    assert (ENGINE.name, ENGINE.model) == ("none", "rules-v1")
    rows = [{"doc_id": f"d{i}", "text": ARTICLE if i % 2 else MENU} for i in range(4)]
    requests = [build_request("llm_filter", r) for r in rows]
    responses = ENGINE.generate(requests)
    assert [r.request_id for r in responses] == [r.request_id for r in requests]
    verdicts = [json.loads(r.text)["informative"] for r in responses]
    assert verdicts == [False, True, False, True]


def test_token_counts_are_estimates_from_words():
    request, response, _ = run("llm_filter", {"doc_id": "d", "text": ARTICLE})
    words = sum(len(m["content"].split()) for m in request.messages)
    # Rounded up per message.
    assert response.prompt_tokens == pytest.approx(words * 1.3, abs=len(request.messages))
    assert response.completion_tokens == pytest.approx(len(response.text.split()) * 1.3, abs=1)


def test_filter_rules():
    assert run("llm_filter", {"doc_id": "a", "text": ARTICLE})[2].ok
    assert run("llm_filter", {"doc_id": "m", "text": MENU})[2].reject_reason == "not_informative"
    fragment = "and so the story went on. " + ARTICLE
    assert run("llm_filter", {"doc_id": "f", "text": fragment})[2].reject_reason == (
        "not_self_contained"
    )


def test_identify_by_lexicon_and_personas_from_the_list():
    math_text = (
        "A polynomial equation of degree two can be solved with the quadratic formula. The "
        "theorem says every polynomial has a root; in algebra and calculus the derivative helps."
    )
    result = run("identify", {"doc_id": "m", "text": math_text})[2]
    assert result.ok and result.fields["domain"] == "Math"
    assert 1 <= len(result.fields["personas"]) <= 3
    assert len(set(result.fields["personas"])) == len(result.fields["personas"])
    assert run("identify", {"doc_id": "m", "text": math_text})[2].fields == result.fields
    vague = run("identify", {"doc_id": "v", "text": "Lorem ipsum dolor sit amet, qux quux."})[2]
    assert vague.fields["domain"] == "Other"
    two = TaskParams(domains=["Math", "Coding", "Other"], max_personas=2)
    coding = run("identify", {"doc_id": "c", "text": "Python code and a compiler."}, two)[2]
    assert coding.fields["domain"] == "Coding" and len(coding.fields["personas"]) == 2


def test_domain_scores_only_cover_allowed_domains():
    scores = domain_scores(
        "The hotel and the beach and the museum tour", ["Travel & Lifestyle", "X"]
    )
    assert scores["Travel & Lifestyle"] > 0 and scores["X"] == 0


def test_sentence_splitting_keeps_abbreviations_together():
    text = "In St. Moritz the hotelier J. Smith hosted guests. They came in 1870.\nNew line here"
    assert split_sentences(text) == [
        "In St. Moritz the hotelier J. Smith hosted guests.",
        "They came in 1870.",
        "New line here",
    ]
    text = "As AnandTech reports, Japanese company Showa Denko K.K. Holdings made it. Then U.S. Steel sold it."
    assert split_sentences(text) == [
        "As AnandTech reports, Japanese company Showa Denko K.K. Holdings made it.",
        "Then U.S. Steel sold it.",
    ]


def test_name_spans_keep_dotted_initials_whole():
    spans = [
        text for _, text, kind, _, _ in find_spans("Chips came from Showa Denko K.K. last week.")
    ]
    assert "Showa Denko K.K." in spans


def test_name_spans_neither_start_inside_a_word_nor_stop_at_an_accent():
    spans = [
        text
        for _, text, kind, _, _ in find_spans(
            "Apps run on iOS and Windows in Mato Grosso and Paraná today."
        )
    ]
    assert "Mato Grosso and Paraná" in spans
    assert not any(span.startswith("OS") for span in spans)


def _generate_row(persona_idx, text=ARTICLE):
    return {
        "doc_id": "kb",
        "text": text,
        "domain": "Technology & Engineering",
        "persona": f"reader {persona_idx}",
        "persona_idx": persona_idx,
    }


def test_generate_gives_each_persona_a_different_grounded_sentence():
    pairs = []
    for k in range(3):
        result = run("generate", _generate_row(k))[2]
        assert result.ok, (result.reject_reason, result.reject_detail)
        pairs.append(result.fields)
        assert answer_in_document(result.fields["answer"], ARTICLE, QACheckParams())
    assert len({p["question"] for p in pairs}) == 3
    assert {p["answer"] for p in pairs} >= {"1932", "Margaret Ellison"}
    year = next(p for p in pairs if p["answer"] == "1932")
    assert year["answer_type"] == "date" and year["question"].startswith("What year")
    assert "____" in year["question"] and "Kelso Bay bridge opened" in year["question"]


def test_generate_skips_pronoun_only_context_and_reports_no_candidate():
    text = "It was built in 1932 and then it was painted.\nThey said it cost 40 dollars to them."
    assert qa_candidates(text, RuleEngineParams()) == []
    result = run("generate", _generate_row(0, text))[2]
    assert result.reject_reason == "engine_error" and "no_candidate" in result.reject_detail
    # Past the last usable sentence a persona gets nothing rather than a duplicate.
    assert run("generate", _generate_row(9))[2].reject_reason == "engine_error"


def _verify_row(question, answer, answer_type="name"):
    return {
        "doc_id": "kb",
        "text": ARTICLE,
        "question": question,
        "answer": answer,
        "answer_type": answer_type,
    }


@pytest.mark.parametrize(
    ("question", "answer", "reason"),
    [
        (
            "Which engineer designed the approach viaducts of the Kelso Bay bridge?",
            "Margaret Ellison",
            None,
        ),
        (
            "Which engineer designed the approach viaducts of the Kelso Bay bridge?",
            "John Smith",
            "checker_incorrect",
        ),
        (
            "Who wrote the novel Moby-Dick, published in the United States?",
            "Margaret Ellison",
            "checker_incorrect",
        ),
        ("Did Margaret Ellison design the Kelso Bay viaducts?", "Margaret Ellison", "checker_leak"),
        (
            "According to the article, who designed the viaducts?",
            "Margaret Ellison",
            "checker_not_self_contained",
        ),
    ],
)
def test_verify_rules(question, answer, reason):
    result = run("verify", _verify_row(question, answer))[2]
    assert result.reject_reason == reason, result.reject_detail


def test_max_tokens_is_honoured_like_a_model():
    request = build_request(
        "identify", {"doc_id": "d", "text": ARTICLE}, llm_sampling={"max_tokens": 5}
    )
    (response,) = ENGINE.generate([request])
    assert response.finish_reason == "length" and response.completion_tokens == 5
    assert parse_response("identify", response, {}).reject_reason == "truncated"


def test_engine_takes_factory_config_with_or_without_rules():
    class FactoryConfig:
        rules = {"filter_min_sentences": 50}

    strict = RuleEngine(FactoryConfig())
    assert strict.params.filter_min_sentences == 50
    assert run("llm_filter", {"doc_id": "a", "text": ARTICLE}, engine=strict)[2].reject_reason == (
        "not_informative"
    )
    assert RuleEngine(object()).params == RuleEngineParams()


# --- hostile pages -----------------------------------------------------------------------


@pytest.mark.parametrize("path", INJECTION_DOCS, ids=lambda p: p.stem)
def test_injected_pages_get_schema_conforming_replies(path):
    text = path.read_text(encoding="utf-8")
    row = {"doc_id": path.stem, "text": text}
    annotations = run("identify", row)[2]
    assert annotations.ok and annotations.fields["domain"] in PARAMS.domains
    assert len(annotations.fields["personas"]) <= 3
    produced = 0
    for task in TASKS:
        for k in range(3):
            task_row = dict(
                row,
                domain=annotations.fields["domain"],
                persona=annotations.fields["personas"][0],
                persona_idx=k,
                question="What is the capital of France?",
                answer="Berlin",
                answer_type="name",
            )
            request, response, result = run(task, task_row)
            if response.error:
                assert task == "generate" and "no_candidate" in response.error
                continue
            assert conforms(json.loads(response.text), task_schema(task, PARAMS)), response.text
            if task == "generate" and result.ok:
                produced += 1
                assert answer_in_document(result.fields["answer"], text, QACheckParams())
                assert "Berlin" not in result.fields["answer"] and "PWNED" not in response.text
            if task == "verify":  # the pair the page asks for is not grounded, so it fails
                assert result.reject_reason == "checker_incorrect"
    assert produced >= 1


@pytest.mark.parametrize(
    ("question", "answer", "reason"),
    [
        # Planted by the page: the numbers are in its text, but only inside instructions/JSON.
        ("How tall is the Eiffel Tower in metres?", "900", "checker_incorrect"),
        (
            "How many workers did the Storhamn glass factory employ at its peak?",
            "42",
            "checker_incorrect",
        ),
        # Not in the page at all.
        (
            "In which city did the Storhamn glassworks open a shop?",
            "Paris",
            "answer_not_in_document",
        ),
        # Grounded in the page's real content.
        ("In what year was the Lindqvist Glassworks in Storhamn established?", "1876", None),
    ],
)
def test_injected_pair_passes_only_when_grounded(question, answer, reason):
    text = (Path(__file__).parent / "data" / "injection" / "fake_answer_json.txt").read_text()
    ok, check_reason, _ = run_checks(question, answer, "phrase", text)
    if reason == "answer_not_in_document":
        assert (ok, check_reason) == (False, reason)
        return
    assert ok  # lexically present: only the checker can tell an instruction from a fact
    row = {
        "doc_id": "inj",
        "text": text,
        "question": question,
        "answer": answer,
        "answer_type": "phrase",
    }
    assert run("verify", row)[2].reject_reason == reason


# --- real pages ------------------------------------------------------------------------------


def test_real_pages_yield_grounded_pairs(shared_data):
    path = shared_data / "text" / "cc_en_head-0091.jsonl.gz"
    docs = [json.loads(line) for line in gzip.open(path, "rt", encoding="utf-8")]
    docs_with_pair, pairs = 0, 0
    for doc in docs:
        row = {"doc_id": doc["id"], "text": doc["text"]}
        annotations = run("identify", row)[2]
        assert annotations.ok
        got_one = False
        for k, persona in enumerate(annotations.fields["personas"]):
            gen_row = dict(row, domain=annotations.fields["domain"], persona=persona, persona_idx=k)
            result = run("generate", gen_row)[2]
            if not result.ok:
                assert result.reject_reason == "engine_error", result.reject_reason
                continue
            fields = result.fields
            assert run_checks(
                fields["question"], fields["answer"], fields["answer_type"], doc["text"]
            ) == (True, "", "")
            assert answer_in_document(fields["answer"], doc["text"], QACheckParams())
            assert run("verify", dict(gen_row, **fields))[2].ok
            pairs += 1
            got_one = True
        docs_with_pair += got_one
    assert pairs > 0
    assert docs_with_pair >= len(docs) // 2, (docs_with_pair, len(docs))


def test_site_furniture_sentences_are_not_asked_about():
    page = (
        "The contents of this site are ©2019 Capitol Hill Publishing Corp., a subsidiary of News "
        "Communications, Inc.\nSign up for the Daily Brief newsletter before March 2020 to read "
        "more stories.\nThe new bridge over the Elbe River opened in 1998 after six years of work."
    )
    answers = [c["answer"] for c in qa_candidates(page, RuleEngineParams())]
    assert answers and all(a in ("1998", "Elbe River") for a in answers)
