"""Decontaminate: drop QA pairs that share a 13-gram with an eval benchmark -> `qa_clean`.

The n-gram index of every benchmark is built once on the driver (a missing file or field fails
here, before any Spark work), broadcast, and each executor checks its QA rows with a pandas UDF.
A contaminated row goes to `rejects` with reason `contaminated:<benchmark>` and a JSON detail
naming the benchmark, the item and the matched n-gram. Reruns only check rows not yet decided.
"""

from __future__ import annotations

from pathlib import Path

from webscale_rl import tables
from webscale_rl.config import REPO_ROOT, Config
from webscale_rl.errors import ConfigError, WebscaleError
from webscale_rl.jobs.base import StageResult, stage_main_for
from webscale_rl.schemas import tables as schemas
from webscale_rl.udfs.decontam import DecontamParams, build_ngram_index, resolve_files

NAME = "decontaminate"
INPUT = "qa_deduped"
OUTPUT = "qa_clean"
KEY = "qa_id"

# Decontamination drops rows and changes no column: the clean table has the verified QA layout.
SCHEMA = schemas.QA_CLEAN
HIT_DDL = "benchmark string, item_id string, ngram string"


def params_of(cfg: Config) -> DecontamParams:
    return cfg.decontam


def _checker(broadcast_index, n: int, check_fields: list[list[str]]):
    """A pandas UDF: struct of the checked QA columns -> struct of the first benchmark hit."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf(HIT_DDL)
    def check(qa):
        import pandas as pd

        from webscale_rl.udfs.decontam import check_qa

        index = broadcast_index.value  # loaded once per Python worker, then cached
        hits = [check_qa(row, index, n, check_fields) for row in qa.to_dict("records")]
        return pd.DataFrame(
            [tuple(h) if h else (None, None, None) for h in hits],
            columns=["benchmark", "item_id", "ngram"],
        )

    return check


def checked_columns(df, params: DecontamParams) -> list[str]:
    """The QA columns the check reads; a clear error when check_fields names a missing one."""
    columns = sorted({c for cols in params.check_fields for c in cols})
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise WebscaleError(
            f"decontam.check_fields names column(s) {missing} that the QA table lacks "
            f"(columns: {', '.join(df.columns)})"
        )
    return columns


def mark_contaminated(df, broadcast_index, params: DecontamParams):
    """The QA rows with the stage's status columns: contaminated rows carry a reject reason."""
    from pyspark.sql import functions as F

    columns = checked_columns(df, params)
    check = _checker(broadcast_index, params.n, params.check_fields)
    hit = F.col("_hit")
    found = hit["benchmark"].isNotNull()
    return (
        df.withColumn("_hit", check(F.struct(*[F.col(c).cast("string").alias(c) for c in columns])))
        .withColumn(
            tables.REJECT_REASON,
            F.when(found, F.concat(F.lit("contaminated:"), hit["benchmark"])),
        )
        .withColumn(tables.REJECT_DETAIL, F.when(found, F.to_json(hit)))
        .withColumn(tables.ROW_ID, F.col("qa_id"))
        .drop("_hit")
    )


def resolve_data_root(data_root: str) -> str:
    """A relative root is taken from the working directory, else from beside the checkout."""
    path = Path(data_root)
    if path.is_absolute() or path.exists():
        return str(path)
    beside_repo = REPO_ROOT / path
    return str(beside_repo) if beside_repo.exists() else str(path)


def available_benchmarks(params: DecontamParams, data_root: str):
    """The benchmarks to index, and the names left out because their files are missing
    (only with `on_missing: skip`; otherwise a missing file is an error before any work)."""
    if params.on_missing == "error":
        return list(params.benchmarks), []
    specs, skipped = [], []
    for spec in params.benchmarks:
        try:
            resolve_files(spec, data_root)
            specs.append(spec)
        except ConfigError:
            skipped.append(spec.name)
    return specs, skipped


def run(spark, cfg: Config, params: DecontamParams | None = None) -> StageResult:
    params = params or params_of(cfg)
    in_ref, out_ref = tables.table_ref(cfg, INPUT), tables.table_ref(cfg, OUTPUT)
    if not tables.exists(spark, in_ref):
        raise WebscaleError(f"input table {in_ref} does not exist: run the earlier stages first")
    in_version = tables.version(spark, in_ref)
    qa = tables.read(spark, in_ref, in_version)
    tables.check_columns(qa, SCHEMA, f"decontaminate input {in_ref}")
    checked_columns(qa, params)  # fail before the index is built

    data_root = resolve_data_root(params.data_root)
    specs, skipped = available_benchmarks(params, data_root)
    index = build_ngram_index(specs, params.n, data_root)
    broadcast_index = spark.sparkContext.broadcast(index)
    try:
        todo = tables.pending(spark, cfg, NAME, tables.conform(qa, SCHEMA), out_ref, "qa_id")
        results = mark_contaminated(todo, broadcast_index, params)
        counts = tables.commit_results(spark, cfg, NAME, results, out_ref, SCHEMA, key="qa_id")
    finally:
        broadcast_index.destroy()

    result = StageResult.from_counts(
        NAME,
        counts,
        spark,
        {in_ref: in_version},
        out_ref,
        metrics={
            "index_ngrams": len(index),
            "benchmarks": len(specs),
            "benchmarks_skipped": len(skipped),
        },
    )
    result.notes.append(
        f"n={params.n} benchmarks={','.join(b.name for b in specs)} index_ngrams={len(index)}"
    )
    if skipped:
        result.notes.append(
            f"benchmarks SKIPPED, files missing under {data_root}: {', '.join(skipped)}"
        )
    return result


main = stage_main_for(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
