"""Connected components of an edge DataFrame, with each round's result kept on reliable storage.

Iterative jobs need their intermediate frames cut from the lineage, or every round replans all
earlier ones. `localCheckpoint` does that with executor-local blocks: an executor lost mid-job
(a spot instance on EMR, a preempted Databricks worker) loses them and fails the job. Here
each round is written as Parquet under the lakehouse's `_staging/` and read back, so a lost
executor only costs a task retry; the files are deleted when the job ends (and `webscale-rl
maintain` removes what a killed driver left behind).
"""

from __future__ import annotations

from webscale_rl.errors import WebscaleError

MAX_ROUNDS = 100


class Checkpoints:
    """Write frames to `<lakehouse>/_staging/<stage>/<uuid>` and read them back; `drop()` (or
    leaving the `with` block) deletes every one written."""

    def __init__(self, spark, cfg, stage: str):
        self._spark, self._cfg, self._stage = spark, cfg, stage
        self._paths: list[str] = []

    def save(self, df):
        from webscale_rl import tables

        path = tables.staging_ref(self._cfg, self._stage)
        df.write.mode("overwrite").parquet(path)
        self._paths.append(path)
        return self._spark.read.parquet(path)

    def drop(self) -> None:
        from webscale_rl import tables

        for path in self._paths:
            tables.drop_path(self._spark, path)
        self._paths = []

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.drop()


def connected_components(edges, checkpoints: Checkpoints, max_rounds: int = MAX_ROUNDS):
    """Undirected (src, dst) edges -> (id, label = smallest id of its component), and the number
    of propagation rounds. Each round every node takes the smallest label among itself and its
    neighbours (two joins); rounds grow with the graph's diameter, which star edges keep small."""
    from pyspark.sql import functions as F

    both = checkpoints.save(
        edges.select("src", "dst")
        .union(edges.select(F.col("dst").alias("src"), F.col("src").alias("dst")))
        .distinct()
    )
    labels = checkpoints.save(
        both.groupBy("src")
        .agg(F.min("dst").alias("m"))
        .select(F.col("src").alias("id"), F.least("src", "m").alias("label"))
    )
    for rounds in range(1, max_rounds + 1):
        smallest_neighbour = (
            both.join(labels.withColumnRenamed("id", "src"), "src")
            .groupBy("dst")
            .agg(F.min("label").alias("nl"))
            .withColumnRenamed("dst", "id")
        )
        new = checkpoints.save(
            labels.join(smallest_neighbour, "id").select(
                "id", F.least("label", "nl").alias("label")
            )
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
        f"connected components did not converge in {max_rounds} rounds: an unusually long "
        "chain of near-duplicates; raise dedup verify_threshold or the LSH rows"
    )
