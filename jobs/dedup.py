"""Dedup: exact and MinHash-LSH near-duplicate removal over any table's text column.

Documents (`documents_filtered` -> `documents_deduped`, text) and questions (`qa_verified` ->
`qa_deduped`, question) use the same job with a different `DedupTarget`. Steps, all distributed:

1. Exact duplicates: rows with the same normalised-text hash collapse onto one representative,
   cheaply, before any MinHash work.
2. Representatives get MinHash band hashes in a pandas UDF; (band, hash) pairs are exploded.
3. Every member of a bucket of equal (band, hash) is linked to the bucket's smallest id: edges are
   linear in bucket size, so a huge bucket (shared boilerplate) costs no quadratic self-join.
4. Optional exact-Jaccard verification of each edge (pandas UDF over the two texts).
5. Connected components by iterative min-label propagation with joins; nothing is collected.
6. One survivor per cluster by the keep policy (rows kept by an earlier run first, so a rerun
   on a grown input never rejects a row already published); the others go to `rejects` with
   reason `exact_duplicate` or `near_duplicate` and a JSON detail naming the survivor.

`cluster_id` (the smallest id in the cluster) and `cluster_size` stay in the output. Clusters
equal those of `webscale_rl.udfs.text.minhash.reference_clusters` on the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql.types import LongType, StringType, StructField, StructType

from webscale_rl import tables
from webscale_rl.config import Config
from webscale_rl.errors import WebscaleError
from webscale_rl.jobs.base import StageResult, stage_main_for
from webscale_rl.stages import declared
from webscale_rl.udfs.text.minhash import MinHashParams

DECL = declared("dedup")  # name, tables, key: webscale_rl/stages.py
NAME, INPUT, OUTPUT, KEY = DECL.name, DECL.input, DECL.output, DECL.key
MAX_CC_ITERATIONS = 100


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
# Spark steps


def keep_order(params: MinHashParams, id_column: str) -> list:
    """Sort order whose first row survives: earlier survivors, then the policy, then smallest id."""
    from pyspark.sql import functions as F

    order = [F.col("_prev").desc()]
    if params.keep == "longest":
        order.append(F.col("_len").desc())
    elif params.keep == "best_quality":
        order += [F.col(params.quality_column).desc_nulls_last(), F.col("_len").desc()]
    return [*order, F.col(id_column).asc()]


def candidate_edges(reps, params: MinHashParams, id_column: str):
    """(src, dst): each member of an LSH bucket linked to the bucket's smallest id."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    exploded = reps.select(
        F.col(id_column).alias("id"),
        F.posexplode(_bands_udf(params)(F.col(params.text_column))).alias("band", "h"),
    )
    bucket = Window.partitionBy("band", "h")
    return (
        exploded.withColumn("root", F.min("id").over(bucket))
        .where(F.col("id") != F.col("root"))
        .select(F.col("id").alias("src"), F.col("root").alias("dst"))
        .distinct()
    )


def verified_edges(edges, reps, params: MinHashParams, id_column: str):
    """The edges whose two texts have an exact shingle Jaccard >= verify_threshold."""
    from pyspark.sql import functions as F

    texts = reps.select(F.col(id_column).alias("id"), F.col(params.text_column).alias("t"))
    pairs = edges.join(
        texts.withColumnRenamed("id", "src").withColumnRenamed("t", "a"), "src"
    ).join(texts.withColumnRenamed("id", "dst").withColumnRenamed("t", "b"), "dst")
    sim = _similarity_udf(params)(F.col("a"), F.col("b"))
    return pairs.where(sim >= params.verify_threshold).select("src", "dst")


def connected_components(edges, max_iterations: int = MAX_CC_ITERATIONS):
    """Undirected (src, dst) edges -> (id, label = smallest id of its component), and the number
    of propagation rounds. Each round every node takes the smallest label among itself and its
    neighbours (two joins); rounds grow with the graph's diameter, which star edges keep small."""
    from pyspark.sql import functions as F

    both = (
        edges.select("src", "dst")
        .union(edges.select(F.col("dst").alias("src"), F.col("src").alias("dst")))
        .distinct()
        .localCheckpoint()
    )
    labels = (
        both.groupBy("src")
        .agg(F.min("dst").alias("m"))
        .select(F.col("src").alias("id"), F.least("src", "m").alias("label"))
        .localCheckpoint()
    )
    for rounds in range(1, max_iterations + 1):
        smallest_neighbour = (
            both.join(labels.withColumnRenamed("id", "src"), "src")
            .groupBy("dst")
            .agg(F.min("label").alias("nl"))
            .withColumnRenamed("dst", "id")
        )
        new = (
            labels.join(smallest_neighbour, "id")
            .select("id", F.least("label", "nl").alias("label"))
            .localCheckpoint()
        )
        changed = (
            new.join(labels.withColumnRenamed("label", "old"), "id")
            .where(F.col("label") != F.col("old"))
            .count()
        )
        labels = new
        if changed == 0:
            return labels, rounds
    raise WebscaleError(
        f"connected components did not converge in {max_iterations} rounds: an unusually long "
        "chain of near-duplicates; raise dedup verify_threshold or the LSH rows"
    )


def assign_clusters(df, params: MinHashParams, id_column: str, previous_ids=None):
    """df + `cluster_id`, `cluster_size`, `_survivor`, `_rep` (the exact-duplicate group's
    representative), and a dict of counters. `previous_ids` (one column `id_column`) are rows an
    earlier run kept: they are preferred as survivors."""
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    text = F.col(params.text_column)
    base = df.withColumn("_th", _text_hash_udf(params.keep_digits)(text)).withColumn(
        "_len", F.coalesce(F.length(text), F.lit(0))
    )
    if previous_ids is None:
        base = base.withColumn("_prev", F.lit(False))
    else:
        prev = previous_ids.select(id_column).distinct().withColumn("_prev", F.lit(True))
        base = base.join(prev, id_column, "left").fillna(False, subset=["_prev"])
    order = keep_order(params, id_column)
    base = base.withColumn(
        "_rep", F.first(id_column).over(Window.partitionBy("_th").orderBy(*order))
    ).persist(StorageLevel.MEMORY_AND_DISK)
    reps = base.where(F.col(id_column) == F.col("_rep"))

    edges = candidate_edges(reps, params, id_column).localCheckpoint()
    stats = {"candidate_edges": edges.count()}
    if params.verify:
        edges = verified_edges(edges, reps, params, id_column).localCheckpoint()
        stats["verified_edges"] = edges.count()
    labels, stats["cc_rounds"] = connected_components(edges)

    component = (
        reps.select(F.col(id_column).alias("_rep"))
        .join(labels.withColumnRenamed("id", "_rep"), "_rep", "left")
        .select("_rep", F.coalesce("label", "_rep").alias("_comp"))
    )
    cluster = Window.partitionBy("_comp")
    out = (
        base.join(component, "_rep")
        .withColumn("cluster_id", F.min(id_column).over(cluster))
        .withColumn("cluster_size", F.count(F.lit(1)).over(cluster))
        .withColumn("_survivor", F.first(id_column).over(cluster.orderBy(*order)))
    )
    return out, stats, base


def mark_rejects(clustered, id_column: str, run_id: str):
    """The stage's status columns: every row but the survivor is a rejected duplicate."""
    from pyspark.sql import functions as F

    kept = F.col(id_column) == F.col("_survivor")
    exact = F.col("_rep") == F.col("_survivor")  # same normalised text as the survivor
    reason = F.when(~kept & exact, F.lit("exact_duplicate")).when(~kept, F.lit("near_duplicate"))
    detail = F.when(
        ~kept,
        F.to_json(
            F.struct(F.col("_survivor").alias("survivor"), F.col("cluster_id").alias("cluster_id"))
        ),
    )
    return (
        clustered.withColumn(tables.REJECT_REASON, reason)
        .withColumn(tables.REJECT_DETAIL, detail)
        .withColumn(tables.ROW_ID, F.col(id_column))
        .withColumn("run_id", F.lit(run_id))
    )


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
    in_version = tables.version(spark, in_ref)
    df = tables.read(spark, in_ref, in_version)
    _check_input(df, params, target, in_ref)

    previous = tables.read(spark, out_ref) if tables.exists(spark, out_ref) else None
    clustered, stats, cached = assign_clusters(df, params, target.id_column, previous)
    try:
        results = mark_rejects(clustered, target.id_column, cfg.run_id)
        schema = output_schema(df.schema)
        counts = tables.commit_results(
            spark, cfg, target.stage, results, out_ref, schema, key=target.id_column
        )
    finally:
        cached.unpersist()

    result = StageResult.from_counts(
        target.stage,
        counts,
        spark,
        {in_ref: in_version},
        out_ref,
        metrics={k: float(v) for k, v in stats.items()},
    )
    result.notes.append(
        f"text_column={params.text_column} bands={params.bands}x{params.rows} "
        f"ngram={params.ngram} verify={params.verify}@{params.verify_threshold} keep={params.keep} "
        f"keep_digits={params.keep_digits}"
    )
    return result


main = stage_main_for(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
