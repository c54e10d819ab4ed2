"""Publish: the final `qa` table, one new Delta version per publish, plus exports and its card.

Each publish overwrites the whole table in one commit (carrying the run id in userMetadata),
sorted by qa_id so the same input gives the same table; older versions stay readable with
`VERSION AS OF`. Rows are dropped only for a reason that goes to `rejects`: `empty_text` (no
question or answer: no trainer can use it) and, with `publish.max_domain_share` set,
`domain_cap` (a domain over its share loses rows in xxhash64(qa_id) order). The publish stage's
rejects are replaced on each publish, so they describe the current version.

Then the trainer exports and the dataset card go to `<lakehouse>/exports/qa/v<version>/` and
`<lakehouse>/exports/qa/latest` names that folder. Exports are written by Spark tasks, never
collected to the driver: the table is hash-partitioned by qa_id into ceil(rows/rows_per_file)
shards, each task converts its rows batch by batch (udfs/export_formats.py) and streams them
into its own shard file per format and split, so memory per task is one Arrow batch.
"""

from __future__ import annotations

import datetime as dt
import math
import os

import webscale_rl
from webscale_rl import files, tables
from webscale_rl.config import Config
from webscale_rl.errors import WebscaleError
from webscale_rl.jobs.base import StageResult, stage_main_for
from webscale_rl.schemas import tables as schemas
from webscale_rl.udfs.dataset_card import (
    EXPORT_DIRS,
    CardFacts,
    ExportSettings,
    PublishParams,
    export_dirs,
    render_card,
    shard_name,
)
from webscale_rl.udfs.export_formats import FORMATS, QA_COLUMNS, SPLITS

NAME = "publish"
INPUT = "qa_clean"
OUTPUT = "qa"
KEY = "qa_id"

# When decontamination has not run, publish the furthest-along QA table there is.
FALLBACK_INPUTS = ("qa_deduped", "qa_verified")
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
MANIFEST_DDL = "folder string, split string, path string, rows long, part int"  # one per file
MANIFEST_COLUMNS = ["folder", "split", "path", "rows", "part"]


# --------------------------------------------------------------------------- input


def pick_input(spark, cfg: Config) -> tuple[str, str | None]:
    """(logical input table, note): `qa_clean`, else the latest earlier QA table that exists."""
    for logical in (INPUT, *FALLBACK_INPUTS):
        if tables.exists(spark, tables.table_ref(cfg, logical)):
            if logical == INPUT:
                return logical, None
            return (
                logical,
                f"input: {logical} ({INPUT} does not exist: decontamination has not run)",
            )
    raise WebscaleError(
        f"stage {NAME}: none of the tables {', '.join((INPUT, *FALLBACK_INPUTS))} exists under "
        f"{tables.lakehouse_root(cfg)}; run the QA stages first"
    )


def input_units(spark, cfg: Config):
    """The qa_ids publish decides on (for `webscale-rl audit`), from the table it really reads."""
    logical, _ = pick_input(spark, cfg)
    return tables.read(spark, tables.table_ref(cfg, logical)).select(KEY)


# --------------------------------------------------------------------------- rebalancing


def domain_caps(counts: dict, max_share: float | None) -> dict:
    """Domain -> rows it keeps, for the domains over the cap (empty: nothing to drop).

    The cap C is the largest row count such that no domain holds more than `max_share` of the
    table left after capping: C <= max_share * sum(min(n_d, C)). That sum is concave in C, so
    the allowed C form a range from 0 and a binary search finds its top.
    """
    if max_share is None or not counts:
        return {}
    if not 0.0 < max_share <= 1.0:
        raise ValueError(f"max_share must be in (0, 1], got {max_share}")

    def fits(cap: int) -> bool:
        return cap <= max_share * sum(min(n, cap) for n in counts.values()) + 1e-9

    low, high = 0, max(counts.values())
    if fits(high):
        return {}
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    if low == 0:
        raise ValueError(
            f"max_domain_share={max_share} cannot hold with {len(counts)} domains: even equal "
            f"domains have a share of 1/{len(counts)} = {1 / len(counts):.3f}"
        )
    return {domain: low for domain, n in counts.items() if n > low}


def mark_rows(spark, df, max_share: float | None):
    """Input rows plus `_reject_reason`/`_reject_detail`: empty_text, domain_cap or null (kept)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    reason, detail = tables.REJECT_REASON, tables.REJECT_DETAIL
    empty = F.lit(False)
    for column in ("question", "answer"):
        empty = empty | F.coalesce(F.trim(F.col(column)) == "", F.lit(True))
    marked = df.withColumn(reason, F.when(empty, F.lit("empty_text"))).withColumn(
        detail, F.when(empty, F.lit("question or answer is empty"))
    )
    if max_share is None:
        return marked
    usable = marked.where(F.col(reason).isNull())
    counts = {r["domain"]: r["count"] for r in usable.groupBy("domain").count().collect()}
    try:
        caps = domain_caps(counts, max_share)
    except ValueError as err:
        raise WebscaleError(f"publish.max_domain_share: {err}") from None
    if not caps:
        return marked
    caps_df = spark.createDataFrame(
        [(d, cap, counts[d]) for d, cap in caps.items()],
        "_cap_domain string, _cap long, _domain_rows long",
    )
    joined = marked.join(
        F.broadcast(caps_df), marked["domain"].eqNullSafe(caps_df["_cap_domain"]), "left"
    )
    # Only rows of capped domains are ranked: the sort stays off the other domains.
    over = F.col("_cap").isNotNull() & F.col(reason).isNull()
    rank = F.row_number().over(
        Window.partitionBy("domain").orderBy(F.xxhash64(F.col(KEY)), F.col(KEY))
    )
    capped = (
        joined.where(over)
        .withColumn("_rank", rank)
        .withColumn(reason, F.when(F.col("_rank") > F.col("_cap"), F.lit("domain_cap")))
        .withColumn(
            detail,
            F.when(
                F.col(reason).isNotNull(),
                F.format_string(
                    "domain %s keeps %d of %d rows (max_domain_share=%s)",
                    F.coalesce(F.col("domain"), F.lit("(none)")),
                    F.col("_cap"),
                    F.col("_domain_rows"),
                    F.lit(str(max_share)),
                ),
            ),
        )
        .drop("_rank")
    )
    rest = joined.where(~over)
    return rest.unionByName(capped).drop("_cap_domain", "_cap", "_domain_rows")


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


# --------------------------------------------------------------------------- files


def _filesystem(path: str):
    """(pyarrow FileSystem, path inside it) for a local path, dbfs:/ (via /dbfs) or a URI."""
    import pyarrow.fs as pafs

    if files.is_local(path) or path.startswith("dbfs:/"):
        return pafs.LocalFileSystem(), os.path.abspath(files.local_path(path))
    try:
        return pafs.FileSystem.from_uri(path)
    except Exception as err:  # pyarrow raises ArrowInvalid/OSError for unknown schemes
        raise WebscaleError(f"cannot write exports to {path!r}: {err}") from None


def write_text(path: str, text: str) -> None:
    fs, inner = _filesystem(path)
    fs.create_dir(os.path.dirname(inner), recursive=True)
    with fs.open_output_stream(inner) as out:
        out.write(text.encode("utf-8"))


class ShardWriter:
    """One task's shard of every export folder and split, written batch by batch.

    Files are written under a temporary name and renamed when complete, so a retried or
    speculative task never leaves a half-written shard under the final name.
    """

    def __init__(self, out_dir: str, folders: dict, part: int, n_parts: int, attempt: int):
        self.fs, self.root = _filesystem(out_dir)
        self.folders, self.part, self.n_parts = folders, part, n_parts
        self.suffix = f".tmp-{attempt}"
        self.open: dict[tuple[str, str], tuple] = {}  # (folder, split) -> (stream, writer)
        self.rows: dict[tuple[str, str], int] = {}

    def path(self, folder: str, split: str) -> str:
        ext = self.folders[folder][1]
        return f"{self.root}/{folder}/{shard_name(split, self.part, self.n_parts, ext)}"

    def _stream(self, folder: str, split: str):
        """The (stream, Parquet writer or None) of a shard, opened at its first rows."""
        import pyarrow.parquet as pq

        from webscale_rl.udfs.export_formats import ARROW_SCHEMAS

        key = (folder, split)
        if key not in self.open:
            fmt, ext = self.folders[folder]
            stream = self.fs.open_output_stream(self.path(folder, split) + self.suffix)
            writer = pq.ParquetWriter(stream, ARROW_SCHEMAS[fmt]) if ext == "parquet" else None
            self.open[key] = (stream, writer)
            self.rows[key] = 0
        return self.open[key]

    def write(self, folder: str, split: str, frame) -> None:
        from webscale_rl.udfs.export_formats import to_arrow

        # No rows, no shard: `datasets` cannot read an empty Parquet or JSON lines file.
        if frame.empty:
            return
        stream, writer = self._stream(folder, split)
        if writer is None:
            text = frame.to_json(orient="records", lines=True, force_ascii=False)
            stream.write((text if text.endswith("\n") else text + "\n").encode("utf-8"))
        else:
            writer.write_table(to_arrow(frame, self.folders[folder][0]))
        self.rows[(folder, split)] += len(frame)

    def close(self) -> list[dict]:
        """Finish every shard, move it to its final name, and list them."""
        done = []
        for (folder, split), (stream, writer) in self.open.items():
            if writer is not None:
                writer.close()
            stream.close()
            final = self.path(folder, split)
            self.fs.move(final + self.suffix, final)
            rel = f"{folder}/{os.path.basename(final)}"
            rows = self.rows[(folder, split)]
            done.append(dict(folder=folder, split=split, path=rel, rows=rows, part=self.part))
        return done


def _shard_task(out_dir: str, folders: dict, n_parts: int, offsets: dict, params_json: str):
    """The mapInPandas function: convert and write this partition's rows, return a manifest."""

    def write(batches):
        import pandas as pd
        from pyspark import TaskContext

        from webscale_rl.udfs.export_formats import export_frames

        params = ExportSettings.model_validate_json(params_json)
        ctx = TaskContext.get()
        part = ctx.partitionId()
        writer = ShardWriter(out_dir, folders, part, n_parts, ctx.attemptNumber())
        position = offsets.get(part, 0)
        for batch in batches:
            frames = export_frames(batch, params)
            for folder, (fmt, _) in folders.items():
                for split in SPLITS:
                    frame = frames[fmt][split]
                    if fmt == "verl" and len(frame):  # extra_info.index: position in the export
                        frame = frame.assign(
                            extra_info=[
                                {**info, "index": info["index"] + position}
                                for info in frame["extra_info"]
                            ]
                        )
                    writer.write(folder, split, frame)
            position += len(batch)
        yield pd.DataFrame(writer.close(), columns=MANIFEST_COLUMNS)

    return write


def write_exports(spark, qa, out_dir: str, params: ExportSettings) -> list[dict]:
    """Write every export shard of the QA rows under out_dir; returns the file manifest.

    Row order inside the export is (shard, qa_id), with shards from a hash of qa_id: the same
    table always gives the same files. A small table is one shard per format and split; a
    shard with no rows of a split has no file for it (datasets cannot read empty files).
    """
    import pyarrow.fs as pafs
    from pyspark.sql import functions as F

    folders = export_dirs(list(params.formats), params.jsonl)
    if not folders:
        raise WebscaleError("no export formats selected")
    rows = qa.count()
    n_parts = max(1, math.ceil(rows / params.rows_per_file))
    shards = qa.select(*QA_COLUMNS).repartition(n_parts, KEY).sortWithinPartitions(KEY)
    sizes = shards.groupBy(F.spark_partition_id().alias("p")).count().collect()
    by_part = {r["p"]: r["count"] for r in sizes}
    offsets, total = {}, 0
    for part in range(n_parts):
        offsets[part], total = total, total + by_part.get(part, 0)

    # Empty every export folder (also of formats not written now): the card lists what is there.
    fs, root = _filesystem(out_dir)
    for folder in EXPORT_DIRS:
        if fs.get_file_info(f"{root}/{folder}").type != pafs.FileType.NotFound:
            fs.delete_dir(f"{root}/{folder}")
    for folder in folders:
        fs.create_dir(f"{root}/{folder}", recursive=True)
    task = _shard_task(out_dir, folders, n_parts, offsets, params.model_dump_json())
    manifest = [r.asDict() for r in shards.mapInPandas(task, MANIFEST_DDL).collect()]
    return sorted(manifest, key=lambda m: m["path"])


# --------------------------------------------------------------------------- card


def commit_info(spark, ref: str, version: int) -> tuple[dt.datetime, str]:
    """(commit time, run id from userMetadata) of one table version."""
    import json

    from pyspark.sql import functions as F

    row = (
        tables.delta_table(spark, ref)
        .history()
        .where(F.col("version") == version)
        .select("timestamp", "userMetadata")
        .first()
    )
    if row is None:
        raise WebscaleError(f"{ref} has no version {version}")
    try:
        run_id = json.loads(row["userMetadata"] or "{}").get("run_id", "")
    except ValueError:
        run_id = row["userMetadata"] or ""
    return row["timestamp"], run_id


def version_at(spark, ref: str, when: dt.datetime) -> int | None:
    """The table's version current at `when` (None: no such table, or created later)."""
    from pyspark.sql import functions as F

    if not tables.exists(spark, ref):
        return None
    row = (
        tables.delta_table(spark, ref)
        .history()
        .where(F.col("timestamp") <= F.lit(when))
        .agg(F.max("version"))
        .first()
    )
    return None if row[0] is None else int(row[0])


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
    published_at, run_id = commit_info(spark, ref, version)
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
        run_id=run_id,
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


def run(spark, cfg: Config) -> StageResult:
    logical, note = pick_input(spark, cfg)
    in_ref, out_ref = tables.table_ref(cfg, logical), tables.table_ref(cfg, OUTPUT)
    in_version = tables.version(spark, in_ref)
    df = tables.read(spark, in_ref, in_version)
    tables.check_columns(df, schemas.QA, f"publish input {in_ref}")

    tables.set_commit_metadata(spark, cfg, NAME)  # every commit below carries the run id
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
    tables.overwrite(spark, cfg, NAME, out_ref, kept, schemas.QA)
    version = tables.version(spark, out_ref)
    result.outputs = {out_ref: version}
    if note:
        result.notes.append(note)
    if cfg.publish.exports:
        out_dir, _ = export_version(spark, cfg, version)
        write_text(f"{exports_root(cfg)}/latest", f"v{version}\n")
        result.notes.append(f"exports and dataset card: {out_dir}")
    return result


main = stage_main_for(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
