"""Benchmark files: specs, field paths, formats, ids, the filesystem layer and the fetch script."""

import gzip
import importlib.util
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from webscale_rl import files
from webscale_rl.errors import ConfigError
from webscale_rl.udfs.decontam.benchmark_files import (
    BenchmarkSpec,
    benchmark_texts,
    default_benchmarks,
    load_benchmark_items,
    missing_files,
    resolve_files,
)
from webscale_rl.udfs.decontam.ngrams import (
    DecontamParams,
    build_ngram_index,
    find_contamination,
)

N = 13
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def root(shared_data):
    return shared_data / "benchmarks"


def bbh(root, task, i):
    return json.loads((root / "bbh" / f"{task}.json").read_text())["examples"][i]["input"]


# ---------------------------------------------------------------- default specs load


def test_default_benchmarks_cover_every_shared_set(root):
    covered = {spec.path.split("/")[0] for spec in default_benchmarks()}
    assert covered == {p.name for p in root.iterdir() if p.is_dir()}


def test_bbh_items_are_named_by_task_and_example(root):
    spec = next(s for s in default_benchmarks() if s.name == "bbh")
    items = dict(load_benchmark_items(spec, root))
    key = "date_understanding/examples[3].input"
    assert items[key] == bbh(root, "date_understanding", 3)
    assert len(items) == sum(
        len(json.loads(f.read_text())["examples"]) for f in (root / "bbh").glob("*.json")
    )


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


def test_choices_are_answer_options_not_items(tmp_path):
    (tmp_path / "m.jsonl").write_text(json.dumps({"question": "q", "choices": ["a", "b"]}) + "\n")
    spec = BenchmarkSpec(name="m", path="m.jsonl", fields=["question", "choices[]"])
    assert list(benchmark_texts(spec, tmp_path)) == [
        ("0", "q", True),
        ("0/choices[0]", "a", False),
        ("0/choices[1]", "b", False),
        ("0", "q a b", True),
    ]
    # A list that is the rows themselves (BBH examples) holds the items.
    (tmp_path / "t.json").write_text(json.dumps({"examples": [{"input": "x"}]}))
    one = BenchmarkSpec(name="t", path="t.json", fields=["examples[].input"])
    assert list(benchmark_texts(one, tmp_path)) == [("0/examples[0].input", "x", True)]


def test_missing_files_names_every_missing_benchmark(tmp_path):
    (tmp_path / "here.jsonl").write_text('{"q": "x"}\n')
    specs = [
        BenchmarkSpec(name="here", path="here.jsonl", fields=["q"]),
        BenchmarkSpec(name="gone", path="gone/test.jsonl", fields=["q"]),
        BenchmarkSpec(name="globbed", path="none/*.json", fields=["q"]),
    ]
    missing = missing_files(specs, tmp_path)
    assert list(missing) == ["gone", "globbed"]
    assert str(tmp_path / "gone" / "test.jsonl") in missing["gone"]


def test_uri_data_root_is_read_through_hadoop_filesystem(spark, tmp_path, monkeypatch):
    (tmp_path / "bbh").mkdir()
    for task in ("a", "b"):
        data = {"examples": [{"input": f"{task} one"}, {"input": f"{task} two"}]}
        (tmp_path / "bbh" / f"{task}.json").write_text(json.dumps(data))
    with gzip.open(tmp_path / "r.jsonl.gz", "wt") as fh:
        fh.write('{"q": "zipped"}\n')
    expanded = []
    real_expand = files.expand

    def spy(session, patterns):
        expanded.extend(patterns)
        return real_expand(session, patterns)

    # file:// stands in for s3:// or abfss://: the same Hadoop FileSystem calls list the glob.
    monkeypatch.setattr(files, "is_local", lambda path: False)
    monkeypatch.setattr(files, "expand", spy)
    root = tmp_path.as_uri()
    spec = BenchmarkSpec(name="bbh", path="bbh/*.json", fields=["examples[].input"])
    found = resolve_files(spec, root, spark)
    assert [f.rsplit("/", 1)[1] for f in found] == ["a.json", "b.json"]
    assert all(f.startswith("file:") for f in found) and expanded == [f"{root}/bbh/*.json"]
    items = dict(load_benchmark_items(spec, root, spark))
    assert items["b/examples[1].input"] == "b two"
    zipped = BenchmarkSpec(name="r", path="r.jsonl.gz", fields=["q"])
    assert list(load_benchmark_items(zipped, root, spark)) == [("0", "zipped")]
    gone = BenchmarkSpec(name="gone", path="gone/*.json", fields=["q"])
    with pytest.raises(ConfigError, match=f"gone.*no file at {root}/gone"):
        resolve_files(gone, root, spark)


def fake_hub(name, config=None, split="test"):
    """Two rows shaped like each Hub dataset deploy/fetch_benchmarks.py reads."""
    if name == "lukaemon/bbh":
        return [{"input": f"{config} {i}", "target": "A"} for i in range(2)]
    row = {
        "openai/gsm8k": {"question": "q", "answer": "a #### 1"},
        "HuggingFaceH4/MATH-500": {
            "problem": "p",
            "solution": "s",
            "answer": "1",
            "unique_id": "u",
        },
        "EleutherAI/hendrycks_math": {"problem": "p", "solution": "s", "level": "1", "type": "t"},
        "HuggingFaceH4/aime_2024": {"id": 60, "problem": "p", "solution": "s", "answer": "1"},
        "math-ai/amc23": {"question": "p", "answer": 1.0},
        "cais/mmlu": {"question": "q", "subject": config, "choices": ["a", "b"], "answer": 0},
        "TIGER-Lab/MMLU-Pro": {"question": "q", "options": ["x", "y"], "answer": "A"},
        "openai/openai_humaneval": {"task_id": "HumanEval/0", "prompt": "def f():"},
        "google-research-datasets/mbpp": {"task_id": 1, "text": "Write a function."},
    }[name]
    return [
        {**row, "task_id": row["task_id"] + i} if name.endswith("mbpp") else row for i in (0, 1)
    ]


def test_fetch_script_writes_what_default_benchmarks_read(tmp_path):
    path = REPO / "deploy" / "fetch_benchmarks.py"
    spec = importlib.util.spec_from_file_location("fetch_benchmarks", path)
    fetch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch)

    names = fetch.fetch(tmp_path, load=fake_hub)
    assert names == [b.name for b in default_benchmarks()]
    assert missing_files(default_benchmarks(), tmp_path) == {}
    for bench in default_benchmarks():
        assert list(load_benchmark_items(bench, tmp_path)), bench.name
    pro = json.loads((tmp_path / "mmlu_pro_sample300/test.jsonl").read_text().splitlines()[0])
    assert pro["question"] == "q\n Options are:\nA. x\nB. y\n"
    amc = json.loads((tmp_path / "amc23/test.jsonl").read_text().splitlines()[1])
    assert (amc["id"], amc["problem"]) == (1, "p")
    assert len(list((tmp_path / "bbh").glob("*.json"))) == 27
    with pytest.raises(SystemExit, match="unknown"):
        fetch.fetch(tmp_path, only=["nope"], load=fake_hub)
