"""Read only what is new: a stage's input rows inserted since the stage last finished.

A stage that has finished every pending row of its input at version v (each row kept or
rejected) records (stage, input, v) in the side table `_progress` beside the lakehouse tables.
Its next run reads the input's change data feed for the versions after v, the rows inserted
since, instead of the whole table; the pending anti-join then runs over those rows only. So a
run over 10% new documents reads 10% of the input, not all of it.

The whole input is read instead (the behaviour before this module) when there is no record
yet, when the stage redoes rejects (retryable ones or `--retry-rejects`: those rows are older
than the record), when the change feed does not cover the versions since the record (a table
created before tables had it, or by another tool: `ALTER TABLE ... SET TBLPROPERTIES
(delta.enableChangeDataFeed = true)` turns it on), when those changes are older than VACUUM's
retention (their files may be gone), or with `read_changes: false`. Reading more
never changes a result: finished rows are skipped by the anti-join either way.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from webscale_rl import tables
from webscale_rl.config import Config

PROGRESS = "_progress"
# Files a commit added can be compacted away (OPTIMIZE) and then deleted by VACUUM once older
# than its retention (`webscale-rl maintain`: 168 h by default). The change feed needs them, so
# changes older than this (a day's margin) are not read from it: the whole input is.
FEED_SAFE_HOURS = 144.0
PROGRESS_SCHEMA = "stage string, input string, version long, run_id string, at timestamp"
CHANGE_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")


@dataclass
class StageInput:
    """A stage's input table at one version, and its rows inserted after the stage's last
    finished version (`new`; None when unknown: read `full`)."""

    ref: str
    version: int | None
    full: object
    new: object | None = None
    since: int | None = None
    note: str = ""

    @property
    def unchanged(self) -> bool:
        """Nothing was inserted since the stage last finished: nothing to read or do."""
        return self.new is not None and self.since == self.version

    def rows_read(self):
        """The rows a run reads: those inserted since the last finished version, else all."""
        return self.full if self.new is None else self.new


def progress_ref(cfg: Config) -> str:
    return f"{posixpath.dirname(tables.staging_root(cfg))}/{PROGRESS}"


def last_finished(spark, cfg: Config, stage: str, ref: str) -> int | None:
    """The newest input version the stage finished every row of, or None."""
    from pyspark.sql import functions as F

    progress = progress_ref(cfg)
    if not tables.exists(spark, progress):
        return None
    row = (
        tables.read(spark, progress)
        .where((F.col("stage") == stage) & (F.col("input") == ref))
        .agg(F.max("version"))
        .first()
    )
    return None if row is None or row[0] is None else int(row[0])


def changes_age_hours(spark, ref: str, after: int, upto: int) -> float:
    """Hours since the oldest commit after version `after` (reads only those commits)."""
    import datetime

    from pyspark.sql import functions as F

    commits = tables.delta_table(spark, ref).history(upto - after)
    oldest = commits.where(F.col("version") > after).agg(F.min("timestamp")).first()[0]
    if oldest is None:
        return 0.0
    return (datetime.datetime.now() - oldest).total_seconds() / 3600


def inserted_since(spark, ref: str, after: int, upto: int):
    """Rows inserted into `ref` in versions after..upto (the change data feed), or None when the
    feed does not cover them."""
    from pyspark.sql import functions as F

    reader = (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", after + 1)
        .option("endingVersion", upto)
    )
    try:
        changes = reader.table(ref) if tables.is_catalog_ref(ref) else reader.load(ref)
        inserted = changes.where(F.col("_change_type").isin("insert", "update_postimage"))
        # Planning the scan (one tiny job) raises when the feed does not cover the versions.
        inserted.isEmpty()
    except Exception as err:
        if "CHANGE_DATA" in str(err) or "change data" in str(err).lower():
            return None
        raise
    return inserted.drop(*CHANGE_COLUMNS)


def read_input(spark, cfg: Config, stage: str, logical: str, out_ref: str) -> StageInput:
    """The stage's input at its current version, and what was inserted since the stage last
    finished, when that can be read (see the module docstring). Without the output table
    `out_ref` the stage has finished nothing: no record is looked up."""
    from webscale_rl import reject_reasons

    ref = tables.table_ref(cfg, logical)
    version = tables.version(spark, ref)
    full = tables.read(spark, ref, version)
    found = StageInput(ref, version, full)
    if not cfg.read_changes or version is None or not tables.exists(spark, out_ref):
        return found
    since = last_finished(spark, cfg, stage, ref)
    if since is None:
        return found
    if since > version:  # the input was restored to an older version
        found.note = f"read all of {ref}: version {version} is older than the last finished one"
        return found
    if reject_reasons.redo_ids(spark, cfg, stage) is not None:
        found.note = f"read all of {ref}: rejects are redone"
        return found
    if since < version and changes_age_hours(spark, ref, since, version) > FEED_SAFE_HOURS:
        found.note = (
            f"read all of {ref}: its changes since version {since} are older than "
            f"{FEED_SAFE_HOURS:g} h, and VACUUM may have deleted the files they were written in"
        )
        return found
    new = full.limit(0) if since == version else inserted_since(spark, ref, since, version)
    if new is None:
        found.note = (
            f"read all of {ref}: no change data feed for versions {since + 1}..{version} "
            "(ALTER TABLE ... SET TBLPROPERTIES (delta.enableChangeDataFeed = true) turns it on)"
        )
        return found
    found.new, found.since = new, since
    found.note = f"read the rows inserted into {ref} after version {since} (change data feed)"
    return found


def nothing_left(spark, source: StageInput | None, todo, out_ref: str, key: str) -> bool:
    """Whether no row of `todo` (the pending rows) is left. Known without a job when the stage
    read only the rows inserted since it last finished: none were (True), or some were, and they
    are new (False: a check would only repeat the stage's own anti-join). Otherwise the pending
    anti-join on the key column alone; a first run (no output table yet) goes on, so the table
    is created even if empty."""
    if source is not None and source.new is not None:
        return source.unchanged
    return tables.exists(spark, out_ref) and todo.select(key).isEmpty()


def record_finished(spark, cfg: Config, stage: str, source: StageInput) -> None:
    """Every row of `source` at its version is finished: the next run may start after it."""
    from pyspark.sql import functions as F

    if source.version is None:
        return
    row = spark.createDataFrame(
        [(stage, source.ref, source.version, cfg.run_id)],
        "stage string, input string, version long, run_id string",
    ).withColumn("at", F.current_timestamp())
    tables.set_commit_metadata(spark, cfg, stage)
    writer = row.write.format("delta").mode("append")
    tables.retry_on_conflict(lambda: writer.save(progress_ref(cfg)))
