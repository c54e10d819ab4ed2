"""Decontaminate: drop QA pairs that overlap an eval benchmark -> `qa_clean`.

The indexes of every benchmark (13-grams, and the near-match index) are built once on the driver
(a missing file or field fails here, before any Spark work), broadcast, and each executor checks
its QA rows with a pandas UDF. A contaminated row goes to `rejects` with reason
`contaminated:<benchmark>` and a JSON detail naming the benchmark, the item, the method
(exact_ngram, containment, near_match), the score, the matched words and the QA columns checked:

    SELECT get_json_object(detail, '$.method') AS method, count(*) FROM rejects
    WHERE stage = 'decontaminate' GROUP BY 1

Reruns only check rows not yet decided, and build no index when none is left. A built index is
kept in `<lakehouse>/_decontam_index` under a fingerprint of the benchmark files, the settings
and the code (udfs/decontam/index_cache.py): the next run with new rows loads it instead of
building it again. `preflight` checks the benchmark files before the first stage of a run, so a
missing file stops the run before any GPU work.
"""

from __future__ import annotations

import os

from webscale_rl import files, increments, tables
from webscale_rl.config import REPO_ROOT, Config
from webscale_rl.errors import ConfigError, WebscaleError
from webscale_rl.jobs.base import StageResult, stage_main_for
from webscale_rl.schemas import tables as schemas
from webscale_rl.stages import declared
from webscale_rl.udfs.decontam import index_cache
from webscale_rl.udfs.decontam.ngrams import DecontamIndex, DecontamParams, missing_files

DECL = declared("decontaminate")  # name, tables, key: webscale_rl/stages.py
NAME, INPUT, OUTPUT, KEY = DECL.name, DECL.input, DECL.output, DECL.key

# Decontamination drops rows and changes no column: the clean table has the verified QA layout.
SCHEMA = schemas.QA_CLEAN
HIT_DDL = (
    "benchmark string, item_id string, method string, score double, matched string, checked string"
)
HIT_COLUMNS = ["benchmark", "item_id", "method", "score", "matched", "checked"]


def params_of(cfg: Config) -> DecontamParams:
    return cfg.decontam


def _checker(broadcast_index):
    """A pandas UDF: struct of the checked QA columns -> struct of the first benchmark match."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf(HIT_DDL)
    def check(qa):
        import pandas as pd

        index = broadcast_index.value  # loaded once per Python worker, then cached
        hits = [index.find(row) for row in qa.to_dict("records")]
        empty = (None,) * len(HIT_COLUMNS)
        return pd.DataFrame([tuple(h) if h else empty for h in hits], columns=HIT_COLUMNS)

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
    check = _checker(broadcast_index)
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
    """A URI or absolute path as is; a relative one from the working directory, else from
    beside the checkout."""
    if files.URI.match(data_root) or os.path.isabs(data_root) or os.path.exists(data_root):
        return data_root
    beside_repo = REPO_ROOT / data_root
    return str(beside_repo) if beside_repo.exists() else data_root


def available_benchmarks(params: DecontamParams, data_root: str, spark=None):
    """The benchmarks to index, and the names left out because their files are missing
    (only with `on_missing: skip`; otherwise a missing file is an error before any work)."""
    if params.on_missing == "error":
        return list(params.benchmarks), []
    missing = missing_files(params.benchmarks, data_root, spark)
    return [s for s in params.benchmarks if s.name not in missing], list(missing)


def preflight(spark, cfg: Config) -> list[str]:
    """Before a run's first stage: every benchmark file exists (one error naming each missing
    one), or with `on_missing: skip` a note naming those that will be skipped."""
    params = params_of(cfg)
    data_root = resolve_data_root(params.data_root)
    missing = missing_files(params.benchmarks, data_root, spark)
    if not missing:
        return []
    if params.on_missing == "skip":
        return [f"decontaminate will skip benchmarks with missing files: {', '.join(missing)}"]
    raise ConfigError(
        "decontaminate: benchmark files missing, checked before any stage ran:\n  "
        + "\n  ".join(missing.values())
        + "\nFetch them with `python deploy/fetch_benchmarks.py --out DIR` and set "
        "decontam.data_root=DIR, or run with --set decontam.on_missing=skip to leave them out."
    )


def load_or_build_index(spark, cfg: Config, specs, params: DecontamParams, data_root: str):
    """(index, "cached" | "built"): the index an earlier run stored under the same fingerprint,
    else a new build, stored for the next run."""
    key = index_cache.fingerprint(specs, params, data_root, spark)
    index = index_cache.load(spark, cfg, key)
    if index is not None:
        return index, "cached"
    index = DecontamIndex.build(specs, params, data_root, spark)
    index_cache.store(spark, cfg, key, index)
    return index, "built"


def check_pending(spark, cfg: Config, todo, out_ref: str, index, params: DecontamParams):
    """Check and commit the pending rows with the index broadcast to the executors."""
    broadcast_index = spark.sparkContext.broadcast(index)
    try:
        results = mark_contaminated(todo, broadcast_index, params)
        return tables.commit_results(spark, cfg, NAME, results, out_ref, SCHEMA, key="qa_id")
    finally:
        broadcast_index.destroy()


def run(spark, cfg: Config, params: DecontamParams | None = None) -> StageResult:
    params = params or params_of(cfg)
    in_ref, out_ref = tables.table_ref(cfg, INPUT), tables.table_ref(cfg, OUTPUT)
    if not tables.exists(spark, in_ref):
        raise WebscaleError(f"input table {in_ref} does not exist: run the earlier stages first")
    source = increments.read_input(spark, cfg, NAME, INPUT, out_ref)
    qa, in_version = source.full, source.version
    tables.check_columns(qa, SCHEMA, f"decontaminate input {in_ref}")
    checked_columns(qa, params)  # fail before the index is built

    data_root = resolve_data_root(params.data_root)
    specs, skipped = available_benchmarks(params, data_root, spark)
    todo = tables.pending(
        spark, cfg, NAME, tables.conform(source.rows_read(), SCHEMA), out_ref, "qa_id"
    )
    if increments.nothing_left(spark, source, todo, out_ref, "qa_id"):
        # A rerun with every row decided: no index (about 10 s of driver work), no commit.
        index, built, counts = None, "not_needed", tables.CommitCounts()
    else:
        index, built = load_or_build_index(spark, cfg, specs, params, data_root)
        counts = check_pending(spark, cfg, todo, out_ref, index, params)
        increments.record_finished(spark, cfg, NAME, source)

    sizes = index.metrics() if index is not None else {}
    result = StageResult.from_counts(
        NAME,
        counts,
        spark,
        {in_ref: in_version},
        out_ref,
        metrics={
            **sizes,
            "index_built": int(built == "built"),
            "index_cached": int(built == "cached"),
            "benchmarks": len(specs),
            "benchmarks_skipped": len(skipped),
        },
    )
    shown = " ".join(f"{k}={v}" for k, v in sizes.items())
    near = f"near_match>={params.near.threshold}" if params.near.enabled else "near_match off"
    result.notes.append(
        f"n={params.n} {near} benchmarks={','.join(b.name for b in specs)} index={built} {shown}"
    )
    if source.note:
        result.notes.append(source.note)
    if skipped:
        result.notes.append(
            f"benchmarks SKIPPED, files missing under {data_root}: {', '.join(skipped)}"
        )
    return result


main = stage_main_for(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
