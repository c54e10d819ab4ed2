"""Which inputs ingest has fully read: a small Delta table `_ingested_inputs` in the lakehouse.

A rerun of ingest over the same input must not pay for per-record work (text cleaning, language
id, ids) only for the commit to find nothing new. So after its rows are committed, ingest
records each input it read with a stamp (a file's size and modification time, a Delta table's
version) and a digest of the options that shape records; the next run skips every input
recorded with the same stamp and digest. A changed file gets a new stamp and is read again; its
rows are deduplicated by their deterministic ids as always.

Crash safety: the record is appended only after the rows' commit, so a crash between the two
leaves the input unrecorded and the next run reads it again; it is never skipped unread.

Driver side only. Stamps come from one Hadoop listing per folder, not one call per file, and
the lookup is a semi-join in Spark: the driver holds the input list (it already did), never the
table's rows.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

from webscale_rl import tables
from webscale_rl.config import Config
from webscale_rl.ids import stable_hash

TABLE = "_ingested_inputs"  # path, stamp, options, format, run_id, recorded_at
# Ingest options that do not change what a record becomes: changing them re-reads nothing.
NEUTRAL_OPTIONS = {"input", "files_per_task"}


def table_ref(cfg: Config) -> str:
    """A path beside the lakehouse tables (also with a catalog, as the staging tables are)."""
    root = tables.lakehouse_root(cfg) if not cfg.catalog else os.path.abspath(cfg.lakehouse)
    return f"{root}/{TABLE}"


def options_digest(cfg: Config) -> str:
    """Digest of the options that shape records (fields, text limit, WARC extraction): a file
    read under other options is not the same ingest and is read again."""
    opts = cfg.ingest.model_dump(mode="json", exclude=NEUTRAL_OPTIONS)
    return stable_hash(json.dumps(opts, sort_keys=True), length=16)


def file_stamps(spark, files: list[str]) -> dict[str, str]:
    """path -> "size=...;mtime=..." from one listing per parent folder.

    A file missing from its folder's listing (deleted meanwhile) gets no stamp: it is read (and
    fails or is rejected as today) but never recorded.
    """
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    by_folder: dict[str, set[str]] = defaultdict(set)
    for f in files:
        by_folder[f.rsplit("/", 1)[0]].add(f)
    stamps: dict[str, str] = {}
    for folder, wanted in by_folder.items():
        hpath = jvm.org.apache.hadoop.fs.Path(folder)
        for st in hpath.getFileSystem(conf).listStatus(hpath):
            path = st.getPath().toString()
            if path in wanted:
                stamps[path] = f"size={st.getLen()};mtime={st.getModificationTime()}"
    return stamps


def delta_stamps(spark, paths: list[str]) -> dict[str, str]:
    """path -> "delta_version=N": the version ingest reads (`versionAsOf`) and records."""
    versions = {p: tables.version(spark, p) for p in paths}
    return {p: f"delta_version={v}" for p, v in versions.items() if v is not None}


def stamp_version(stamp: str) -> int:
    return int(stamp.split("=", 1)[1])


def already_ingested(spark, cfg: Config, stamps: dict[str, str]) -> set[str]:
    """The inputs recorded with the same stamp and options digest: nothing new to read there."""
    from pyspark.sql import functions as F

    ref = table_ref(cfg)
    if not stamps or not tables.exists(spark, ref):
        return set()
    current = spark.createDataFrame(list(stamps.items()), "path string, stamp string")
    recorded = (
        tables.read(spark, ref)
        .where(F.col("options") == options_digest(cfg))
        .select("path", "stamp")
    )
    return {r["path"] for r in current.join(recorded, ["path", "stamp"], "left_semi").collect()}


def unreadable_files(spark, cfg: Config, stage: str, paths: list[str]) -> set[str]:
    """Files with an `unreadable_file` reject (row id `<path>#file`): an I/O error may pass, so
    such a file is read again next run rather than recorded as ingested."""
    from pyspark.sql import functions as F

    ref = tables.table_ref(cfg, "rejects")
    if not paths or not tables.exists(spark, ref):
        return set()
    ids = spark.createDataFrame([(f"{p}#file",) for p in paths], "row_id string")
    rejected = (
        tables.read(spark, ref)
        .where((F.col("stage") == stage) & (F.col("reason") == "unreadable_file"))
        .select("row_id")
    )
    found = ids.join(rejected, "row_id", "left_semi").collect()
    return {r["row_id"].removesuffix("#file") for r in found}


def record(spark, cfg: Config, fmt: str, stamps: dict[str, str]) -> None:
    """Append the inputs whose rows are committed. Appends only: concurrent runs never conflict
    on it, and a path recorded twice (two runs at once) is harmless."""
    from pyspark.sql import functions as F

    if not stamps:
        return
    digest = options_digest(cfg)
    rows = spark.createDataFrame(
        [(p, s, digest, fmt, cfg.run_id) for p, s in stamps.items()],
        "path string, stamp string, options string, format string, run_id string",
    ).withColumn("recorded_at", F.current_timestamp())
    writer = rows.coalesce(1).write.format("delta").mode("append")
    # Two first runs at once race to create the table: the loser retries into the winner's.
    tables.retry_on_conflict(lambda: writer.save(table_ref(cfg)))
