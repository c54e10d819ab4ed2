"""Delta table I/O: where a logical table lives, reading it, and committing a stage's results.

Every stage commits the same way (`commit_results`): its computed rows, kept and rejected, are
first written once to a staging table, so an expensive UDF (an LLM call) is never evaluated
twice; then rejected rows are merged into `rejects` and kept rows into the output table, both
on deterministic ids, so a rerun after a crash duplicates nothing.

A row is finished when it is in the output or has a final reject. Rows rejected for a
retryable reason (the engine failed, `reject_reasons.RETRYABLE`) or a reason named in
`retry_rejects` are pending again on the next run; when one is redone its stale reject row is
deleted (kept now) or replaced (rejected again), so each (stage, row_id) stays in one place.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
import uuid
from dataclasses import dataclass, field

from webscale_rl import reject_reasons as reasons
from webscale_rl.config import TABLE_NAME, Config
from webscale_rl.errors import WebscaleError
from webscale_rl.schemas.tables import REJECTS

REJECT_REASON = "_reject_reason"
REJECT_DETAIL = "_reject_detail"
ROW_ID = "_row_id"
STATUS_COLUMNS = (REJECT_REASON, REJECT_DETAIL, ROW_ID)

# Delta's optimistic-concurrency conflicts: another writer committed first. An insert-only merge
# (or a whole-table overwrite) is safe to retry: it re-reads the table and inserts only what is
# still missing.
CONFLICT_ERRORS = (
    "ConcurrentAppendException",
    "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException",
    "ConcurrentTransactionException",
    "ConcurrentWriteException",
    "MetadataChangedException",
    "ProtocolChangedException",
)
CONFLICT_ATTEMPTS = 6

# Fault injection for tests: `WEBSCALE_RL_CRASH_AT=<stage>:<point>` kills the process there.
CRASH_ENV = "WEBSCALE_RL_CRASH_AT"


def _crash_point(stage: str, point: str) -> None:
    """Test-only fault-injection hook: SIGKILL this process when CRASH_ENV names this point."""
    if os.environ.get(CRASH_ENV) == f"{stage}:{point}":
        os.kill(os.getpid(), signal.SIGKILL)


def _is_uri(path: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:/", path))


def lakehouse_root(cfg: Config) -> str:
    root = cfg.lakehouse
    return root.rstrip("/") if _is_uri(root) else os.path.abspath(root)


def table_name(cfg: Config, logical: str) -> str:
    """Logical name (`documents`) -> configured physical name (`documents`, or a renamed one)."""
    name = getattr(cfg.tables, logical, None) or logical
    if not TABLE_NAME.match(name):
        raise WebscaleError(f"table name {name!r} is not a safe identifier")
    return name


def table_ref(cfg: Config, logical: str) -> str:
    """A Delta path under the lakehouse, or `catalog.schema.table` when a catalog is configured."""
    name = table_name(cfg, logical)
    if cfg.catalog:
        return f"{cfg.catalog}.{name}"
    return f"{lakehouse_root(cfg)}/{name}"


def is_catalog_ref(ref: str) -> bool:
    return not ("/" in ref or ":" in ref)


def exists(spark, ref: str) -> bool:
    from delta.tables import DeltaTable

    if is_catalog_ref(ref):
        return spark.catalog.tableExists(ref)
    return DeltaTable.isDeltaTable(spark, ref)


def read(spark, ref: str, version: int | None = None):
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.table(ref) if is_catalog_ref(ref) else reader.load(ref)


def delta_table(spark, ref: str):
    from delta.tables import DeltaTable

    return DeltaTable.forName(spark, ref) if is_catalog_ref(ref) else DeltaTable.forPath(spark, ref)


def version(spark, ref: str) -> int | None:
    if not exists(spark, ref):
        return None
    row = delta_table(spark, ref).history(1).select("version").first()
    return int(row[0]) if row else None


# Every table the pipeline creates records its change data feed, so the next stage can read
# only the rows inserted since it last ran (webscale_rl/increments.py). Inserts cost nothing
# extra: the feed reads them from the added files.
CHANGE_FEED = {"delta.enableChangeDataFeed": "true"}


def create_if_missing(spark, ref: str, schema, partition_by: list[str] | None = None) -> None:
    if exists(spark, ref):
        return
    writer = spark.createDataFrame([], schema).write.format("delta").mode("append")
    writer = writer.options(**CHANGE_FEED)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    try:
        writer.saveAsTable(ref) if is_catalog_ref(ref) else writer.save(ref)
    except Exception as err:
        # Another run created it between our check and our write: that is fine.
        if not exists(spark, ref):
            raise WebscaleError(f"could not create table {ref}: {str(err)[:300]}") from None


def check_columns(df, schema, what: str) -> None:
    """Clear error naming the column when an input lacks a column or has the wrong type."""
    have = {f.name: f.dataType for f in df.schema.fields}
    for f in schema.fields:
        if f.name not in have:
            raise WebscaleError(
                f"{what}: column {f.name!r} is missing (expected {f.dataType.simpleString()})"
            )
        if have[f.name] != f.dataType:
            raise WebscaleError(
                f"{what}: column {f.name!r} has type {have[f.name].simpleString()}, "
                f"expected {f.dataType.simpleString()}"
            )


def conform(df, schema):
    """Select exactly the schema's columns in its order, cast to its types."""
    from pyspark.sql import functions as F

    return df.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def done_ids(spark, cfg: Config, stage: str, output_ref: str, key: str):
    """Ids a stage already finished: in its output, or rejected by it for a final reason.
    One column named `key`."""
    from pyspark.sql import functions as F

    parts = []
    if exists(spark, output_ref):
        parts.append(read(spark, output_ref).select(F.col(key)))
    rejects_ref = table_ref(cfg, "rejects")
    if exists(spark, rejects_ref):
        parts.append(
            read(spark, rejects_ref)
            .where((F.col("stage") == stage) & ~F.col("reason").isin(reasons.retry_reasons(cfg)))
            .select(F.col("row_id").alias(key))
        )
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


def pending(spark, cfg: Config, stage: str, input_df, output_ref: str, key: str):
    """Input rows the stage has not finished yet: what a resumed run still has to do."""
    finished = done_ids(spark, cfg, stage, output_ref, key)
    if finished is None:
        return input_df
    return input_df.join(finished.distinct(), on=key, how="left_anti")


@dataclass
class CommitCounts:
    rows_in: int = 0
    rows_out: int = 0  # kept rows newly written
    skipped: int = (
        0  # kept rows the output already had (a rerun): rows_in = out + skipped + rejected
    )
    rejects: dict[str, int] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return sum(self.rejects.values())


def staging_root(cfg: Config) -> str:
    """Where stages stage their results: a path even when the tables are catalog names."""
    root = lakehouse_root(cfg) if not cfg.catalog else os.path.abspath(cfg.lakehouse)
    return f"{root}/_staging"


def staging_ref(cfg: Config, stage: str) -> str:
    return f"{staging_root(cfg)}/{stage}/{uuid.uuid4().hex}"


def set_commit_metadata(spark, cfg: Config, stage: str, skipped: list[str] | None = None) -> None:
    """Every Delta commit of the stage carries the run id, so a table version leads back to its
    run, and the stages skipped before it (`--allow-skip`; default: from the config)."""
    if skipped is None:
        skipped = skipped_before(cfg, stage)
    meta = {"run_id": cfg.run_id, "stage": stage}
    if skipped:
        meta["skipped_stages"] = list(skipped)
    spark.conf.set("spark.databricks.delta.commitInfo.userMetadata", json.dumps(meta))


def skipped_before(cfg: Config, stage: str) -> list[str]:
    """The stages this run skips right before `stage` (its input is theirs)."""
    if not cfg.allow_skip:
        return []
    from webscale_rl.jobs import pipeline

    return pipeline.resolve_input(cfg, stage)[1] if stage in pipeline.STAGES else []


def commit_results(
    spark,
    cfg: Config,
    stage: str,
    results,
    output_ref: str,
    schema,
    key: str,
    doc_id_col: str | None = "doc_id",
    partition_by: list[str] | None = None,
    rows_pending: bool = False,
) -> CommitCounts:
    """Write a stage's results once, then split them into its output table and `rejects`.

    `results` holds the output schema's columns plus `_row_id` (the input row's id),
    `_reject_reason` (null when kept) and `_reject_detail`. Kept rows sharing a key beyond the
    first (by `_row_id`) are rejected as `duplicate_id`, so every input row is accounted for.
    A table with nothing to add is not written at all: no version, no orphan data file.
    `rows_pending`: the results come from rows not in the output yet (`pending`), so checking
    for new keys before the merge would only repeat the merge's own read of the table.
    """
    from pyspark.sql import functions as F

    set_commit_metadata(spark, cfg, stage)
    stage_ref = staging_ref(cfg, stage)
    keep_cols = [f.name for f in schema.fields]
    staged = results.select(*keep_cols, *STATUS_COLUMNS)
    staged.write.format("delta").mode("overwrite").save(stage_ref)
    _crash_point(stage, "staged")
    refs = [stage_ref]
    try:
        staged = spark.read.format("delta").load(stage_ref)
        counts, unique = _count(staged, key)
        if not unique:
            # Only here (ingest: the same page twice) do full rows go through a window, once.
            refs.append(staging_ref(cfg, stage))
            staged = _restage_ranked(spark, staged, key, refs[-1])
            counts, _ = _count(staged, key)
        # Rejects before the output: a crash between the two leaves a kept row in neither, so
        # the rerun redoes it; it is never left both kept and (stale) rejected.
        _commit_rejects(spark, cfg, stage, staged, counts, doc_id_col)
        _crash_point(stage, "rejects")
        kept = conform(staged.where(F.col(REJECT_REASON).isNull()), schema)
        check = not rows_pending
        inserted = _commit_kept(spark, output_ref, kept, schema, key, partition_by, counts, check)
        counts.skipped = counts.rows_out - inserted
        counts.rows_out = inserted
        _crash_point(stage, "output")
    finally:
        for ref in refs:
            drop_path(spark, ref)
    return counts


def _count(staged, key: str) -> tuple[CommitCounts, bool]:
    """Rows by reject reason, and whether the kept rows' keys are unique: one aggregation over
    two narrow columns (the staged table is Parquet, so `text` is never read)."""
    from pyspark.sql import functions as F

    rows = (
        staged.groupBy(F.col(REJECT_REASON))
        .agg(F.count(F.lit(1)).alias("n"), F.countDistinct(F.col(key)).alias("keys"))
        .collect()
    )
    counts, unique = CommitCounts(), True
    for reason, n, keys in rows:
        counts.rows_in += n
        if reason is None:
            counts.rows_out += n
            unique = keys == n  # a null key counts as a duplicate: the window decides
        else:
            counts.rejects[reason] = n
    return counts, unique


def _restage_ranked(spark, staged, key: str, ref: str):
    """The staged rows with every kept row beyond the first of its key (by `_row_id`) rejected
    as `duplicate_id`, written once to `ref` and read back."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    first = Window.partitionBy(key).orderBy(F.col(ROW_ID))
    rank = F.when(F.col(REJECT_REASON).isNull(), F.row_number().over(first)).otherwise(F.lit(1))
    dup = F.col("_rank") > 1
    ranked = (
        staged.withColumn("_rank", rank)
        .withColumn(
            REJECT_REASON, F.when(dup, F.lit("duplicate_id")).otherwise(F.col(REJECT_REASON))
        )
        .withColumn(
            REJECT_DETAIL,
            F.when(dup, F.concat(F.lit(f"same {key} as an earlier row: "), F.col(key))).otherwise(
                F.col(REJECT_DETAIL)
            ),
        )
        .drop("_rank")
    )
    ranked.write.format("delta").mode("overwrite").save(ref)
    return spark.read.format("delta").load(ref)


def _commit_rejects(spark, cfg: Config, stage: str, staged, counts, doc_id_col) -> None:
    """Merge the stage's new rejects into `rejects`, or supersede the ones this run redid."""
    from pyspark.sql import functions as F

    rejected = _as_rejects(staged.where(F.col(REJECT_REASON).isNotNull()), cfg, stage, doc_id_col)
    redo = reasons.redo_ids(spark, cfg, stage) if counts.rows_in else None
    if redo is None:
        write_rejects(spark, cfg, rejected, n_rows=counts.rejected, stage=stage)
        return
    kept_again = staged.where(F.col(REJECT_REASON).isNull()).join(
        redo.withColumnRenamed("row_id", ROW_ID), ROW_ID, "left_semi"
    )
    outcome = rejected.unionByName(_as_rejects(kept_again, cfg, stage, doc_id_col))
    reasons.supersede_rejects(spark, cfg, stage, outcome)


def _commit_kept(spark, ref: str, kept, schema, key, partition_by, counts, check: bool) -> int:
    """Insert the kept rows the output table does not have yet; the number inserted."""
    if check and counts.rows_out and exists(spark, ref):
        if not has_new_keys(spark, ref, kept, [key]):
            return 0  # a rerun over rows already committed (ingest reads its input again)
    return merge_new(spark, ref, kept, schema, [key], partition_by, n_rows=counts.rows_out)


def _as_rejects(df, cfg: Config, stage: str, doc_id_col: str | None):
    """Status-column rows as `rejects` rows (a kept row has a null reason)."""
    from pyspark.sql import functions as F

    return df.select(
        F.lit(stage).alias("stage"),
        F.col(ROW_ID).alias("row_id"),
        (F.col(doc_id_col) if doc_id_col else F.lit(None)).cast("string").alias("doc_id"),
        F.col(REJECT_REASON).alias("reason"),
        F.col(REJECT_DETAIL).alias("detail"),
        F.lit(cfg.run_id).alias("run_id"),
        F.current_timestamp().alias("rejected_at"),
    )


def merge_new(
    spark,
    ref: str,
    df,
    schema,
    keys: list[str],
    partition_by=None,
    n_rows=None,
    target_filter: str | None = None,
) -> int:
    """Insert rows whose keys are not in the table yet; returns the number of rows inserted.

    A missing table is created by a plain write of `df` (no merge needed; `n_rows` is its known
    row count). If another run creates it first, Delta refuses our version 0 and we merge.
    `n_rows=0` on an existing table writes nothing: an insert-only merge of nothing would still
    write a data file it never commits. `target_filter` (a literal condition on `t`, e.g. one
    partition) limits the target files the merge reads.
    """
    if n_rows is not None and not exists(spark, ref):
        writer = df.write.format("delta").mode("errorifexists").options(**CHANGE_FEED)
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        try:
            writer.saveAsTable(ref) if is_catalog_ref(ref) else writer.save(ref)
            return n_rows
        except Exception as err:
            # Another run created the table first: merge into it instead.
            if not (is_conflict(err) or exists(spark, ref)):
                raise
    elif n_rows == 0:
        return 0
    create_if_missing(spark, ref, schema, partition_by)
    cond = " AND ".join([*([target_filter] if target_filter else []), *key_match(keys)])
    table = delta_table(spark, ref)
    metrics = retry_on_conflict(
        lambda: table.alias("t").merge(df.alias("s"), cond).whenNotMatchedInsertAll().execute()
    )
    # Delta 4 returns the merge metrics as a one-row DataFrame.
    row = metrics.first() if metrics is not None else None
    if row is not None and "num_inserted_rows" in row.asDict():
        return int(row["num_inserted_rows"])
    hist = table.history(1).select("operationMetrics").first()
    return int((hist[0] or {}).get("numTargetRowsInserted", 0))


def key_match(keys: list[str]) -> list[str]:
    return [f"t.`{k}` = s.`{k}`" for k in keys]


def has_new_keys(spark, ref: str, df, keys: list[str]) -> bool:
    """Whether `df` holds a key the table lacks: an anti-join of the key columns only."""
    fresh = df.select(*keys).join(read(spark, ref).select(*keys), on=keys, how="left_anti")
    return not fresh.isEmpty()


def is_conflict(err: BaseException) -> bool:
    text = f"{type(err).__name__}: {str(err)[:2000]}"
    return any(name in text for name in CONFLICT_ERRORS)


def retry_on_conflict(action, attempts: int = CONFLICT_ATTEMPTS):
    """Run a Delta write, again after a randomised pause when a concurrent commit won the race."""
    for attempt in range(attempts):
        try:
            return action()
        except Exception as err:
            if attempt == attempts - 1 or not is_conflict(err):
                raise
            time.sleep(random.uniform(0.5, 1.5) * (attempt + 1))


def write_rejects(
    spark, cfg: Config, rejected, n_rows: int | None = None, stage: str | None = None
) -> int:
    """Merge reject rows on (stage, row_id). With `stage` (all rows are that stage's) the merge
    names it as a literal, so Delta reads only that partition of `rejects`, not every stage's."""
    ref = table_ref(cfg, "rejects")
    target = None
    if stage is not None:
        if not reasons.STAGE_NAME.match(stage):
            raise WebscaleError(f"stage name {stage!r} is not a safe identifier")
        target = f"t.stage = '{stage}'"
    return merge_new(
        spark, ref, rejected, REJECTS, ["stage", "row_id"], ["stage"], n_rows, target_filter=target
    )


def overwrite(spark, cfg: Config, stage: str, ref: str, df, schema, skipped=None) -> None:
    """Replace a table's content in one new version (for whole-table stages such as publish)."""
    set_commit_metadata(spark, cfg, stage, skipped)
    writer = (
        conform(df, schema)
        .write.format("delta")
        .mode("overwrite")
        .option("overwriteSchema", "true")
    )
    retry_on_conflict(lambda: writer.saveAsTable(ref) if is_catalog_ref(ref) else writer.save(ref))


def drop_path(spark, path: str) -> None:
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    fs.delete(hpath, True)


def register_views(spark, cfg: Config) -> list[str]:
    """Make every existing lakehouse table queryable by its plain name in Spark SQL."""
    from webscale_rl.config import TableNames

    names = []
    for logical in TableNames.model_fields:
        ref = table_ref(cfg, logical)
        if cfg.catalog or not exists(spark, ref):
            continue
        name = table_name(cfg, logical)
        if "'" in ref or "`" in ref:
            raise WebscaleError(f"lakehouse path {ref!r} must not contain quotes")
        # A session-catalog table (not a view), so `VERSION AS OF` time travel works in SQL.
        spark.sql(f"DROP TABLE IF EXISTS `{name}`")
        spark.sql(f"CREATE TABLE `{name}` USING DELTA LOCATION '{ref}'")
        names.append(name)
    return names
