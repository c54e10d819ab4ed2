"""The short report a run prints: the funnel per stage, languages, rejects, where things are."""

from __future__ import annotations

from webscale_rl import tables, tracking
from webscale_rl.config import Config


def print_summary(spark, cfg: Config, results) -> None:
    from pyspark.sql import functions as F

    print("\n== webscale-rl run summary ==")
    print(f"{'stage':<14}{'in':>9}{'kept':>9}{'rejected':>10}{'done before':>13}")
    for r in results:
        print(f"{r.stage:<14}{r.rows_in:>9}{r.rows_out:>9}{r.rejected:>10}{r.skipped:>13}")
    docs = tables.table_ref(cfg, "documents")
    if tables.exists(spark, docs):
        langs = (
            tables.read(spark, docs)
            .groupBy("lang")
            .count()
            .orderBy(F.desc("count"))
            .limit(8)
            .collect()
        )
        print("documents by language: " + ", ".join(f"{r['lang']}={r['count']}" for r in langs))
    rejects = tables.table_ref(cfg, "rejects")
    if tables.exists(spark, rejects):
        rows = (
            tables.read(spark, rejects)
            .where(F.col("run_id") == cfg.run_id)
            .groupBy("stage", "reason")
            .count()
            .orderBy("stage", F.desc("count"))
            .collect()
        )
        if rows:
            print("rejects this run by stage/reason:")
            for r in rows:
                print(f"  {r['stage']:<14}{r['reason']:<40}{r['count']:>8}")
    print(f"lakehouse: {tables.lakehouse_root(cfg)}")
    if cfg.mlflow.enabled:
        print(f"mlflow: {tracking.tracking_uri(cfg)}  run_id={cfg.run_id}")
