"""Ingest: WARC / WET / JSONL / Parquet / Delta input -> the `documents` Delta table.

Parsing is distributed: the driver only lists files and checks their format; each Spark task
opens its files and parses them. Unreadable records go to `rejects` with a reason. Re-ingesting
the same input adds no rows (ids are deterministic and the commit is insert-only), and an input
already ingested and unchanged since (same size and modification time, or Delta version) is not
read at all: udfs/read/ingested_inputs.py records each input once its rows are committed.
"""

from __future__ import annotations

import json

from webscale_rl import tables
from webscale_rl.config import Config
from webscale_rl.errors import WebscaleError
from webscale_rl.files import expand, format_from_name, has_delta_log, is_local, read_head
from webscale_rl.jobs.base import StageResult, stage_main_for
from webscale_rl.schemas.tables import DOCUMENTS
from webscale_rl.stages import declared
from webscale_rl.udfs.read import ingested_inputs

DECL = declared("ingest")  # name, tables, key: webscale_rl/stages.py
NAME, INPUT, OUTPUT, KEY = DECL.name, DECL.input, DECL.output, DECL.key

RAW_DDL = (
    "row_id string, source string, source_format string, source_id string, url string, "
    "warc_date string, text string, reject_reason string, reject_detail string"
)
FILE_FORMATS = ("warc", "wet", "jsonl")


def sample_corpus_path() -> str:
    from importlib.resources import files

    return str(files("webscale_rl") / "resources" / "sample_corpus" / "sample_corpus.jsonl")


NO_INPUT = (
    "no input to ingest: pass --input PATH (a file, folder or glob; comma-separated for several), "
    "e.g. `webscale-rl run --input 'data/*.warc.gz'`, or set ingest.input in the config "
    "(`make demo` passes the sample corpus)"
)


def input_patterns(cfg: Config) -> list[str]:
    value = cfg.ingest.input
    patterns = [value] if isinstance(value, str) else list(value or [])
    patterns = [p for p in patterns if p.strip()]
    if not patterns:
        raise WebscaleError(NO_INPUT)
    return patterns


def detect_format(path: str) -> str | None:
    from webscale_rl.udfs.read.input_format import sniff_format

    return sniff_format(read_head(path))


def resolve_format(spark, cfg: Config, patterns: list[str]) -> tuple[str, list[str]]:
    """The input's format and its files, checked before any work starts.

    With `auto` the format comes from each file's name; only a file whose name does not tell
    (`part-0001`, `data.txt`) has its first bytes read, so a remote input of many files costs
    no round trip per file on the driver. A declared format is checked against the contents of
    local files only.
    """
    declared = cfg.ingest.format
    if declared == "delta" or (
        declared == "auto" and all(has_delta_log(spark, p) for p in patterns)
    ):
        return "delta", patterns
    files = expand(spark, patterns)
    if declared == "parquet":
        return "parquet", files
    found: dict[str, str] = {}
    for f in files:
        named = format_from_name(f) if declared == "auto" else None
        if named is not None or (not is_local(f) and declared != "auto"):
            # the name (or, for a remote object, the declaration) says it: no extra round trip
            found[f] = named or declared
            continue
        fmt = detect_format(f)
        if fmt is None:
            raise WebscaleError(
                f"{f} is not a supported input (WARC, WET, JSON lines or Parquet); it is empty or "
                "its first bytes match none of them"
            )
        if declared != "auto" and fmt != declared and not (declared == "warc" and fmt == "wet"):
            raise WebscaleError(f"{f} was declared {declared} but its contents look like {fmt}")
        found[f] = declared if declared != "auto" else fmt
    kinds = sorted(set(found.values()))
    if len(kinds) > 1:
        raise WebscaleError(f"inputs mix formats {kinds}: ingest one format per run (use --format)")
    return kinds[0], files


def _warc_reader(params):
    def parse(batches):
        from webscale_rl.files import open_binary
        from webscale_rl.udfs.frames import rows_frame
        from webscale_rl.udfs.read.warc import iter_records

        for batch in batches:
            for path, fmt in zip(batch["path"], batch["format"], strict=True):
                rows = []
                try:
                    with open_binary(path) as stream:
                        for rec in iter_records(stream, path, params):
                            rows.append(
                                {
                                    # record ids repeat in real files: the ordinal keeps rows unique
                                    "row_id": f"{path}#{len(rows)}:{rec.get('record_id')}",
                                    "source": path,
                                    "source_format": fmt,
                                    "source_id": rec.get("record_id"),
                                    "url": rec.get("url"),
                                    "warc_date": rec.get("warc_date"),
                                    "text": rec.get("text"),
                                    "reject_reason": rec.get("reject_reason"),
                                    "reject_detail": rec.get("reject_detail"),
                                }
                            )
                except OSError as err:  # unreadable file: one reject row, the job goes on
                    rows.append(_file_reject(path, fmt, "unreadable_file", str(err)[:500]))
                if not rows:  # an empty file is accounted for, not silently nothing
                    rows.append(_file_reject(path, fmt, "empty_file", "no WARC/WET records"))
                yield rows_frame(rows, RAW_DDL_COLUMNS)

    return parse


def _file_reject(path: str, fmt: str, reason: str, detail: str) -> dict:
    return {
        "row_id": f"{path}#file",
        "source": path,
        "source_format": fmt,
        "reject_reason": reason,
        "reject_detail": detail,
    }


def _jsonl_parser(cfg: Config):
    text_field, url_field, id_field = (
        cfg.ingest.text_field,
        cfg.ingest.url_field,
        cfg.ingest.id_field,
    )

    def parse(batches):
        from webscale_rl.ids import stable_hash
        from webscale_rl.udfs.frames import rows_frame

        for batch in batches:
            rows = []
            for raw, path in zip(batch["value"], batch["path"], strict=True):
                # bytes: a line that is not valid UTF-8 must not fail the task (Arrow would)
                line = raw.decode("utf-8", errors="replace")
                row_id = f"{path}:{stable_hash(line, length=20)}"
                rec = {"row_id": row_id, "source": path, "source_format": "jsonl"}
                try:
                    obj = json.loads(line)
                except ValueError as err:
                    rec.update(reject_reason="malformed_json", reject_detail=str(err)[:300])
                    rows.append(rec)
                    continue
                if not isinstance(obj, dict):
                    rec.update(
                        reject_reason="malformed_json",
                        reject_detail="a JSON line must be an object",
                    )
                    rows.append(rec)
                    continue
                sid = obj.get(id_field)
                rec.update(
                    source_id=None if sid is None else _storable(str(sid)),
                    url=_storable(obj.get(url_field)),
                    text=_storable(obj.get(text_field)),
                )
                if text_field not in obj or obj[text_field] is None:
                    rec.update(
                        reject_reason="missing_text", reject_detail=f"no {text_field!r} field"
                    )
                rows.append(rec)
            yield rows_frame(rows, RAW_DDL_COLUMNS)

    return parse


RAW_DDL_COLUMNS = [c.split()[0] for c in RAW_DDL.split(", ")]


def _storable(value):
    """A JSON string as a column can hold it: JSON may escape lone surrogates (\\ud800), which
    no UTF-8 string can store and which would fail the whole Spark task; they become '?'."""
    if not isinstance(value, str):
        return None
    return value.encode("utf-8", errors="replace").decode("utf-8")


def raw_records(spark, cfg: Config, fmt: str, files: list[str], versions=None):
    """A DataFrame of raw records (RAW_DDL) for any supported format; `versions` pins Delta
    inputs (path -> version)."""
    from pyspark.sql import functions as F

    if fmt in ("warc", "wet"):
        paths = spark.createDataFrame([(f, fmt) for f in files], "path string, format string")
        n_tasks = max(1, len(files) // cfg.ingest.files_per_task)
        return paths.repartition(n_tasks, "path").mapInPandas(
            _warc_reader(cfg.ingest.warc), RAW_DDL
        )
    if fmt == "jsonl":
        lines = spark.read.text(files).select(
            F.col("value"), F.col("_metadata.file_path").alias("path")
        )
        lines = lines.where(F.length(F.trim("value")) > 0)
        # Spark's text reader keeps invalid UTF-8 bytes; hand the parser bytes, not strings
        lines = lines.withColumn("value", F.col("value").cast("binary"))
        return lines.mapInPandas(_jsonl_parser(cfg), RAW_DDL)
    if fmt == "parquet":
        return _table_records(spark.read.parquet(*files), cfg, fmt, files)
    return _delta_records(spark, cfg, files, versions or {})


def _delta_records(spark, cfg: Config, paths: list[str], versions: dict[str, int]):
    """Every Delta table named, each at the version ingest stamped (`versions`), so a commit to
    the input while we read is left for the next run rather than read unrecorded."""
    from functools import reduce

    parts = []
    for path in paths:
        reader = spark.read.format("delta")
        if path in versions:
            reader = reader.option("versionAsOf", versions[path])
        parts.append(_table_records(reader.load(path), cfg, "delta", [path]))
    return reduce(lambda a, b: a.unionByName(b), parts)


def _table_records(df, cfg: Config, fmt: str, files: list[str]):
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    ing = cfg.ingest
    fields = {f.name: f.dataType for f in df.schema.fields}
    if ing.text_field not in fields:
        raise WebscaleError(
            f"input has no {ing.text_field!r} column (columns: {', '.join(fields)}); "
            "set ingest.text_field"
        )
    if fields[ing.text_field] != StringType():
        raise WebscaleError(
            f"input column {ing.text_field!r} has type {fields[ing.text_field].simpleString()}, "
            "expected string"
        )
    url = (
        F.col(ing.url_field).cast("string")
        if ing.url_field in fields
        else F.lit(None).cast("string")
    )
    sid = (
        F.col(ing.id_field).cast("string") if ing.id_field in fields else F.lit(None).cast("string")
    )
    text = F.col(ing.text_field)
    source = F.lit(files[0]) if fmt == "delta" else F.col("_metadata.file_path")
    row_id = F.concat_ws(
        ":", source, F.coalesce(sid, F.sha2(F.concat_ws("\u241f", url, text), 256).substr(1, 20))
    )
    return df.select(
        row_id.alias("row_id"),
        source.alias("source"),
        F.lit(fmt).alias("source_format"),
        sid.alias("source_id"),
        url.alias("url"),
        F.lit(None).cast("string").alias("warc_date"),
        text.alias("text"),
        F.when(text.isNull(), F.lit("missing_text")).alias("reject_reason"),
        F.when(text.isNull(), F.lit(f"null {ing.text_field!r}")).alias("reject_detail"),
    )


def documents_schema_ddl() -> str:
    fields = [f"`{f.name}` {f.dataType.simpleString()}" for f in DOCUMENTS.fields]
    return ", ".join(
        fields + ["`_reject_reason` string", "`_reject_detail` string", "`_row_id` string"]
    )


def input_stamps(spark, fmt: str, files: list[str]) -> dict[str, str]:
    if fmt == "delta":
        return ingested_inputs.delta_stamps(spark, files)
    return ingested_inputs.file_stamps(spark, files)


def retries_own_rejects(spark, cfg: Config) -> bool:
    """Whether `retry_rejects` names a reason ingest has rejects for: redoing those means reading
    their records again, so nothing is skipped then."""
    from pyspark.sql import functions as F

    ref = tables.table_ref(cfg, "rejects")
    if not cfg.retry_rejects or not tables.exists(spark, ref):
        return False
    mine = (F.col("stage") == NAME) & F.col("reason").isin(list(cfg.retry_rejects))
    return not tables.read(spark, ref).where(mine).isEmpty()


def inputs_to_read(spark, cfg: Config, fmt: str, files: list[str]):
    """(inputs this run reads, stamps of every input): an input recorded as ingested with the
    same stamp and options is skipped before any per-record work."""
    stamps = input_stamps(spark, fmt, files)
    if retries_own_rejects(spark, cfg):
        return list(files), stamps
    done = ingested_inputs.already_ingested(spark, cfg, stamps)
    return [f for f in files if f not in done], stamps


def ingest_inputs(spark, cfg: Config, fmt: str, todo: list[str], stamps, out_ref: str):
    """Read, convert and commit `todo`, then record them as ingested; the commit's counts."""
    versions = (
        {p: ingested_inputs.stamp_version(stamps[p]) for p in todo if p in stamps}
        if fmt == "delta"
        else None
    )
    raw = raw_records(spark, cfg, fmt, todo, versions)
    max_chars, run_id = cfg.ingest.max_text_chars, cfg.run_id

    def convert(batches):
        from webscale_rl.udfs.read.documents import to_documents

        for batch in batches:
            yield to_documents(batch, max_chars, run_id)

    results = raw.mapInPandas(convert, documents_schema_ddl())
    counts = tables.commit_results(spark, cfg, NAME, results, out_ref, DOCUMENTS, key="doc_id")
    # Only now, with their rows committed, do the inputs count as ingested: a crash before this
    # leaves them unrecorded and the next run reads them again (the merge adds nothing twice).
    recorded = {p: stamps[p] for p in todo if p in stamps}
    if counts.rejects.get("unreadable_file"):
        for path in ingested_inputs.unreadable_files(spark, cfg, NAME, list(recorded)):
            recorded.pop(path, None)
    ingested_inputs.record(spark, cfg, fmt, recorded)
    return counts


def run(spark, cfg: Config) -> StageResult:
    patterns = input_patterns(cfg)
    fmt, files = resolve_format(spark, cfg, patterns)
    todo, stamps = inputs_to_read(spark, cfg, fmt, files)
    out_ref = tables.table_ref(cfg, OUTPUT)
    before = tables.version(spark, out_ref)
    if todo:
        counts = ingest_inputs(spark, cfg, fmt, todo, stamps, out_ref)
    else:  # every input was ingested before and is unchanged: no record is read
        counts = tables.CommitCounts()
    skipped_files = len(files) - len(todo)
    result = StageResult.from_counts(
        NAME,
        counts,
        spark,
        {p: None for p in files[:50]},
        out_ref,
        metrics={
            "input_files": len(files),
            "input_files_read": len(todo),
            "input_files_skipped": skipped_files,
        },
    )
    result.notes.append(
        f"format={fmt} files={len(files)} read={len(todo)} "
        f"skipped(ingested before, unchanged)={skipped_files} table_version_before={before}"
    )
    return result


main = stage_main_for(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
