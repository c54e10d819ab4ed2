"""Decontamination against the real eval sets in shared/data/benchmarks.

Benchmark items are read straight from the files here (not through the module's loader), planted
into QA pairs verbatim, embedded or lightly edited, and must be found with the right benchmark,
item and method; benign questions written for this test must be kept. The n-gram check alone
(`check_qa`, `find_contamination`) keeps lm-evaluation-harness's behaviour; `DecontamIndex.find`
adds containment and near matches.
"""

import gzip
import json
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from webscale_rl.udfs.decontam.near_match import NearMatchParams, numbers_as_digits
from webscale_rl.udfs.decontam.ngrams import (
    BenchmarkSpec,
    DecontamIndex,
    DecontamParams,
    canonical_tokens,
    check_qa,
    default_benchmarks,
    find_contamination,
    ngram_hash,
    ngrams,
    normalize,
)

N = 13


@pytest.fixture(scope="module")
def root(shared_data):
    return shared_data / "benchmarks"


@pytest.fixture(scope="module")
def full(root):
    """Every check over every default benchmark (built once: about 5 s)."""
    return DecontamIndex.build(default_benchmarks(), DecontamParams(), root)


@pytest.fixture(scope="module")
def index(full):
    """The n-gram index alone, as lm-evaluation-harness checks."""
    return full.ngrams


def jsonl(path, row):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i == row:
                return json.loads(line)
    raise IndexError(row)


def bbh(root, task, i):
    return json.loads((root / "bbh" / f"{task}.json").read_text())["examples"][i]["input"]


# ---------------------------------------------------------------- pure helpers


def test_normalize_lowercases_and_deletes_punctuation_like_the_janitor():
    assert normalize("Janet’s DUCKS lay 16 eggs, per-day!\n  (Really?)") == [
        "janets",
        "ducks",
        "lay",
        "16",
        "eggs",
        "perday",
        "really",
    ]
    assert normalize("Janet's ducks") == normalize("janet’s Ducks.")


def test_ngrams_slide_and_short_text_is_one_ngram():
    toks = [str(i) for i in range(5)]
    assert ngrams(toks, 3) == ["0 1 2", "1 2 3", "2 3 4"]
    assert ngrams(toks, 5) == ["0 1 2 3 4"]
    assert ngrams(toks, 13) == ["0 1 2 3 4"]
    assert ngrams([], 13) == []


def test_number_words_read_as_digits():
    def digits(text):
        return " ".join(numbers_as_digits(text.split()))

    assert digits("she eats three eggs and twenty five apples") == "she eats 3 eggs and 25 apples"
    assert digits("two hundred five and one thousand twenty") == "205 and 1020"
    assert digits("one two three") == "1 2 3"  # a list of numbers stays a list
    assert digits("twentyfive ninety") == "25 90"
    assert canonical_tokens("Twenty-five $x^2$ ducks") == canonical_tokens("25 $x^2$ Ducks")


def test_ngram_hash_is_stable_across_processes():
    code = "from webscale_rl.udfs.decontam.ngrams import ngram_hash; print(ngram_hash('a b c'))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == ngram_hash("a b c")
    assert -(2**63) <= ngram_hash("a b c") < 2**63
    assert ngram_hash("a b c") != ngram_hash("a b d")


def test_index_has_every_default_benchmark(index, full):
    names = {name for name, _ in index.values()}
    assert names == {spec.name for spec in default_benchmarks()}
    assert {name for name, _ in full.near.labels} == names


# ---------------------------------------------------------------- planted items


def planted(root):
    """(QA pair, benchmark, item_id) for real items copied verbatim into a QA pair."""
    g0, g7 = jsonl(root / "gsm8k/test.jsonl", 0), jsonl(root / "gsm8k/test.jsonl", 7)
    m = jsonl(root / "math500/test.jsonl", 10)
    mm = jsonl(root / "mmlu_stem/test.jsonl", 100)
    he = jsonl(root / "humaneval/HumanEval.jsonl.gz", 0)
    date = bbh(root, "date_understanding", 3)
    return [
        ({"question": g0["question"], "answer": "18"}, "gsm8k", "0"),
        ({"question": g7["question"], "answer": g7["answer"]}, "gsm8k", "7"),
        ({"question": m["problem"], "answer": m["answer"]}, "math500", m["unique_id"]),
        ({"question": mm["question"], "answer": "B"}, "mmlu_stem", "100"),
        ({"question": he["prompt"], "answer": "def f(): ..."}, "humaneval", he["task_id"]),
        ({"question": date, "answer": "(E)"}, "bbh", "date_understanding/examples[3].input"),
    ]


BENIGN = [
    {
        "question": "A bakery sells loaves of rye bread for $4 each and muffins for $2 each. "
        "If Maria buys three loaves and five muffins, how much does she spend in total?",
        "answer": "$22",
    },
    {
        "question": "Which enzyme unwinds the double helix ahead of the replication fork "
        "during bacterial DNA replication, according to the article?",
        "answer": "Helicase",
    },
    {
        "question": "The city council approved a new bicycle lane along the river in 2019. "
        "How many kilometres long is the lane described in the report?",
        "answer": "12 kilometres",
    },
    {
        "question": "Write a Python function that returns the number of vowels in a string, "
        "ignoring case and treating y as a consonant.",
        "answer": "def count_vowels(s): return sum(c in 'aeiou' for c in s.lower())",
    },
    {
        "question": "In which year did the author say the village school first opened?",
        "answer": "1887",
    },
    {"question": "What is 17 times 23?", "answer": "391"},
]


def test_verbatim_items_are_found_with_benchmark_and_item(root, index):
    for qa, bench, item in planted(root):
        hit = check_qa(qa, index, N)
        assert hit is not None, (bench, item)
        assert (hit.benchmark, hit.item_id) == (bench, item)
        assert " ".join(normalize(hit.ngram)) == hit.ngram
        assert hit.ngram in " ".join(normalize(qa["question"] + " " + qa["answer"]))


def test_benign_questions_are_kept(index):
    for qa in BENIGN:
        assert check_qa(qa, index, N) is None, qa["question"]


def test_mixed_list_keeps_exactly_the_benign_pairs(root, index):
    pairs = [qa for qa, _, _ in planted(root)] + BENIGN
    kept = [qa for qa in pairs if check_qa(qa, index, N) is None]
    assert kept == BENIGN


def edits(question):
    words = question.split()
    return {
        "first word changed": " ".join(["Suppose", *words[1:]]),
        "last word changed": " ".join([*words[:-1], "tomorrow?"]),
        "upper case": question.upper(),
        "punctuation stripped": "".join(c for c in question if c.isalnum() or c.isspace()),
        "punctuation added": question.replace(" ", ", ", 3).replace(".", "!"),
        "prefixed": "Here is a problem from a blog post about chores. " + question,
    }


@pytest.mark.parametrize("which", range(5))
def test_lightly_edited_long_items_are_found(root, index, which):
    qa, bench, item = planted(root)[[0, 1, 2, 4, 5][which]]
    for name, question in edits(qa["question"]).items():
        hit = find_contamination(question, index, N)
        assert hit is not None, (bench, name)
        assert (hit.benchmark, hit.item_id) == (bench, item), name


def test_answer_copied_from_benchmark_is_found_through_question_plus_answer(root, index):
    g = jsonl(root / "gsm8k/test.jsonl", 42)
    qa = {"question": "How much money is left at the end?", "answer": g["answer"]}
    assert find_contamination(qa["question"], index, N) is None
    hit = check_qa(qa, index, N)
    assert hit is not None and (hit.benchmark, hit.item_id) == ("gsm8k", "42")


def test_edits_that_break_every_13_gram_are_not_found(root, index):
    words = jsonl(root / "gsm8k/test.jsonl", 0)["question"].split()
    # Replace every 12th word: no 13 consecutive original words survive.
    edited = " ".join("zzz" if i % 12 == 11 else w for i, w in enumerate(words))
    assert find_contamination(edited, index, N) is None


def test_short_questions_are_compared_whole(root, index):
    mm = jsonl(root / "mmlu_stem/test.jsonl", 7)
    short = mm["question"]
    assert len(normalize(short)) < N
    for text in (short, short.upper(), short.rstrip("?") + " ?!"):
        hit = find_contamination(text, index, N)
        assert hit is not None and (hit.benchmark, hit.item_id) == ("mmlu_stem", "7"), text
    # Whole means whole to the n-gram check: an added or changed word is another text.
    assert find_contamination("Quick quiz. " + short, index, N) is None
    assert find_contamination(short.replace("carbon", "nitrogen"), index, N) is None


def test_short_bbh_input_compared_whole(root, index):
    expr = bbh(root, "boolean_expressions", 0)
    assert len(normalize(expr)) < N
    hit = check_qa({"question": expr, "answer": "False"}, index, N)
    assert hit is not None and hit.benchmark == "bbh"
    assert hit.item_id.startswith("boolean_expressions/examples[")


def test_short_question_with_its_choices_matches_the_item(root, index):
    mm = jsonl(root / "mmlu_stem/test.jsonl", 7)
    # Every choice is shorter than 13 words, so only the question + choices join can match.
    assert all(len(normalize(c)) < N for c in mm["choices"])
    text = mm["question"] + " " + ", ".join(mm["choices"]) + "."
    hit = find_contamination(text, index, N)
    assert hit is not None and (hit.benchmark, hit.item_id) == ("mmlu_stem", "7")


# ---------------------------------------------------------------- containment and near matches


def test_short_item_inside_a_longer_question_is_contained(root, full):
    for row, lead in ((1, "Biology quiz:"), (7, "From the climate article: ")):
        short = jsonl(root / "mmlu_stem/test.jsonl", row)["question"]
        qa = {"question": f"{lead} {short} Answer briefly.", "answer": "B"}
        hit = full.find(qa)
        assert hit is not None, short
        assert (hit.benchmark, hit.item_id, hit.method) == ("mmlu_stem", str(row), "containment")
        assert hit.score == 1.0 and hit.matched == " ".join(canonical_tokens(short))
    g = jsonl(root / "gsm8k/test.jsonl", 1)["question"]
    hit = full.find({"question": f"My son asked me this: {g}", "answer": "3"})
    assert (hit.benchmark, hit.item_id, hit.method) == ("gsm8k", "1", "exact_ngram")


def test_short_generic_item_as_whole_sentences_of_the_question_is_contained(root, full):
    """Items too generic or short for the near index (an MMLU stem, an arithmetic prompt whose
    content is its symbols) are found when a lead-in and an instruction surround them."""
    stem = jsonl(root / "mmlu_stem/test.jsonl", 2363)["question"]
    sums = jsonl(root / "mmlu_stem/test.jsonl", 2462)["question"]
    assert stem == "Which of the following is a true statement?"
    assert sums == "−4 +  ( −3 )="
    assert not full.near.is_specific(canonical_tokens(stem))
    for row, item in ((2363, stem), (2462, sums)):
        qa = {"question": f"Here is a question from the quiz: {item} Give a short answer."}
        hit = full.find({**qa, "answer": "7"})
        assert hit is not None, item
        assert (hit.benchmark, hit.item_id, hit.method) == ("mmlu_stem", str(row), "containment")
        assert hit.score == 1.0 and hit.checked == "question"
    # The same words inside a sentence, or other symbols, are another question.
    kept = [
        "Which of the following is a true statement about the harbour tunnel?",
        "Here is a quiz: −4 + ( −3 ) × 2 = Give a short answer.",
        "Here is a quiz: 4 + 3 = Give a short answer.",
    ]
    for question in kept:
        assert full.find({"question": question, "answer": "7"}) is None, question


def test_whole_sentences_distinguish_items_by_their_brackets(root, full):
    a = bbh(root, "boolean_expressions", 0)
    assert a == "not ( True ) and ( True ) is"
    hit = full.find({"question": f"Logic warm-up. {a}?", "answer": "x"})
    assert hit.item_id == "boolean_expressions/examples[0].input", hit
    moved = "( not True ) and ( True ) is"  # the same words, brackets moved: in no benchmark
    assert full.find({"question": f"Logic warm-up. {moved}?", "answer": "x"}) is None


def test_answers_are_not_compared_with_sentences(root, full):
    rows = [json.loads(line) for line in open(root / "math500/test.jsonl")]
    assert "(a+5)(b+2)" in {r["answer"] for r in rows}
    # A generated answer may equal a benchmark's short answer: the answer column is not a
    # sentence field (decontam.near.sentence_fields), so only the question's sentences count.
    qa = {"question": "What factored form is printed on the poster?", "answer": "(a+5)(b+2)"}
    assert full.find(qa) is None
    params = DecontamParams(near=NearMatchParams(sentence_fields=["question", "answer"]))
    items = [("math500", "431", "(a+5)(b+2)", True)]
    assert DecontamIndex(items, params).find(qa).method == "containment"


def test_light_edits_are_near_matches_with_item_and_score(root, full):
    mbpp = [json.loads(line) for line in open(root / "mbpp/mbpp.jsonl")]
    texts = {r["task_id"]: r["text"] for r in mbpp}
    assert texts[14] == "Write a python function to find the volume of a triangular prism."
    assert texts[15] == "Write a function to split a string at lowercase letters."
    g = jsonl(root / "gsm8k/test.jsonl", 1)["question"]
    assert g.startswith("A robe takes 2 bolts of blue fiber")
    # Each breaks every 13-gram of its item (short items are compared whole), so only a near
    # match finds it.
    edits = {
        "one word substituted": (
            "Write a python function that finds the volume of a triangular prism.",
            "14",
        ),
        "two words dropped": ("python function to find volume of a triangular prism", "14"),
        "words substituted and added": (
            "Write a function that splits a string at its lowercase letters.",
            "15",
        ),
        "clauses reordered, number word": (
            "How many bolts in total does a robe take if it "
            "takes two bolts of blue fiber and half that much "
            "white fiber?",
            "1",
        ),
    }
    for name, (text, item) in edits.items():
        assert find_contamination(text, full.ngrams, N) is None, name
        hit = full.find({"question": text, "answer": "x"})
        assert hit is not None, name
        assert (hit.item_id, hit.method) == (item, "near_match"), (name, hit)
        assert 0.8 <= hit.score <= 1.0 and hit.checked == "question+answer", (name, hit)


def test_generic_phrasing_alone_is_kept(full):
    generic = [
        "Which of the following is a true statement about the harbour tunnel in the article?",
        "What is the name of the river that runs through the old town of Regensburg?",
        "Which of the following is NOT a source of income for the village bakery?",
        "Is the following sentence plausible? The mayor opened the new tram line in 2019.",
        "What is the value of x if the garden is 12 metres long and has an area of 60 m2?",
        "Write a function to count how many times each word occurs in a text file.",
    ]
    benign = [qa for qa in BENIGN if "vowels" not in qa["question"]]
    for question in generic + [qa["question"] for qa in benign]:
        assert full.find({"question": question, "answer": "x"}) is None, question
    # The n-gram check keeps this one; it is MBPP 667 ("Write a python function to count number
    # of vowels in the string.") reworded, and a near match removes it.
    vowels = next(qa for qa in BENIGN if "vowels" in qa["question"])
    hit = full.find(vowels)
    assert (hit.benchmark, hit.item_id, hit.method) == ("mbpp", "667", "near_match")


def test_answer_options_alone_are_not_items(root, full):
    choice = jsonl(root / "mmlu_stem/test.jsonl", 2126)["choices"][2]
    assert choice == "The Bohr model of the atom"
    qa = {"question": "Which scientist proposed the Bohr model of the atom in 1913?"}
    assert full.find({**qa, "answer": "Niels Bohr"}) is None


def test_near_match_off_is_the_ngram_check(root, full):
    params = DecontamParams(near=NearMatchParams(enabled=False))
    items = [("mmlu_stem", "1", jsonl(root / "mmlu_stem/test.jsonl", 1)["question"], True)]
    alone = DecontamIndex(items, params)
    assert alone.near is None and alone.metrics() == {"index_ngrams": 1}
    assert alone.find({"question": "Quiz: A frameshift mutation is created when"}) is None


def test_params_defaults_and_checks():
    p = DecontamParams()
    assert p.n == 13 and p.check_fields == [["question"], ["question", "answer"]]
    assert (p.near.enabled, p.near.threshold, p.near.min_words) == (True, 0.8, 4)
    assert p.near.sentence_fields == ["question"]
    spec = BenchmarkSpec(name="a", path="a.jsonl", fields=["q"])
    with pytest.raises(ValidationError, match="unique"):
        DecontamParams(benchmarks=[spec, spec])
    with pytest.raises(ValidationError):
        DecontamParams(check_fields=[[]])
    with pytest.raises(ValidationError):
        DecontamParams(nope=1)


def test_quality_floor_on_planted_and_clean_sets(full):
    """A floor under bench/decontam_quality.py's figures (bench/README.md), on a small sample:
    fails when a change to the checks loses planted items or removes clean questions."""
    from conftest import load_bench

    bench = load_bench("decontam_quality")
    rows = bench.planted(bench.sample_items(12, seed=1), seed=1)

    def removed(kind):
        chosen = [r for r in rows if r["kind"] == kind]
        return sum(full.find(r) is not None for r in chosen) / len(chosen)

    # Measured on 1,030 items per kind: 100%, 100%, 96.8%.
    assert removed("verbatim") == 1.0 and removed("embedded") == 1.0
    assert removed("edited") >= 0.92
    clean = bench.xquad_questions() + bench.generic_questions()
    assert sum(full.find(qa) is not None for qa in clean) <= 0.01 * len(clean)
