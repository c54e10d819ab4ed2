"""Publish: the final `qa` table, one new Delta version per publish, plus exports and its card.

Publish reads `qa_clean`, the output of decontamination. When that table does not exist the
stage stops and names the stage to run; it reads an earlier QA table only when the run skips
stages explicitly (`--allow-skip decontaminate`, see jobs/pipeline.py), and then every skipped
stage, also those skipped by earlier runs upstream, is recorded in the `qa` commit's
userMetadata (`skipped_stages`), the dataset card and the MLflow run.

Each publish overwrites the whole table in one commit (carrying the run id in userMetadata),
sorted by qa_id so the same input gives the same table; older versions stay readable with
`VERSION AS OF`. Rows are dropped only for a reason that goes to `rejects`: `empty_text` and,
with `publish.max_domain_share` set, `domain_cap` (udfs/publish/domain_caps.py). The publish stage's
rejects are replaced on each publish, so they describe the current version.

A publish whose input version and options are those the latest `qa` commit records
(`published_from` in its userMetadata) writes nothing: the table, its rejects and its exports
are already what this publish would make (`publish_key`).

Then the trainer exports (udfs/publish/export_writer.py) and the dataset card (udfs/publish/card_facts.py,
udfs/publish/dataset_card.py) go to `<lakehouse>/exports/qa/v<version>/` and
`<lakehouse>/exports/qa/latest` names that folder.
"""

from __future__ import annotations

import json

from webscale_rl import tables, tracking
from webscale_rl.config import Config
from webscale_rl.errors import WebscaleError
from webscale_rl.ids import stable_hash
from webscale_rl.jobs.base import StageResult, stage_main_for
from webscale_rl.schemas import tables as schemas
from webscale_rl.stages import declared
from webscale_rl.udfs.publish.card_facts import FUNNEL, card_facts
from webscale_rl.udfs.publish.dataset_card import CardFacts, render_card
from webscale_rl.udfs.publish.domain_caps import domain_caps, mark_rows
from webscale_rl.udfs.publish.export_formats import FORMATS
from webscale_rl.udfs.publish.export_writer import read_text, write_exports, write_text
from webscale_rl.udfs.publish.table_versions import latest_commit, recorded_skips

DECL = declared("publish")  # name, tables, key: webscale_rl/stages.py
NAME, INPUT, OUTPUT, KEY = DECL.name, DECL.input, DECL.output, DECL.key

__all__ = ["domain_caps", "export_version", "run"]


def skipped_lineage(spark, cfg: Config) -> list[str]:
    """Every stage skipped on the way to this publish: by this run (`allow_skip`) or recorded
    in the commits of the pipeline tables upstream, in pipeline order."""
    from webscale_rl.jobs import pipeline

    skipped = set(pipeline.resolve_input(cfg, NAME)[1])
    for logical in FUNNEL:
        skipped |= recorded_skips(spark, tables.table_ref(cfg, logical))
    return [s for s in pipeline.STAGES if s in skipped]


def replace_rejects(spark, cfg: Config, marked) -> None:
    """This stage's rejects become exactly the rows dropped from the version just published.

    One commit replaces the `publish` partition of `rejects` (Delta replaceWhere), so the
    rejects always describe the current version and a reader never sees them half-replaced.
    """
    from pyspark.sql import functions as F

    ref = tables.table_ref(cfg, "rejects")
    rejected = marked.where(F.col(tables.REJECT_REASON).isNotNull()).select(
        F.lit(NAME).alias("stage"),
        F.col(KEY).alias("row_id"),
        F.col("doc_id").cast("string").alias("doc_id"),
        F.col(tables.REJECT_REASON).alias("reason"),
        F.col(tables.REJECT_DETAIL).alias("detail"),
        F.lit(cfg.run_id).alias("run_id"),
        F.current_timestamp().alias("rejected_at"),
    )
    if not tables.exists(spark, ref):
        tables.write_rejects(spark, cfg, rejected)
        return
    writer = (
        tables.conform(rejected, schemas.REJECTS)
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"stage = '{NAME}'")
    )
    writer.saveAsTable(ref) if tables.is_catalog_ref(ref) else writer.save(ref)


# --------------------------------------------------------------------------- entry points


def exports_root(cfg: Config) -> str:
    return (cfg.publish.exports_dir or f"{tables.lakehouse_root(cfg)}/exports/qa").rstrip("/")


def export_version(
    spark,
    cfg: Config,
    version: int | None = None,
    formats: list[str] | None = None,
    out_dir: str | None = None,
) -> tuple[str, CardFacts]:
    """Write the exports and card of one `qa` version (default: the latest); returns the folder."""
    ref = tables.table_ref(cfg, OUTPUT)
    latest = tables.version(spark, ref)
    if latest is None:
        raise WebscaleError(f"table {ref} does not exist: run the publish stage first")
    version = latest if version is None else version
    if not 0 <= version <= latest:
        raise WebscaleError(f"{ref} has versions 0..{latest}; version {version} does not exist")
    unknown = sorted(set(formats or []) - set(FORMATS))
    if unknown:
        raise WebscaleError(f"unknown export format(s) {unknown}; formats: {', '.join(FORMATS)}")
    params = cfg.export if not formats else cfg.export.model_copy(update={"formats": formats})
    out_dir = (out_dir or f"{exports_root(cfg)}/v{version}").rstrip("/")
    try:
        qa = tables.read(spark, ref, version)
    except Exception as err:
        raise WebscaleError(f"cannot read {ref} version {version}: {str(err)[:300]}") from None
    manifest = write_exports(spark, qa, out_dir, params)
    facts = card_facts(spark, cfg, version, manifest, params)
    write_text(f"{out_dir}/README.md", render_card(facts))
    return out_dir, facts


def publish_key(cfg: Config, in_ref: str, in_version: int | None) -> dict:
    """What a publish consumed: its input table at one version, and a digest of everything else
    that shapes the `qa` table and its exports (publish and export options, the stages this run
    skips). It goes into the `qa` commit's userMetadata (`published_from`)."""
    from webscale_rl.jobs import pipeline

    options = {
        # whether and where exports go changes no table: `unchanged` writes missing exports
        "publish": cfg.publish.model_dump(mode="json", exclude={"exports", "exports_dir"}),
        "export": cfg.export.model_dump(mode="json"),
        "allow_skip": pipeline.resolve_input(cfg, NAME)[1],
    }
    digest = stable_hash(json.dumps(options, sort_keys=True), length=16)
    return {"input": in_ref, "input_version": in_version, "options": digest}


def already_published(spark, out_ref: str, key: dict) -> tuple[int, dict] | None:
    """(version, commit metadata) of `qa` when its latest commit published this very key. Any
    later commit to `qa` (by hand, another run) makes publish write again: never stale."""
    latest = latest_commit(spark, out_ref)
    if latest is None or latest[1].get("published_from") != key:
        return None
    return latest


def exports_done(cfg: Config, version: int) -> bool:
    """`latest` is written last, after the exports and the card of a version, so it names the
    version only when they are complete (a crash in between leaves an older name)."""
    return (read_text(f"{exports_root(cfg)}/latest") or "").strip() == f"v{version}"


def export_latest(spark, cfg: Config, version: int, result: StageResult) -> None:
    out_dir, _ = export_version(spark, cfg, version)
    write_text(f"{exports_root(cfg)}/latest", f"v{version}\n")
    result.notes.append(f"exports and dataset card: {out_dir}")


def unchanged(spark, cfg: Config, key: dict, out_ref: str, found) -> StageResult:
    """Publish with nothing new: no `qa` version, no rejects commit; the exports and card of the
    current version are written only if a crash left them incomplete."""
    version, meta = found
    result = StageResult(stage=NAME, inputs={key["input"]: key["input_version"]})
    result.outputs = {out_ref: version}
    skipped = list(meta.get("skipped_stages") or [])
    tracking.set_tags(cfg, {"webscale_rl.skipped_stages": ",".join(skipped) or "none"})
    result.notes.append(
        f"unchanged: {key['input']} version {key['input_version']} with the same options is "
        f"already {out_ref} version {version}; nothing written"
    )
    if cfg.publish.exports and not exports_done(cfg, version):
        export_latest(spark, cfg, version, result)
    return result


def write_qa(spark, cfg: Config, out_ref: str, kept, skipped: list[str], key: dict) -> None:
    """Replace `qa` in one commit whose userMetadata also says what it was published from
    (a per-write option: tables.overwrite would reset the session's metadata to the plain one)."""
    meta = {"run_id": cfg.run_id, "stage": NAME, "published_from": key}
    if skipped:
        meta["skipped_stages"] = list(skipped)
    writer = (
        tables.conform(kept, schemas.QA)
        .write.format("delta")
        .mode("overwrite")
        .option("overwriteSchema", "true")
        .option("userMetadata", json.dumps(meta))
    )
    save = writer.saveAsTable if tables.is_catalog_ref(out_ref) else writer.save
    tables.retry_on_conflict(lambda: save(out_ref))


def run(spark, cfg: Config) -> StageResult:
    in_ref, out_ref = tables.table_ref(cfg, INPUT), tables.table_ref(cfg, OUTPUT)
    if not tables.exists(spark, in_ref):
        raise WebscaleError(
            f"stage {NAME}: input table {in_ref} does not exist: run stage decontaminate first "
            "(or skip it explicitly with --allow-skip decontaminate)"
        )
    in_version = tables.version(spark, in_ref)
    key = publish_key(cfg, in_ref, in_version)
    found = already_published(spark, out_ref, key)
    if found is not None:
        return unchanged(spark, cfg, key, out_ref, found)
    df = tables.read(spark, in_ref, in_version)
    tables.check_columns(df, schemas.QA, f"publish input {in_ref}")

    skipped = skipped_lineage(spark, cfg)
    # every commit below carries the run id and the skipped stages
    tables.set_commit_metadata(spark, cfg, NAME, skipped)
    marked = mark_rows(spark, df, cfg.publish.max_domain_share)
    result = StageResult(stage=NAME, inputs={in_ref: in_version})
    for r in marked.groupBy(tables.REJECT_REASON).count().collect():
        reason = r[tables.REJECT_REASON]
        result.rows_in += r["count"]
        if reason is None:
            result.rows_out = r["count"]
        else:
            result.rejects[reason] = r["count"]
    kept = marked.where(marked[tables.REJECT_REASON].isNull()).orderBy(KEY)
    # Rejects first: the qa commit ends the publish, and the card's funnel reads every table
    # as of that commit.
    replace_rejects(spark, cfg, marked)
    write_qa(spark, cfg, out_ref, kept, skipped, key)
    version = tables.version(spark, out_ref)
    result.outputs = {out_ref: version}
    tracking.set_tags(cfg, {"webscale_rl.skipped_stages": ",".join(skipped) or "none"})
    if skipped:
        result.notes.append(f"SKIPPED stages (--allow-skip): {', '.join(skipped)}")
    if cfg.publish.exports:
        export_latest(spark, cfg, version, result)
    return result


main = stage_main_for(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
