"""Benchmark decontamination: drop QA pairs that share a long n-gram with an eval benchmark.

Text is normalized the way lm-evaluation-harness's decontamination Janitor does it (lowercase,
punctuation deleted, split on whitespace) and compared as word 13-grams. A text shorter than n
tokens is compared whole: its whole token sequence is its one "n-gram", so a short benchmark
question (BBH, MMLU) matches a QA text that is the same question, and nothing else.

The index maps a stable 64-bit hash of each benchmark n-gram to the item it came from. It is built
once on the driver and broadcast, so it keeps no n-gram text: the matched n-gram is reported from
the checked text, which equals the benchmark's after normalization.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from webscale_rl.errors import ConfigError

DEFAULT_DATA_ROOT = "../shared/data/benchmarks"

# Everything that is neither a word character nor whitespace, plus "_" (which \w keeps). This is
# the Janitor's string.punctuation deletion made Unicode-aware, so "Janet’s" (curly quote, as
# in GSM8K) and "Janet's" normalize alike.
_PUNCT = re.compile(r"[^\w\s]|_")

_FORMATS = ("jsonl.gz", "jsonl", "json")
Format = Literal["jsonl", "json", "jsonl.gz"]


class Contamination(NamedTuple):
    benchmark: str
    item_id: str
    ngram: str


# hash -> (benchmark, item_id). One tuple per benchmark text, shared by all its n-grams, so the
# index pickles to a few bytes per entry.
NgramIndex = dict[int, tuple[str, str]]


def normalize(text: str) -> list[str]:
    """Lowercase, delete punctuation, split on whitespace (the Janitor's normalize_string)."""
    return _PUNCT.sub("", text.lower()).split()


def ngrams(tokens: Sequence[str], n: int) -> list[str]:
    """Word n-grams joined by one space; a sequence shorter than n is one "n-gram" of itself."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if len(tokens) < n:
        return [" ".join(tokens)] if tokens else []
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def ngram_hash(ngram: str) -> int:
    """Stable signed 64-bit hash (same on every executor and run; fits a Spark LongType)."""
    digest = hashlib.blake2b(ngram.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


class BenchmarkSpec(BaseModel):
    """One eval set: which file(s) and which fields hold the text that must not leak."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, description="Benchmark name, reported in rejects.")
    path: str = Field(
        ...,
        min_length=1,
        description="File or glob (e.g. `bbh/*.json`); a relative path resolves against the "
        "data root.",
    )
    fields: list[str] = Field(
        ...,
        min_length=1,
        description="Field paths whose text counts. Dots go into objects, `[]` expands a list: "
        "`question`, `choices[]`, `examples[].input`.",
    )
    format: Format | None = Field(
        None, description="jsonl, json or jsonl.gz; default: detected from the file suffix."
    )
    id_field: str | None = Field(
        None, description="Field naming an item (e.g. `task_id`); default: the row number."
    )

    @field_validator("fields")
    @classmethod
    def _paths_parse(cls, fields: list[str]) -> list[str]:
        for f in fields:
            _parse_path(f)
        return fields


def _bench(name: str, path: str, *fields: str, id_field: str | None = None) -> BenchmarkSpec:
    return BenchmarkSpec(name=name, path=path, fields=list(fields), id_field=id_field)


def default_benchmarks() -> list[BenchmarkSpec]:
    """Every eval set in shared/data/benchmarks, with the fields whose text is the test item."""
    return [
        _bench("gsm8k", "gsm8k/test.jsonl", "question", "answer"),
        _bench(
            "math500", "math500/test.jsonl", "problem", "solution", "answer", id_field="unique_id"
        ),
        _bench("math", "math_full_test/test.jsonl.gz", "problem", "solution", id_field="idx"),
        _bench("aime24", "aime24/test.jsonl", "problem", "solution", "answer", id_field="id"),
        _bench("amc23", "amc23/test.jsonl", "problem", "answer", id_field="id"),
        _bench("mmlu_stem", "mmlu_stem/test.jsonl", "question", "choices[]"),
        _bench("mmlu_pro", "mmlu_pro_sample300/test.jsonl", "question"),
        _bench("humaneval", "humaneval/HumanEval.jsonl.gz", "prompt", id_field="task_id"),
        _bench("mbpp", "mbpp/mbpp.jsonl", "text", id_field="task_id"),
        _bench("bbh", "bbh/*.json", "examples[].input"),
    ]


class DecontamParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = Field(13, ge=1, description="N-gram length in words (13, as GPT-3 and lm-eval).")
    benchmarks: list[BenchmarkSpec] = Field(
        default_factory=default_benchmarks,
        description="Eval sets to decontaminate against; default: all of shared/data/benchmarks.",
    )
    check_fields: list[list[str]] = Field(
        default_factory=lambda: [["question"], ["question", "answer"]],
        description="QA texts to check: each entry is a list of QA columns joined by one space. "
        "The question alone catches a short question compared whole; question + answer catches "
        "n-grams that run across the two.",
    )
    data_root: str = Field(
        DEFAULT_DATA_ROOT,
        description="Folder that relative benchmark paths resolve against (relative to the "
        "working directory of the driver).",
    )

    on_missing: Literal["error", "skip"] = Field(
        "error",
        description="A benchmark whose files are missing: `error` stops the stage before any work; "
        "`skip` leaves it out and says so in the stage notes and the `benchmarks_skipped` metric.",
    )

    @model_validator(mode="after")
    def _check(self) -> DecontamParams:
        names = [b.name for b in self.benchmarks]
        dupes = sorted({x for x in names if names.count(x) > 1})
        if dupes:
            raise ValueError(f"benchmark names must be unique; repeated: {dupes}")
        if not self.check_fields or any(not cols for cols in self.check_fields):
            raise ValueError("check_fields needs at least one non-empty list of QA columns")
        return self


# ---------------------------------------------------------------- loading benchmark files


def _parse_path(field: str) -> list[tuple[str, bool]]:
    """`examples[].input` -> [("examples", True), ("input", False)]; True means expand a list."""
    parts = []
    for seg in field.split("."):
        expand = seg.endswith("[]")
        key = seg[:-2] if expand else seg
        if not key or "[" in key or "]" in key:
            raise ValueError(f"bad field path {field!r}: use keys with dots and `[]` for lists")
        parts.append((key, expand))
    return parts


def _extract(value: Any, parts: list[tuple[str, bool]], where: str) -> Iterator[tuple[str, Any]]:
    """Yield (concrete path such as `examples[3].input`, leaf value) for one field path."""
    if not parts:
        yield where, value
        return
    (key, expand), rest = parts[0], parts[1:]
    if not isinstance(value, dict) or value.get(key) is None:
        return
    child = value[key]
    here = f"{where}.{key}" if where else key
    if not expand:
        yield from _extract(child, rest, here)
        return
    if not isinstance(child, list):
        return
    for i, elem in enumerate(child):
        yield from _extract(elem, rest, f"{here}[{i}]")


def _leaf_text(spec: BenchmarkSpec, field: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        kind = type(value).__name__
        raise ConfigError(
            f"benchmark {spec.name!r}: field {field!r} holds a {kind}, not text; "
            "use `[]` to expand a list (e.g. `choices[]`) or a dotted path into an object"
        )
    return str(value)


def _detect_format(spec: BenchmarkSpec, file: Path) -> str:
    if spec.format:
        return spec.format
    for fmt in _FORMATS:
        if file.name.endswith("." + fmt):
            return fmt
    raise ConfigError(
        f"benchmark {spec.name!r}: cannot tell the format of {file.name}; set format to one of "
        f"{', '.join(_FORMATS)}"
    )


def _read_rows(spec: BenchmarkSpec, file: Path) -> Iterator[dict]:
    fmt = _detect_format(spec, file)
    opener = gzip.open if fmt.endswith(".gz") else open
    with opener(file, "rt", encoding="utf-8") as fh:
        if fmt == "json":
            data = json.load(fh)
            # A .json file is a list of rows or one object (a BBH task file is one object).
            yield from data if isinstance(data, list) else [data]
            return
        for line in fh:
            if line.strip():
                yield json.loads(line)


def resolve_files(spec: BenchmarkSpec, data_root: str | Path = DEFAULT_DATA_ROOT) -> list[Path]:
    """The files of a benchmark, sorted; a clear error naming it when none exist."""
    path = Path(spec.path)
    full = path if path.is_absolute() else Path(data_root) / path
    files = sorted(Path(p) for p in glob.glob(str(full))) if glob.has_magic(str(full)) else [full]
    files = [f for f in files if f.is_file()]
    if not files:
        raise ConfigError(
            f"benchmark {spec.name!r}: no file at {full} (data root {Path(data_root).resolve()}); "
            "set decontam data_root or the benchmark path"
        )
    return files


def load_benchmark_items(
    spec: BenchmarkSpec, data_root: str | Path = DEFAULT_DATA_ROOT
) -> Iterator[tuple[str, str]]:
    """Yield (item_id, text) for every field value of every row.

    The item id is the row's `id_field` (else its row number), prefixed with the file's stem when
    the path is a glob; a text that came out of a list adds its concrete path, e.g.
    `boolean_expressions/examples[17].input` or `12/choices[2]`. A row with several fields also
    yields all of them joined by spaces, so n-grams that span fields (a short MMLU question and
    its choices) are caught too.
    """
    files = resolve_files(spec, data_root)
    is_glob = glob.has_magic(spec.path)
    paths = [(f, _parse_path(f)) for f in spec.fields]
    found = dict.fromkeys(spec.fields, False)
    for file in files:
        rows = list(_read_rows(spec, file))
        for i, row in enumerate(rows):
            row_id = _row_id(spec, row, i, len(rows))
            row_id = "/".join(p for p in (file.name.split(".")[0] if is_glob else "", row_id) if p)
            texts = []
            for field, parts in paths:
                expands = any(expand for _, expand in parts)
                for where, value in _extract(row, parts, ""):
                    text = _leaf_text(spec, field, value)
                    if text is None:
                        continue
                    found[field] = True
                    texts.append(text)
                    yield (f"{row_id}/{where}" if expands else row_id), text
            if len(spec.fields) > 1 and len(texts) > 1:
                yield row_id, " ".join(texts)
    missing = [f for f, ok in found.items() if not ok]
    if missing:
        raise ConfigError(
            f"benchmark {spec.name!r}: field(s) {missing} absent in every row of "
            f"{', '.join(str(f) for f in files[:3])}{' ...' if len(files) > 3 else ''}"
        )


def _row_id(spec: BenchmarkSpec, row: Any, index: int, n_rows: int) -> str:
    if spec.id_field and isinstance(row, dict) and row.get(spec.id_field) is not None:
        return str(row[spec.id_field])
    # A file that is one object (a BBH task) needs no row number: its file stem names it.
    return "" if n_rows == 1 and glob.has_magic(spec.path) else str(index)


# ---------------------------------------------------------------- index and lookup


def build_ngram_index(
    specs: Sequence[BenchmarkSpec], n: int = 13, data_root: str | Path = DEFAULT_DATA_ROOT
) -> NgramIndex:
    """hash of every benchmark n-gram -> (benchmark, item_id) of its first occurrence."""
    index: NgramIndex = {}
    for spec in specs:
        for item_id, text in load_benchmark_items(spec, data_root):
            value = (spec.name, item_id)
            for gram in ngrams(normalize(text), n):
                index.setdefault(ngram_hash(gram), value)
    return index


def find_contamination(text: str | None, index: Mapping[int, tuple[str, str]], n: int = 13):
    """The first n-gram of `text` found in the index as Contamination, else None."""
    if not text:
        return None
    for gram in ngrams(normalize(text), n):
        hit = index.get(ngram_hash(gram))
        if hit is not None:
            return Contamination(hit[0], hit[1], gram)
    return None


def qa_texts(qa: Mapping[str, Any], check_fields: Sequence[Sequence[str]]) -> list[str]:
    """The texts of one QA row to check: each entry's columns joined by one space."""
    texts = []
    for cols in check_fields:
        # Only strings count: a missing value may arrive from pandas as None or NaN.
        parts = [qa[c] for c in cols if isinstance(qa.get(c), str)]
        if parts:
            texts.append(" ".join(parts))
    return texts


def check_qa(
    qa: Mapping[str, Any],
    index: Mapping[int, tuple[str, str]],
    n: int = 13,
    check_fields: Sequence[Sequence[str]] = (("question",), ("question", "answer")),
) -> Contamination | None:
    """The first benchmark match in any checked text of a QA row, else None (keep it)."""
    for text in qa_texts(qa, check_fields):
        hit = find_contamination(text, index, n)
        if hit is not None:
            return hit
    return None
