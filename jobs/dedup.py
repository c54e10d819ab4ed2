"""Dedup: exact and MinHash-LSH near-duplicate removal over any table's text column.

Documents (`documents_filtered` -> `documents_deduped`, text) and questions (`qa_verified` ->
`qa_deduped`, question) use the same job with a different `DedupTarget`. Steps, all distributed,
on the rows no earlier run decided (`pending`), over narrow projections (ids, hashes, lengths):

1. Exact duplicates: rows with the same normalised-text hash collapse onto one representative,
   cheaply, before any MinHash work.
2. Representatives get MinHash band hashes in a pandas UDF; (band, hash) pairs are exploded.
3. Every member of a bucket of equal (band, hash) is linked to the bucket's smallest id: edges are
   linear in bucket size, so a huge bucket (shared boilerplate) costs no quadratic self-join.
   Buckets hold the new rows and the stored hashes of earlier runs' rows (see below).
4. Optional exact-Jaccard verification of each edge (pandas UDF over the two texts: the only step
   that joins text, and only onto the edges' endpoints).
5. Connected components by iterative min-label propagation with joins; nothing is collected.
6. One survivor per cluster by the keep policy; the others go to `rejects` with reason
   `exact_duplicate` or `near_duplicate` and a JSON detail naming the survivor.

Earlier decisions are final. Every run appends its rows' hashes (id, band, hash; band -1 holds
the normalised-text hash) to a narrow side table (`signatures_ref`), so a later run hashes only
new rows and meets the earlier ones through their stored hashes. An earlier row in a new row's
cluster stands for the row its decision kept (itself, or the survivor its reject names): a new
row clustered with an already-kept row is the one rejected, and an already-kept row is never
rejected (two kept rows bridged by a new one both stay). A rerun with no new rows reads ids only.

`cluster_id` (the smallest id in the cluster) and `cluster_size` stay in the output. On a first
run clusters equal those of `webscale_rl.udfs.text.minhash.reference_clusters` on the same rows.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass

from pyspark.sql.types import LongType, StringType, StructField, StructType

from webscale_rl import increments, reject_reasons, tables
from webscale_rl.components import Checkpoints, connected_components
from webscale_rl.config import Config
from webscale_rl.errors import WebscaleError
from webscale_rl.jobs.base import StageResult, stage_main_for
from webscale_rl.stages import declared
from webscale_rl.udfs.text.minhash import MinHashParams

DECL = declared("dedup")  # name, tables, key: webscale_rl/stages.py
NAME, INPUT, OUTPUT, KEY = DECL.name, DECL.input, DECL.output, DECL.key
EXACT_BAND = -1  # the side table's band of the normalised-text hash
SIGNATURES = StructType(
    [
        StructField("id", StringType()),
        StructField("band", LongType()),
        StructField("h", LongType()),
    ]
)


@dataclass(frozen=True)
class DedupTarget:
    """Which table is deduplicated, by which id and (default) text column, into which table.

    The job reads only the id and text columns (and the quality column for keep=best_quality);
    every other input column passes through to the output unchanged, so an input without the
    filter's `quality_stats` (e.g. `documents`, when filter is skipped) dedups as well.
    """

    stage: str
    input: str  # logical table names (config `tables.*`)
    output: str
    id_column: str
    text_column: str  # default for MinHashParams.text_column


DOCUMENTS = DedupTarget(NAME, INPUT, OUTPUT, "doc_id", "text")
_QA = declared("qa_dedup")
QUESTIONS = DedupTarget(_QA.name, _QA.input, _QA.output, _QA.key, "question")
CLUSTER_COLUMNS = ("cluster_id", "cluster_size")


def params_of(cfg: Config, target: DedupTarget) -> MinHashParams:
    return getattr(cfg, target.stage)  # the config section named after the stage


def signatures_ref(cfg: Config, target: DedupTarget, params: MinHashParams) -> str:
    """The side table of the stage's stored hashes: internal state beside the lakehouse tables
    (like `_staging`), one per output table and hashing parameters, so changed parameters start
    a fresh table (backfilled from the decided rows) instead of mixing incompatible hashes."""
    hashing = {k: getattr(params, k) for k in ("num_perm", "bands", "rows", "ngram", "seed")}
    hashing["keep_digits"] = params.keep_digits
    digest = hashlib.sha256(json.dumps(hashing, sort_keys=True).encode()).hexdigest()[:12]
    root = posixpath.dirname(tables.staging_root(cfg))
    return f"{root}/_dedup_signatures/{tables.table_name(cfg, target.output)}_{digest}"


# ---------------------------------------------------------------------------------------------
# pandas UDFs (the pure work lives in udfs/text/minhash.py)


def _text_hash_udf(keep_digits: bool):
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("long")
    def text_hashes(texts):
        import pandas as pd

        from webscale_rl.udfs.text.minhash import text_hash

        return pd.Series([text_hash(t, keep_digits) for t in texts], dtype="int64")

    return text_hashes


def _bands_udf(params: MinHashParams):
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("array<long>")
    def bands(texts):
        import numpy as np
        import pandas as pd

        from webscale_rl.udfs.text.minhash import EMPTY, band_hashes_batch, signatures

        sigs = signatures(texts.tolist(), params)
        hashes = band_hashes_batch(sigs, params).tolist()
        empty = np.all(sigs == EMPTY, axis=1)
        return pd.Series([[] if e else h for h, e in zip(hashes, empty, strict=True)])

    return bands


def _similarity_udf(params: MinHashParams):
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("double")
    def similarity(a, b):
        import pandas as pd

        from webscale_rl.udfs.text.minhash import pair_similarity

        return pd.Series(
            [pair_similarity(x, y, params) for x, y in zip(a, b, strict=True)], dtype="float64"
        )

    return similarity


# ---------------------------------------------------------------------------------------------
# What earlier runs decided


@dataclass
class Past:
    """Narrow views of earlier decisions: `kept` (id, cluster_id) from the output table,
    `rejected` (id, kept_by: the survivor its reject names) from `rejects`, `stored` (id, band,
    h) from the side table. Rejects a run redoes (`--retry-rejects`) are not decisions."""

    kept: object
    rejected: object
    stored: object

    def decided(self):
        return self.kept.select("id").unionByName(self.rejected.select("id"))

    def anchor_of(self):
        """(id, anchor): the kept row each decided row stands for in a new row's cluster.
        A row both kept and rejected (left by older versions of this job) counts as kept."""
        from pyspark.sql import functions as F

        kept = self.kept.select("id", F.col("id").alias("anchor"))
        rejected = self.rejected.join(self.kept.select("id"), "id", "left_anti")
        return kept.unionByName(rejected.select("id", F.col("kept_by").alias("anchor")))


def load_past(spark, cfg: Config, target: DedupTarget, out_ref: str, sig_ref: str) -> Past:
    from pyspark.sql import functions as F

    def table_or_empty(ref, schema, view):
        if tables.exists(spark, ref):
            return view(tables.read(spark, ref))
        return spark.createDataFrame([], schema)

    kept = table_or_empty(
        out_ref,
        "id string, cluster_id string",
        lambda df: df.select(F.col(target.id_column).alias("id"), "cluster_id"),
    )
    redo = reject_reasons.retry_reasons(cfg)
    rejected = table_or_empty(
        tables.table_ref(cfg, "rejects"),
        "id string, kept_by string",
        lambda df: df.where((F.col("stage") == target.stage) & ~F.col("reason").isin(redo)).select(
            F.col("row_id").alias("id"),
            F.get_json_object("detail", "$.survivor").alias("kept_by"),
        ),
    )
    stored = table_or_empty(sig_ref, SIGNATURES, lambda df: df)
    return Past(kept, rejected, stored)


def store_signatures(spark, cfg: Config, stage: str, ref: str, rows) -> None:
    """Append (id, band, h) rows, leaving out ids the table has: a rerun after a crash between
    this append and the stage's commit hashes those rows again."""
    from pyspark.sql import functions as F

    if tables.exists(spark, ref):
        rows = rows.join(tables.read(spark, ref).select("id").distinct(), "id", "left_anti")
    rows = rows.select("id", F.col("band").cast("long"), "h")
    tables.set_commit_metadata(spark, cfg, stage)
    writer = rows.write.format("delta").mode("append")
    tables.retry_on_conflict(lambda: writer.save(ref))


def exact_rows(keys):
    """Side-table rows of the normalised-text hashes: every row gets one."""
    from pyspark.sql import functions as F

    return keys.select("id", F.lit(EXACT_BAND).alias("band"), F.col("_th").alias("h"))


def band_rows(texts, params: MinHashParams):
    """(id, band, h) of texts (id, t); an empty text has no bands (never a candidate)."""
    from pyspark.sql import functions as F

    bands = F.posexplode(_bands_udf(params)(F.col("t"))).alias("band", "h")
    return texts.select("id", bands)


def backfill(spark, cfg: Config, df, past: Past, params, target: DedupTarget, ref: str) -> bool:
    """Hash the decided rows when there is no side table (a lakehouse deduped before it existed,
    or changed hashing parameters): bands once per distinct text. False when nothing was done.
    An existing side table lacks no decided row: every run appends its rows' hashes before it
    commits its decisions, so checking would only scan every stored id on every run."""
    from pyspark.sql import functions as F

    if tables.exists(spark, ref):
        return False
    ids = df.select(F.col(target.id_column).alias("id")).join(past.decided(), "id", "left_semi")
    if ids.isEmpty():  # ids only: the usual case reads no text
        return False
    text = F.col(params.text_column).alias("t")
    rows = df.select(F.col(target.id_column).alias("id"), text).join(ids, "id", "left_semi")
    keys = rows.select("id", _text_hash_udf(params.keep_digits)(F.col("t")).alias("_th"))
    one_per_text = keys.groupBy("_th").agg(F.min("id").alias("id")).select("id")
    texts = rows.join(one_per_text, "id", "left_semi")
    store_signatures(
        spark, cfg, target.stage, ref, exact_rows(keys).unionByName(band_rows(texts, params))
    )
    return True


# ---------------------------------------------------------------------------------------------
# Spark steps


def keep_order(params: MinHashParams) -> list:
    """Sort order (over `row_keys` columns) whose first row survives: the policy, then the
    smallest id."""
    from pyspark.sql import functions as F

    order = []
    if params.keep == "longest":
        order.append(F.col("_len").desc())
    elif params.keep == "best_quality":
        order += [F.col("_q").desc_nulls_last(), F.col("_len").desc()]
    return [*order, F.col("id").asc()]


def row_keys(rows, params: MinHashParams, id_column: str):
    """The narrow rows the decisions are made on: id, normalised-text hash `_th`, length,
    quality (keep=best_quality) and `_rep`, the exact-duplicate group's representative."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    text = F.col(params.text_column)
    cols = [
        F.col(id_column).alias("id"),
        _text_hash_udf(params.keep_digits)(text).alias("_th"),
        F.coalesce(F.length(text), F.lit(0)).alias("_len"),
    ]
    if params.keep == "best_quality":
        cols.append(F.col(params.quality_column).alias("_q"))
    group = Window.partitionBy("_th").orderBy(*keep_order(params))
    return rows.select(*cols).withColumn("_rep", F.first("id").over(group))


def candidate_edges(new_bands, old_bands):
    """(src, dst, src_new, dst_new, exact): in every bucket holding a new row, each new member
    is linked to the bucket's smallest new id and to its smallest old id. Earlier runs linked
    the old members, so their edges are not repeated: a bucket costs edges in proportion to its
    new rows, not to the old rows it holds (shared boilerplate). On a first run (no old rows)
    this is the star of each bucket around its smallest id. `exact` marks a shared normalised-
    text hash (band -1): no verification."""
    from pyspark.sql import functions as F

    members = new_bands.withColumn("_new", F.lit(True)).unionByName(
        old_bands.withColumn("_new", F.lit(False))
    )
    buckets = members.groupBy("band", "h").agg(
        F.min(F.when(F.col("_new"), F.col("id"))).alias("new_min"),
        F.min(F.when(~F.col("_new"), F.col("id"))).alias("old_min"),
    )
    new = new_bands.join(buckets, ["band", "h"])
    to_new = new.where(F.col("id") != F.col("new_min")).select(
        "id", "band", F.col("new_min").alias("dst"), F.lit(True).alias("dst_new")
    )
    to_old = new.where(F.col("old_min").isNotNull()).select(
        "id", "band", F.col("old_min").alias("dst"), F.lit(False).alias("dst_new")
    )
    return (
        to_new.unionByName(to_old)
        .groupBy(F.col("id").alias("src"), "dst", F.lit(True).alias("src_new"), "dst_new")
        .agg(F.max(F.col("band") == EXACT_BAND).alias("exact"))
    )


def verified_edges(edges, texts, params: MinHashParams):
    """The edges whose two texts (from `texts`: id, t) have an exact shingle Jaccard >=
    verify_threshold; exact-text edges pass as they are."""
    from pyspark.sql import functions as F

    fuzzy = edges.where(~F.col("exact"))
    pairs = fuzzy.join(
        texts.withColumnRenamed("id", "src").withColumnRenamed("t", "a"), "src"
    ).join(texts.withColumnRenamed("id", "dst").withColumnRenamed("t", "b"), "dst")
    sim = _similarity_udf(params)(F.col("a"), F.col("b"))
    cols = [c for c in edges.columns]
    return (
        edges.where(F.col("exact"))
        .select(cols)
        .unionByName(pairs.where(sim >= params.verify_threshold).select(cols).distinct())
    )


def anchored_edges(edges, anchor_of):
    """New-row graph edges: an old end becomes the kept row it stands for (`Past.anchor_of`)."""
    from pyspark.sql import functions as F

    def end(name):
        a = anchor_of.select(F.col("id").alias(name), F.col("anchor").alias(f"_{name}_a"))
        return a, F.when(F.col(f"{name}_new"), F.col(name)).otherwise(F.col(f"_{name}_a"))

    (sa, src), (da, dst) = end("src"), end("dst")
    mapped = edges.join(sa, "src", "left").join(da, "dst", "left")
    mapped = mapped.select(src.alias("src"), dst.alias("dst"))
    return mapped.where(F.col("src").isNotNull() & F.col("dst").isNotNull()).where(
        F.col("src") != F.col("dst")
    )


def old_survivors(labels, past: Past, old_bands):
    """Per component holding already-kept rows: the smallest such row as (a: id, ac: its
    cluster_id), overall (`_any`) and per normalised-text hash (`_same`, exact duplicates).
    A kept row's text hash can only equal a new row's if it is among `old_bands` (the stored
    hashes a new row shares), so those are all that is read, not every stored hash."""
    from pyspark.sql import functions as F

    text_hash = old_bands.where(F.col("band") == EXACT_BAND).select("id", F.col("h").alias("_th"))
    anchors = (
        labels.join(past.kept, "id")
        .join(text_hash, "id", "left")
        .select(
            F.col("label").alias("_comp"),
            "_th",
            F.struct(F.col("id").alias("a"), F.col("cluster_id").alias("ac")).alias("s"),
        )
    )
    by_comp = anchors.groupBy("_comp").agg(F.min("s").alias("_any"))
    by_text = (
        anchors.where(F.col("_th").isNotNull())
        .groupBy("_comp", "_th")
        .agg(F.min("s").alias("_same"))
    )
    return by_comp, by_text


def decide(keys, labels, past: Past, params: MinHashParams, old_bands):
    """(id, _survivor, _exact, cluster_id, cluster_size) of every new row. A cluster holding an
    already-kept row keeps only that row (an exact duplicate's first); otherwise the keep
    policy picks one new row. Earlier rejects naming a new row (a rerun after a crash between
    writing rejects and the output) count in its cluster, as they did when they were rejected."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    comp = (
        keys.where(F.col("id") == F.col("_rep"))
        .select(F.col("id").alias("_rep"))
        .join(labels.withColumnRenamed("id", "_rep"), "_rep", "left")
        .select("_rep", F.coalesce("label", "_rep").alias("_comp"))
    )
    named = past.rejected.groupBy(F.col("kept_by").alias("id")).agg(
        F.count(F.lit(1)).alias("_named_n"), F.min("id").alias("_named_min")
    )
    by_comp, by_text = old_survivors(labels, past, old_bands)
    rows = (
        keys.join(comp, "_rep")
        .join(named, "id", "left")
        .join(by_comp, "_comp", "left")
        .join(by_text, ["_comp", "_th"], "left")
    )
    cluster = Window.partitionBy("_comp")
    ordered = cluster.orderBy(*keep_order(params))
    rows = (
        rows.withColumn("_first", F.first("id").over(ordered))
        .withColumn("_first_th", F.first("_th").over(ordered))
        .withColumn("_cid", F.least(F.min("id").over(cluster), F.min("_named_min").over(cluster)))
        .withColumn(
            "_csize",
            F.count(F.lit(1)).over(cluster) + F.coalesce(F.sum("_named_n").over(cluster), F.lit(0)),
        )
    )
    old = F.col("_any").isNotNull()
    old_pick = F.coalesce(F.col("_same"), F.col("_any"))
    decision = F.struct(
        F.when(old, old_pick["a"]).otherwise(F.col("_first")).alias("_survivor"),
        F.when(old, F.col("_same").isNotNull())
        .otherwise(F.col("_th") == F.col("_first_th"))
        .alias("_exact"),
        F.when(old, old_pick["ac"]).otherwise(F.col("_cid")).alias("cluster_id"),
        F.when(old, F.lit(None)).otherwise(F.col("_csize")).cast("long").alias("cluster_size"),
    )
    # One decision per id (an input holding an id twice must not multiply rows in the join).
    return rows.groupBy("id").agg(F.min(decision).alias("d")).select("id", "d.*")


def mark_rejects(results, id_column: str, run_id: str):
    """The stage's status columns: every row but the survivor is a rejected duplicate."""
    from pyspark.sql import functions as F

    kept = F.col(id_column) == F.col("_survivor")
    reason = F.when(~kept & F.col("_exact"), F.lit("exact_duplicate")).when(
        ~kept, F.lit("near_duplicate")
    )
    detail = F.when(
        ~kept,
        F.to_json(
            F.struct(F.col("_survivor").alias("survivor"), F.col("cluster_id").alias("cluster_id"))
        ),
    )
    return (
        results.withColumn(tables.REJECT_REASON, reason)
        .withColumn(tables.REJECT_DETAIL, detail)
        .withColumn(tables.ROW_ID, F.col(id_column))
        .withColumn("run_id", F.lit(run_id))
    )


def assign_clusters(
    spark, cfg, todo, df, past: Past, params, target: DedupTarget, sig_ref, saved: Checkpoints
):
    """Decisions for the pending rows `todo` (see `decide`), the metrics, and the persisted
    frames to release. Intermediate graphs go to `saved` (reliable storage, see
    webscale_rl/components.py). Stores the new rows' hashes before returning."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    keys = row_keys(todo, params, target.id_column).persist(StorageLevel.MEMORY_AND_DISK)
    rep_ids = keys.where(F.col("id") == F.col("_rep")).select("id")
    text = F.col(params.text_column).alias("t")
    rep_texts = todo.select(F.col(target.id_column).alias("id"), text).join(
        rep_ids, "id", "left_semi"
    )
    new_bands = (
        band_rows(rep_texts, params)
        .unionByName(exact_rows(keys.where(F.col("id") == F.col("_rep"))))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    stats = {"rows_hashed": keys.count()}
    matched = past.stored.join(new_bands.select("band", "h").distinct(), ["band", "h"], "left_semi")
    old_bands = saved.save(matched.join(past.decided(), "id", "left_semi"))
    edges = saved.save(candidate_edges(new_bands, old_bands))
    stats["candidate_edges"] = edges.count()
    if params.verify:
        old_ends = (
            edges.where(~F.col("src_new"))
            .select(F.col("src").alias("id"))
            .unionByName(edges.where(~F.col("dst_new")).select(F.col("dst").alias("id")))
        )
        old_texts = df.select(F.col(target.id_column).alias("id"), text).join(
            old_ends, "id", "left_semi"
        )
        texts = rep_texts.unionByName(old_texts)
        edges = saved.save(verified_edges(edges, texts, params))
        stats["verified_edges"] = edges.count()
    labels, stats["cc_rounds"] = connected_components(
        anchored_edges(edges, past.anchor_of()), saved
    )
    decisions = decide(keys, labels, past, params, old_bands)
    # Stored before the commit: a crash in between leaves hashes of undecided rows, which are
    # ignored (only decided rows' hashes are met) and not appended twice.
    new_rows = exact_rows(keys.where(F.col("id") != F.col("_rep"))).unionByName(new_bands)
    store_signatures(spark, cfg, target.stage, sig_ref, new_rows)
    return decisions, stats, [keys, new_bands]


def _check_input(df, params: MinHashParams, target: DedupTarget, ref: str) -> None:
    """Only the columns the job reads must be there, with their types (clear errors first)."""
    needed = [target.id_column, params.text_column]
    if params.keep == "best_quality":
        needed.append(params.quality_column)
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise WebscaleError(
            f"{target.stage}: input {ref} has no column(s) {missing} "
            f"(columns: {', '.join(df.columns)})"
        )
    read = StructType([StructField(c, StringType()) for c in needed[:2]])
    tables.check_columns(df, read, f"{target.stage} input {ref}")


def output_schema(input_schema):
    """The input's columns (run_id last, as in every table) plus the cluster columns."""
    own = {*CLUSTER_COLUMNS, "run_id"}
    fields = [f for f in input_schema.fields if f.name not in own]
    return StructType(
        fields
        + [
            StructField("cluster_id", StringType()),
            StructField("cluster_size", LongType()),
            StructField("run_id", StringType()),
        ]
    )


def run(
    spark, cfg: Config, params: MinHashParams | None = None, target: DedupTarget = DOCUMENTS
) -> StageResult:
    params = params or params_of(cfg, target)
    in_ref, out_ref = tables.table_ref(cfg, target.input), tables.table_ref(cfg, target.output)
    if not tables.exists(spark, in_ref):
        raise WebscaleError(
            f"stage {target.stage}: input table {in_ref} does not exist: run the earlier stages first"
        )
    source = increments.read_input(spark, cfg, target.stage, target.input, out_ref)
    df, in_version = source.full, source.version
    _check_input(df, params, target, in_ref)

    sig_ref = signatures_ref(cfg, target, params)
    past = load_past(spark, cfg, target, out_ref, sig_ref)
    if backfill(spark, cfg, df, past, params, target, sig_ref):
        past = load_past(spark, cfg, target, out_ref, sig_ref)
    decided = past.decided().withColumnRenamed("id", target.id_column)
    todo = source.rows_read().join(decided, target.id_column, "left_anti")
    total = 0 if source.unchanged else source.rows_read().count()
    result = StageResult(stage=target.stage, rows_in=total, inputs={in_ref: in_version})
    if source.note:
        result.notes.append(source.note)
    if increments.nothing_left(spark, source, todo, out_ref, target.id_column):
        result.skipped = total  # nothing new: no hashing, no commit
    else:
        with Checkpoints(spark, cfg, target.stage) as saved:
            # Used three times (hashes, texts, the commit): saved once, so the change-feed read
            # and the anti-join against every decided id run once.
            todo = saved.save(todo)
            decisions, stats, cached = assign_clusters(
                spark, cfg, todo, df, past, params, target, sig_ref, saved
            )
            try:
                rows = todo.drop(*CLUSTER_COLUMNS).join(
                    decisions.withColumnRenamed("id", target.id_column), target.id_column
                )
                results = mark_rejects(rows, target.id_column, cfg.run_id)
                schema = output_schema(df.schema)
                # todo holds no decided row, so none is in the output yet
                counts = tables.commit_results(
                    spark,
                    cfg,
                    target.stage,
                    results,
                    out_ref,
                    schema,
                    key=target.id_column,
                    rows_pending=True,
                )
            finally:
                for frame in cached:
                    frame.unpersist()
        increments.record_finished(spark, cfg, target.stage, source)
        result.rows_out, result.rejects = counts.rows_out, counts.rejects
        result.skipped = counts.skipped + total - counts.rows_in  # decided by earlier runs
        result.metrics = {k: float(v) for k, v in stats.items()}
    result.outputs = {out_ref: tables.version(spark, out_ref)}
    result.notes.append(
        f"text_column={params.text_column} bands={params.bands}x{params.rows} "
        f"ngram={params.ngram} verify={params.verify}@{params.verify_threshold} keep={params.keep} "
        f"keep_digits={params.keep_digits}"
    )
    return result


main = stage_main_for(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
