#!/usr/bin/env python3
"""Write the default decontamination benchmarks where `decontam.data_root` points.

Runs on any machine with internet access and the `datasets` library; it needs neither Spark nor
this package. The layout is the one `udfs/decontam/benchmark_files.py:default_benchmarks` reads (the
layout of ../shared/data/benchmarks):

    pip install datasets
    python deploy/fetch_benchmarks.py --out ./benchmarks            # all ten
    python deploy/fetch_benchmarks.py --out ./benchmarks --only gsm8k,bbh

then copy the folder where the cluster reads it and point the config there, e.g.

    aws s3 cp --recursive ./benchmarks s3://BUCKET/benchmarks      # decontam.data_root=s3://...
    databricks fs cp -r ./benchmarks dbfs:/Volumes/main/webscale_rl/benchmarks

Sources are the Hugging Face Hub copies lm-evaluation-harness and the math evaluation harnesses
use. `mmlu_pro_sample300/test.jsonl` receives the whole MMLU-Pro test split (12k questions, a
superset of the 300-question sample in shared/data), with its options appended to each question
as in that sample.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

MMLU_STEM = (
    "abstract_algebra astronomy college_biology college_chemistry college_computer_science "
    "college_mathematics college_physics computer_security conceptual_physics "
    "electrical_engineering elementary_mathematics high_school_biology high_school_chemistry "
    "high_school_computer_science high_school_mathematics high_school_physics "
    "high_school_statistics machine_learning"
).split()
MATH_SUBJECTS = (
    "algebra counting_and_probability geometry intermediate_algebra number_theory prealgebra "
    "precalculus"
).split()
BBH_TASKS = (
    "boolean_expressions causal_judgement date_understanding disambiguation_qa dyck_languages "
    "formal_fallacies geometric_shapes hyperbaton logical_deduction_five_objects "
    "logical_deduction_seven_objects logical_deduction_three_objects movie_recommendation "
    "multistep_arithmetic_two navigate object_counting penguins_in_a_table "
    "reasoning_about_colored_objects ruin_names salient_translation_error_detection snarks "
    "sports_understanding temporal_sequences tracking_shuffled_objects_five_objects "
    "tracking_shuffled_objects_seven_objects tracking_shuffled_objects_three_objects web_of_lies "
    "word_sorting"
).split()


def _rows(load, name, config=None, split="test") -> list[dict]:
    return [dict(r) for r in load(name, config, split=split)]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def gsm8k(load, out: Path) -> None:
    _write_jsonl(out / "gsm8k/test.jsonl", _rows(load, "openai/gsm8k", "main"))


def math500(load, out: Path) -> None:
    _write_jsonl(out / "math500/test.jsonl", _rows(load, "HuggingFaceH4/MATH-500"))


def math(load, out: Path) -> None:
    rows = [r for s in MATH_SUBJECTS for r in _rows(load, "EleutherAI/hendrycks_math", s)]
    _write_jsonl(
        out / "math_full_test/test.jsonl.gz", [{**r, "idx": i} for i, r in enumerate(rows)]
    )


def aime24(load, out: Path) -> None:
    _write_jsonl(out / "aime24/test.jsonl", _rows(load, "HuggingFaceH4/aime_2024", split="train"))


def amc23(load, out: Path) -> None:
    rows = _rows(load, "math-ai/amc23")
    rows = [
        {"id": i, **r, "problem": r.get("problem") or r.get("question")} for i, r in enumerate(rows)
    ]
    _write_jsonl(out / "amc23/test.jsonl", rows)


def mmlu_stem(load, out: Path) -> None:
    rows = [
        {"question": r["question"], "type": s, "choices": r["choices"], "answer": r["answer"]}
        for s in MMLU_STEM
        for r in _rows(load, "cais/mmlu", s)
    ]
    _write_jsonl(out / "mmlu_stem/test.jsonl", rows)


def mmlu_pro(load, out: Path) -> None:
    rows = []
    for r in _rows(load, "TIGER-Lab/MMLU-Pro"):
        options = "".join(f"{chr(65 + i)}. {o}\n" for i, o in enumerate(r["options"]))
        rows.append(
            {"question": f"{r['question']}\n Options are:\n{options}", "answer": r["answer"]}
        )
    _write_jsonl(out / "mmlu_pro_sample300/test.jsonl", rows)


def humaneval(load, out: Path) -> None:
    _write_jsonl(out / "humaneval/HumanEval.jsonl.gz", _rows(load, "openai/openai_humaneval"))


def mbpp(load, out: Path) -> None:
    splits = ("train", "test", "validation", "prompt")
    rows = [r for s in splits for r in _rows(load, "google-research-datasets/mbpp", "full", s)]
    _write_jsonl(out / "mbpp/mbpp.jsonl", sorted(rows, key=lambda r: r["task_id"]))


def bbh(load, out: Path) -> None:
    (out / "bbh").mkdir(parents=True, exist_ok=True)
    for task in BBH_TASKS:
        examples = [
            {"input": r["input"], "target": r["target"]} for r in _rows(load, "lukaemon/bbh", task)
        ]
        (out / "bbh" / f"{task}.json").write_text(json.dumps({"examples": examples}), "utf-8")


# benchmark name (as in default_benchmarks) -> writer
BENCHMARKS = {
    "gsm8k": gsm8k,
    "math500": math500,
    "math": math,
    "aime24": aime24,
    "amc23": amc23,
    "mmlu_stem": mmlu_stem,
    "mmlu_pro": mmlu_pro,
    "humaneval": humaneval,
    "mbpp": mbpp,
    "bbh": bbh,
}


def fetch(out: str | Path, only: list[str] | None = None, load=None) -> list[str]:
    """Write the benchmarks (default: all) under `out`; `load` is datasets.load_dataset."""
    if load is None:
        try:
            from datasets import load_dataset as load
        except ImportError:
            raise SystemExit(
                "fetch_benchmarks: needs the `datasets` library: pip install datasets"
            ) from None
    names = only or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(
            f"fetch_benchmarks: unknown benchmark(s) {unknown}; known: {list(BENCHMARKS)}"
        )
    for name in names:
        print(f"fetching {name}", flush=True)
        BENCHMARKS[name](load, Path(out))
    return names


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", required=True, help="folder to write (decontam.data_root)")
    p.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    args = p.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    names = fetch(args.out, only)
    print(f"wrote {', '.join(names)} under {args.out}; set decontam.data_root={args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
