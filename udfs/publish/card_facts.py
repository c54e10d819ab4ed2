"""The facts of a dataset card, computed with Spark from the tables as of one `qa` version."""

from __future__ import annotations

import datetime as dt

import webscale_rl
from webscale_rl import tables
from webscale_rl.config import Config
from webscale_rl.udfs.publish.dataset_card import CardFacts, ExportSettings, PublishParams
from webscale_rl.udfs.publish.export_formats import SPLITS
from webscale_rl.udfs.publish.table_versions import commit_info, version_at

OUTPUT = "qa"
# Pipeline tables from documents to QA, for the card's funnel.
FUNNEL = (
    "documents",
    "filtered",
    "deduped",
    "annotations",
    "qa_candidates",
    "qa_verified",
    "qa_deduped",
    "qa_clean",
)
BREAKDOWNS = ("domain", "answer_type", "source", "model", "prompt_version")


def breakdowns(qa) -> dict[str, dict]:
    """Column -> {value: rows} for every BREAKDOWNS column, in one pass over the table."""
    from pyspark.sql import functions as F

    pairs = F.explode(
        F.array(
            *[F.struct(F.lit(c).alias("k"), F.col(c).cast("string").alias("v")) for c in BREAKDOWNS]
        )
    )
    out: dict[str, dict] = {c: {} for c in BREAKDOWNS}
    for r in qa.select(pairs.alias("p")).groupBy("p.k", "p.v").count().collect():
        out[r["k"]][r["v"]] = r["count"]
    return out


def funnel_and_rejects(spark, cfg: Config, when: dt.datetime):
    """Rows per pipeline table and rejects per stage/reason, as they were at `when`."""
    funnel: dict[str, int] = {}
    for logical in FUNNEL:
        ref = tables.table_ref(cfg, logical)
        v = version_at(spark, ref, when)
        if v is not None:
            funnel[tables.table_name(cfg, logical)] = tables.read(spark, ref, v).count()
    rejects: dict[str, dict[str, int]] = {}
    ref = tables.table_ref(cfg, "rejects")
    v = version_at(spark, ref, when)
    if v is not None:
        for r in tables.read(spark, ref, v).groupBy("stage", "reason").count().collect():
            rejects.setdefault(r["stage"], {})[r["reason"]] = r["count"]
    return funnel, rejects


def card_facts(
    spark, cfg: Config, version: int, manifest: list[dict], params: ExportSettings
) -> CardFacts:
    ref = tables.table_ref(cfg, OUTPUT)
    qa = tables.read(spark, ref, version)
    published_at, meta = commit_info(spark, ref, version)
    counts = breakdowns(qa)
    rows = sum(counts["domain"].values())
    funnel, rejects = funnel_and_rejects(spark, cfg, published_at)
    funnel[f"{tables.table_name(cfg, OUTPUT)} (published)"] = rows
    export_files: dict[str, list[str]] = {}
    for m in manifest:
        export_files.setdefault(m["folder"], []).append(m["path"])
    first = manifest[0]["folder"] if manifest else None
    split_rows = {
        s: sum(m["rows"] for m in manifest if m["folder"] == first and m["split"] == s)
        for s in SPLITS
    }
    publish: PublishParams = cfg.publish
    return CardFacts(
        title=publish.title,
        table=ref,
        version=version,
        run_id=meta.get("run_id", ""),
        skipped_stages=list(meta.get("skipped_stages") or []),
        published_at=published_at.isoformat(sep=" ", timespec="seconds"),
        pipeline_version=webscale_rl.__version__,
        rows=rows,
        domains=counts["domain"],
        answer_types=counts["answer_type"],
        sources=counts["source"],
        models=counts["model"],
        prompt_versions=counts["prompt_version"],
        split_rows=split_rows,
        funnel=funnel,
        rejects=rejects,
        export_files=export_files,
        template=params.template,
        data_source=params.data_source,
        licence_notes=list(publish.licence_notes),
    )
