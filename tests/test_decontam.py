"""Decontamination against the real eval sets in shared/data/benchmarks.

Benchmark items are read straight from the files here (not through the module's loader), planted
into QA pairs verbatim or lightly edited, and must be found with the right benchmark and item;
benign questions written for this test must be kept.
"""

import gzip
import json
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from webscale_rl.errors import ConfigError
from webscale_rl.udfs.decontam import (
    BenchmarkSpec,
    DecontamParams,
    build_ngram_index,
    check_qa,
    default_benchmarks,
    find_contamination,
    load_benchmark_items,
    ngram_hash,
    ngrams,
    normalize,
)

N = 13


@pytest.fixture(scope="module")
def root(shared_data):
    return shared_data / "benchmarks"


@pytest.fixture(scope="module")
def index(root):
    return build_ngram_index(default_benchmarks(), N, root)


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


def test_ngram_hash_is_stable_across_processes():
    code = "from webscale_rl.udfs.decontam import ngram_hash; print(ngram_hash('a b c'))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == ngram_hash("a b c")
    assert -(2**63) <= ngram_hash("a b c") < 2**63
    assert ngram_hash("a b c") != ngram_hash("a b d")


# ---------------------------------------------------------------- default specs load


def test_default_benchmarks_cover_every_shared_set(root):
    covered = {spec.path.split("/")[0] for spec in default_benchmarks()}
    assert covered == {p.name for p in root.iterdir() if p.is_dir()}


def test_index_has_every_default_benchmark(index):
    names = {name for name, _ in index.values()}
    assert names == {spec.name for spec in default_benchmarks()}


def test_bbh_items_are_named_by_task_and_example(root):
    spec = next(s for s in default_benchmarks() if s.name == "bbh")
    items = dict(load_benchmark_items(spec, root))
    key = "date_understanding/examples[3].input"
    assert items[key] == bbh(root, "date_understanding", 3)
    assert len(items) == sum(
        len(json.loads(f.read_text())["examples"]) for f in (root / "bbh").glob("*.json")
    )


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
    # Whole means whole: an added or changed word is another text.
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


# ---------------------------------------------------------------- specs and errors


def test_missing_file_names_the_benchmark(tmp_path):
    spec = BenchmarkSpec(name="nosuch", path="nosuch/test.jsonl", fields=["question"])
    with pytest.raises(ConfigError, match="nosuch.*no file"):
        list(load_benchmark_items(spec, tmp_path))
    glob_spec = BenchmarkSpec(name="globbed", path="none/*.json", fields=["x"])
    with pytest.raises(ConfigError, match="globbed"):
        build_ngram_index([glob_spec], N, tmp_path)


def test_field_absent_in_every_row_names_benchmark_and_field(tmp_path):
    (tmp_path / "b.jsonl").write_text('{"question": "a"}\n{"question": "b"}\n')
    spec = BenchmarkSpec(name="mine", path="b.jsonl", fields=["question", "problem"])
    with pytest.raises(ConfigError, match=r"mine.*problem"):
        list(load_benchmark_items(spec, tmp_path))


def test_list_field_without_brackets_is_an_error(tmp_path):
    (tmp_path / "b.jsonl").write_text('{"choices": ["x", "y"]}\n')
    spec = BenchmarkSpec(name="mine", path="b.jsonl", fields=["choices"])
    with pytest.raises(ConfigError, match=r"choices\[\]"):
        list(load_benchmark_items(spec, tmp_path))


def test_bad_field_path_and_unknown_format_are_rejected(tmp_path):
    with pytest.raises(ValidationError):
        BenchmarkSpec(name="x", path="a.jsonl", fields=["a[0].b"])
    (tmp_path / "a.csv").write_text("q\n")
    with pytest.raises(ConfigError, match="format"):
        list(load_benchmark_items(BenchmarkSpec(name="x", path="a.csv", fields=["q"]), tmp_path))


def test_formats_nested_paths_and_ids(tmp_path):
    rows = [{"id": "A1", "q": {"text": "alpha"}, "opts": ["one", "two"]}, {"q": {"text": "beta"}}]
    with gzip.open(tmp_path / "r.jsonl.gz", "wt") as fh:
        fh.write("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "t1.json").write_text(json.dumps({"examples": [{"input": "x y"}]}))
    (tmp_path / "sub" / "t2.json").write_text(json.dumps([{"input": "z"}]))

    spec = BenchmarkSpec(name="r", path="r.jsonl.gz", fields=["q.text", "opts[]"], id_field="id")
    assert list(load_benchmark_items(spec, tmp_path)) == [
        ("A1", "alpha"),
        ("A1/opts[0]", "one"),
        ("A1/opts[1]", "two"),
        ("A1", "alpha one two"),
        ("1", "beta"),
    ]
    t1 = BenchmarkSpec(name="t", path="sub/t1.json", fields=["examples[].input"])
    assert list(load_benchmark_items(t1, tmp_path)) == [("0/examples[0].input", "x y")]
    t2 = BenchmarkSpec(name="t", path="sub/t2.json", fields=["input"])
    assert list(load_benchmark_items(t2, tmp_path)) == [("0", "z")]
    # An absolute path ignores the data root.
    absolute = BenchmarkSpec(name="t", path=str(tmp_path / "sub/t2.json"), fields=["input"])
    assert list(load_benchmark_items(absolute, "/nonexistent")) == [("0", "z")]


def test_relative_data_root_resolves_against_working_directory(tmp_path, monkeypatch):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "b.jsonl").write_text('{"question": "what is up"}\n')
    monkeypatch.chdir(tmp_path)
    params = DecontamParams(
        data_root="bench",
        benchmarks=[BenchmarkSpec(name="b", path="b.jsonl", fields=["question"])],
    )
    index = build_ngram_index(params.benchmarks, params.n, params.data_root)
    assert find_contamination("What is up?", index, params.n) == ("b", "0", "what is up")


def test_params_defaults_and_checks():
    p = DecontamParams()
    assert p.n == 13 and p.check_fields == [["question"], ["question", "answer"]]
    spec = BenchmarkSpec(name="a", path="a.jsonl", fields=["q"])
    with pytest.raises(ValidationError, match="unique"):
        DecontamParams(benchmarks=[spec, spec])
    with pytest.raises(ValidationError):
        DecontamParams(check_fields=[[]])
    with pytest.raises(ValidationError):
        DecontamParams(nope=1)
