"""Deterministic QA checks: grounding, leakage, length, references to an unseen source."""

import pytest

from webscale_rl.udfs.llm import prompts
from webscale_rl.udfs.llm.qa_checks import (
    QACheckParams,
    answer_in_document,
    answer_in_question,
    normalize,
    numbers_in,
    parse_number_answer,
    refers_to_document,
    run_checks,
)
from webscale_rl.udfs.llm.tasks import DEFAULT_DOMAINS

P = QACheckParams()
DOC = (
    "The Kelso Bay bridge opened in 1932. Its arch spans 1,503.5 metres and cost £4.2 million. "
    "About 45% of the steel came from Ｍｉｄｄｌｅｓｂｒｏｕｇｈ, shipped by Dorman Long & Co."
)


def test_normalize_folds_case_punctuation_width_and_separators():
    assert normalize("  Dorman LONG & Co.  ") == "dorman long co"
    assert normalize("Ｍｉｄｄｌｅｓｂｒｏｕｇｈ") == "middlesbrough"
    assert normalize("1,503.5 m") == "1503.5 m"
    assert normalize("v4.2, then 5.") == "v4.2 then 5"
    assert normalize("45%") == "45 percent"


def test_numbers_in_and_number_answers():
    assert numbers_in("cost 1,503.5 or -7 and 2019") == [1503.5, -7.0, 2019.0]
    assert parse_number_answer("$1,200") == (1200.0, "")
    assert parse_number_answer("45%") == (45.0, "percent")
    assert parse_number_answer("12 km") == (12.0, "km")
    assert parse_number_answer("Paris") is None
    assert parse_number_answer("3 to 5") is None


@pytest.mark.parametrize(
    "answer",
    ["1932", "dorman long & co", "Middlesbrough", "1503.5 metres", "1,503.50", "45 percent", "45%"],
)
def test_grounded_answers_are_found(answer):
    assert answer_in_document(answer, DOC, P)


@pytest.mark.parametrize("answer", ["193", "1933", "Newcastle", "45 km", "4.3 million", "2"])
def test_ungrounded_answers_are_not_found(answer):
    assert not answer_in_document(answer, DOC, P)


def test_leak_by_text_and_by_number():
    assert answer_in_question("When did the Kelso Bay bridge open in 1932?", "1932", P)
    assert answer_in_question("How long is the 1,200 m span?", "1200", P)
    assert answer_in_question("Which firm, DORMAN LONG, supplied steel?", "Dorman Long", P)
    assert not answer_in_question("When did the Kelso Bay bridge open?", "1932", P)
    assert not answer_in_question("What happened in 2010?", "10", P)


@pytest.mark.parametrize(
    "question",
    [
        "According to the text, when did the bridge open?",
        "In the passage, who supplied the steel?",
        "What does this article say about the arch?",
        "Which firm is mentioned above?",
        "Based on the above, how long is the arch?",
        "What is the main claim of the document?",
    ],
)
def test_questions_leaning_on_the_source_are_caught(question):
    assert refers_to_document(question)


@pytest.mark.parametrize(
    "question",
    [
        "Which text editor did Bill Joy write in 1976?",
        "How many pages does the first Harry Potter novel have?",
        "In what year did the Kelso Bay bridge open?",
    ],
)
def test_ordinary_questions_are_not_flagged(question):
    assert refers_to_document(question) is None


def test_run_checks_passes_a_good_pair():
    ok, reason, _ = run_checks("In what year did the Kelso Bay bridge open?", "1932", "date", DOC)
    assert (ok, reason) == (True, "")


@pytest.mark.parametrize(
    ("question", "answer", "answer_type", "reason"),
    [
        (
            "Why was the Kelso Bay bridge built?",
            "Because the town needed a crossing over the estuary and the ferries could no "
            "longer carry the traffic, the council decided to build an arch bridge.",
            "phrase",
            "answer_too_long",
        ),
        ("Which firm supplied steel?", "Dorman Long\nand Co", "name", "answer_too_long"),
        ("When did the Kelso Bay bridge open in 1932?", "1932", "date", "answer_leaked"),
        (
            "Who designed the Kelso Bay bridge arch?",
            "Ralph Freeman",
            "name",
            "answer_not_in_document",
        ),
        ("According to the text, when did it open?", "1932", "date", "refers_to_document"),
        ("How long is the Kelso Bay arch?", "very long", "number", "bad_answer_type"),
        ("Who supplied the Kelso Bay steel?", "Dorman Long", "biography", "bad_answer_type"),
        ("Who supplied the Kelso Bay steel?", "  ", "name", "missing_field:answer"),
        ("", "Dorman Long", "name", "missing_field:question"),
    ],
)
def test_run_checks_reasons(question, answer, answer_type, reason):
    ok, got, _detail = run_checks(question, answer, answer_type, DOC, P)
    assert not ok
    assert got == reason


def test_length_bounds_are_configurable():
    tight = QACheckParams(answer_max_words=1)
    question = "Which firm supplied the steel for the Kelso Bay bridge?"
    assert run_checks(question, "Dorman Long", "name", DOC, P)[0]
    assert run_checks(question, "Dorman Long", "name", DOC, tight)[1] == "answer_too_long"


@pytest.mark.parametrize("domain", DEFAULT_DOMAINS)
def test_every_demo_passes_the_checks_against_its_own_excerpt(domain):
    demos = prompts.load_demos(domain)
    assert len(demos) >= 3
    for demo in demos:
        ok, reason, detail = run_checks(
            demo["question"], demo["answer"], demo["answer_type"], demo["source_excerpt"], P
        )
        assert ok, (demo["question"], reason, detail)
