"""Benchmark files: which eval sets to decontaminate against, where they are, and their texts.

A benchmark is a file (or glob) plus the fields whose text must not leak. Files are found and
read through `webscale_rl.files`, the layer the inputs use, so a data root on s3://, abfss://,
dbfs:/ or a Unity Catalog volume works like a local folder. Everything here runs on the driver.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from webscale_rl import files
from webscale_rl.errors import ConfigError, WebscaleError

DEFAULT_DATA_ROOT = "../shared/data/benchmarks"

_FORMATS = ("jsonl.gz", "jsonl", "json")
Format = Literal["jsonl", "json", "jsonl.gz"]


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


# ---------------------------------------------------------------- field paths


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


# ---------------------------------------------------------------- finding and reading files


def _base_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def full_path(spec: BenchmarkSpec, data_root: str | os.PathLike = DEFAULT_DATA_ROOT) -> str:
    """The benchmark's path joined to the data root, unless it is absolute or a URI."""
    path, root = spec.path, str(data_root)
    if files.URI.match(path) or os.path.isabs(path):
        return path
    if files.URI.match(root):
        return root.rstrip("/") + "/" + path
    return os.path.join(root, path)


def resolve_files(
    spec: BenchmarkSpec, data_root: str | os.PathLike = DEFAULT_DATA_ROOT, spark=None
) -> list[str]:
    """The files of a benchmark, sorted; a clear error naming it when none exist.

    Local paths (and `file:`) are globbed here; URIs (s3://, abfss://, dbfs:/, ...) through
    Hadoop's FileSystem with the active Spark session, as the inputs are.
    """
    full = full_path(spec, data_root)
    if files.is_local(full):
        local = files.local_path(full)
        found = sorted(glob.glob(local)) if glob.has_magic(local) else [local]
        found = [f for f in found if os.path.isfile(f)]
    else:
        found = _expand_remote(spec, full, spark)
    if not found:
        raise ConfigError(
            f"benchmark {spec.name!r}: no file at {full} (data root "
            f"{_shown_root(data_root)}); set decontam.data_root or the benchmark path, or "
            "fetch the files (deploy/README.md, 'Benchmark files')"
        )
    return found


def _shown_root(data_root: str | os.PathLike) -> str:
    root = str(data_root)
    return root if files.URI.match(root) else os.path.abspath(root)


def _expand_remote(spec: BenchmarkSpec, path: str, spark) -> list[str]:
    if spark is None:
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
    if spark is None:
        raise ConfigError(f"benchmark {spec.name!r}: reading {path} needs a Spark session")
    try:
        return files.expand(spark, [path])
    except WebscaleError:
        return []


def _detect_format(spec: BenchmarkSpec, file: str) -> str:
    if spec.format:
        return spec.format
    name = _base_name(file)
    for fmt in _FORMATS:
        if name.endswith("." + fmt):
            return fmt
    raise ConfigError(
        f"benchmark {spec.name!r}: cannot tell the format of {name}; set format to one of "
        f"{', '.join(_FORMATS)}"
    )


def _read_rows(spec: BenchmarkSpec, file: str) -> Iterator[dict]:
    fmt = _detect_format(spec, file)
    with files.open_binary(file) as raw:
        data = raw.read()  # benchmark files are small (MBs): one read, also for object stores
    if data[:2] == b"\x1f\x8b":  # by content: pyarrow's object-store streams may gunzip already
        data = gzip.decompress(data)
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    if fmt == "json":
        loaded = json.load(text)
        # A .json file is a list of rows or one object (a BBH task file is one object).
        yield from loaded if isinstance(loaded, list) else [loaded]
        return
    for line in text:
        if line.strip():
            yield json.loads(line)


def missing_files(
    specs: Sequence[BenchmarkSpec], data_root: str | os.PathLike = DEFAULT_DATA_ROOT, spark=None
) -> dict[str, str]:
    """Benchmark name -> error message, for every benchmark whose files are missing."""
    missing = {}
    for spec in specs:
        try:
            resolve_files(spec, data_root, spark)
        except ConfigError as err:
            missing[spec.name] = str(err)
    return missing


def load_benchmark_items(
    spec: BenchmarkSpec, data_root: str | os.PathLike = DEFAULT_DATA_ROOT, spark=None
) -> Iterator[tuple[str, str]]:
    """Yield (item_id, text) for every field value of every row.

    The item id is the row's `id_field` (else its row number), prefixed with the file's stem when
    the path is a glob; a text that came out of a list adds its concrete path, e.g.
    `boolean_expressions/examples[17].input` or `12/choices[2]`. A row with several fields also
    yields all of them joined by spaces, so n-grams that span fields (a short MMLU question and
    its choices) are caught too.
    """
    for item_id, text, _ in benchmark_texts(spec, data_root, spark):
        yield item_id, text


def benchmark_texts(
    spec: BenchmarkSpec, data_root: str | os.PathLike = DEFAULT_DATA_ROOT, spark=None
) -> Iterator[tuple[str, str, bool]]:
    """`load_benchmark_items` with a flag: False for one element of a list in a row that has
    other fields too (an MMLU choice). Such a text is an answer option, not a test item: a QA
    text may contain "The Bohr model of the atom" without holding the question."""
    found_files = resolve_files(spec, data_root, spark)
    is_glob = glob.has_magic(spec.path)
    paths = [(f, _parse_path(f)) for f in spec.fields]
    found = dict.fromkeys(spec.fields, False)
    for file in found_files:
        rows = list(_read_rows(spec, file))
        stem = _base_name(file).split(".")[0] if is_glob else ""
        for i, row in enumerate(rows):
            row_id = "/".join(p for p in (stem, _row_id(spec, row, i, len(rows))) if p)
            texts = []
            for field, parts in paths:
                expands = any(expand for _, expand in parts)
                for where, value in _extract(row, parts, ""):
                    text = _leaf_text(spec, field, value)
                    if text is None:
                        continue
                    found[field] = True
                    texts.append(text)
                    whole = not (expands and len(spec.fields) > 1)
                    yield (f"{row_id}/{where}" if expands else row_id), text, whole
            if len(spec.fields) > 1 and len(texts) > 1:
                yield row_id, " ".join(texts), True
    missing = [f for f, ok in found.items() if not ok]
    if missing:
        shown = ", ".join(found_files[:3]) + (" ..." if len(found_files) > 3 else "")
        raise ConfigError(
            f"benchmark {spec.name!r}: field(s) {missing} absent in every row of {shown}"
        )


def _row_id(spec: BenchmarkSpec, row: Any, index: int, n_rows: int) -> str:
    if spec.id_field and isinstance(row, dict) and row.get(spec.id_field) is not None:
        return str(row[spec.id_field])
    # A file that is one object (a BBH task) needs no row number: its file stem names it.
    return "" if n_rows == 1 and glob.has_magic(spec.path) else str(index)
