"""What a stage returns (`StageResult`), and `row_stage`, the runner of per-row stages.

It sits in the package core, below jobs/ and udfs/, so the LLM stage runner in udfs/ uses it
without importing jobs/: the import arrows run jobs -> udfs -> core.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from webscale_rl.config import Config
from webscale_rl.errors import WebscaleError


@dataclass
class StageResult:
    stage: str
    rows_in: int = 0
    rows_out: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    skipped: int = 0  # rows finished by an earlier run and not redone
    inputs: dict[str, int | None] = field(default_factory=dict)  # table ref -> Delta version
    outputs: dict[str, int | None] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return sum(self.rejects.values())

    @classmethod
    def from_counts(cls, stage: str, counts, spark, inputs: dict, output_ref: str, **extra):
        """A result for a stage that committed once with `tables.commit_results`."""
        from webscale_rl import tables

        return cls(
            stage=stage,
            rows_in=counts.rows_in,
            rows_out=counts.rows_out,
            rejects=counts.rejects,
            skipped=counts.skipped,
            inputs=inputs,
            outputs={output_ref: tables.version(spark, output_ref)},
            **extra,
        )

    def summary(self) -> str:
        top = ", ".join(
            f"{r}={n}" for r, n in sorted(self.rejects.items(), key=lambda x: -x[1])[:6]
        )
        line = (
            f"[{self.stage}] in={self.rows_in} kept={self.rows_out} rejected={self.rejected}"
            f" skipped(done before)={self.skipped} in {self.seconds:.1f}s"
        )
        return line + (f"  rejects: {top}" if top else "")


def result_schema(schema):
    """The output schema plus the status columns every stage's UDF returns."""
    from pyspark.sql.types import StringType, StructField, StructType

    return StructType(
        list(schema.fields)
        + [
            StructField(c, StringType(), True)
            for c in ("_reject_reason", "_reject_detail", "_row_id")
        ]
    )


def chunk_of(column: str, chunks: int):
    """The commit chunk of a row: a hash of `column`, so rows sharing it commit together."""
    from pyspark.sql import functions as F

    return F.pmod(F.xxhash64(F.col(column)), F.lit(chunks))


def layout(todo, group: str, key: str, partitions: int | None, ordered: bool):
    """Hash-partition the rows on `group` (the same task on every rerun) and, when `ordered`,
    sort each task's rows by (`group`, `key`) so a group's rows are adjacent in its batches."""
    if partitions:
        todo = todo.repartition(partitions, group)
    return todo.sortWithinPartitions(group, key) if ordered else todo


def row_stage(
    spark,
    cfg: Config,
    name: str,
    input_logical: str,
    output_logical: str,
    schema,
    key: str,
    transform,
    chunks: int = 1,
    input_df=None,
    metrics=None,
    input_schema=None,
    partitions: int | None = None,
    profile=None,
    group_by: str | None = None,
    derive=None,
) -> StageResult:
    """Run a per-row stage: skip rows already done, transform the rest, commit each chunk.

    `transform(pandas.DataFrame) -> pandas.DataFrame` runs on executors and returns the output
    schema's columns plus `_row_id`, `_reject_reason`, `_reject_detail`. With `chunks > 1` the
    pending rows are split by a hash of `key` and committed chunk by chunk, so a crash loses at
    most one chunk of work (LLM stages journal even that). `partitions` hash-partitions the
    pending rows on `key`, so a row lands in the same task on every rerun; `profile` is a Spark
    resource profile (GPUs per task) for the UDF's stage. `group_by` (a column, e.g. `doc_id`)
    chunks and partitions on that column instead of `key` and orders each task's rows by it, so
    rows sharing it (one document's personas) reach one engine together.

    Without `input_df` the stage reads its input table itself, and only the rows inserted since
    it last finished when it can (webscale_rl/increments.py); `derive(df)` turns the rows read
    into the rows to transform (a join, an explode).
    """
    from webscale_rl import increments, tables

    in_ref = tables.table_ref(cfg, input_logical)
    out_ref = tables.table_ref(cfg, output_logical)
    source = None
    if input_df is None:
        if not tables.exists(spark, in_ref):
            raise WebscaleError(
                f"stage {name}: input table {in_ref} does not exist; run the stage before it"
            )
        source = increments.read_input(spark, cfg, name, input_logical, out_ref)
        input_df = source.rows_read()
        if derive is not None:
            input_df = derive(input_df)
    if input_schema is not None:  # a clear error naming the column, before any work
        tables.check_columns(input_df, input_schema, f"stage {name} input {in_ref}")
    in_version = source.version if source else tables.version(spark, in_ref)
    todo = tables.pending(spark, cfg, name, input_df, out_ref, key)
    result = StageResult(stage=name, inputs={in_ref: in_version})
    if source and source.note:
        result.notes.append(source.note)
    # rows_in counts the rows read: the whole input, or only those inserted since the stage
    # last finished (as ingest counts only the records of new files).
    total = 0 if source and source.unchanged else input_df.count()
    if increments.nothing_left(spark, source, todo, out_ref, key):
        chunks = 0  # a rerun with nothing left: no staging, no commit
    group = group_by or key
    todo = layout(todo, group, key, partitions, ordered=group_by is not None)
    out_schema = result_schema(schema)
    udf_options = {"profile": profile} if profile is not None else {}

    def apply(batches):
        for batch in batches:
            yield transform(batch)

    for i in range(chunks):
        part = todo if chunks == 1 else todo.where(chunk_of(group, chunks) == i)
        counts = tables.commit_results(
            spark,
            cfg,
            name,
            part.mapInPandas(apply, out_schema, **udf_options),
            out_ref,
            schema,
            key=key,
            rows_pending=True,
        )
        result.rows_in += counts.rows_in
        result.rows_out += counts.rows_out
        result.skipped += counts.skipped
        for reason, n in counts.rejects.items():
            result.rejects[reason] = result.rejects.get(reason, 0) + n
    if source and chunks:
        increments.record_finished(spark, cfg, name, source)
    result.skipped += total - result.rows_in  # finished by an earlier run
    result.rows_in = total
    result.outputs = {out_ref: tables.version(spark, out_ref)}
    if metrics:
        result.metrics.update(metrics(result))
    return result
