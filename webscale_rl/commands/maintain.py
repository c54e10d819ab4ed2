"""`webscale-rl maintain`: compact (OPTIMIZE) and clean (VACUUM) every existing lakehouse table.

Stages commit in many small merges, so tables collect small files; OPTIMIZE rewrites them into
few large ones. VACUUM then deletes files no table version within the retention still needs.
A retention below Delta's safety default (7 days) can break time travel and concurrent readers,
so it is refused unless `--force`.

It also deletes leftover staging tables (`<lakehouse>/_staging/<stage>/<uuid>`): a stage holds
one only between writing a chunk's results and merging them (minutes), so one older than
`staging_hours` belongs to a run that was killed mid-commit. Its rows were never merged, and a
rerun redoes them, so deleting it loses nothing. LLM response-journal files older than
`journal_hours` go too: they only matter until their rows are committed.

The pipeline's side tables beside the lakehouse tables are kept up too:
- `_decontam_index`: indexes (about 33 MB each) of fingerprints other than the one the config's
  next decontaminate run uses are deleted (Delta DELETE), then the table is vacuumed. It is not
  compacted: each stored index is one file, so a later DELETE drops whole files. When the
  current fingerprint cannot be computed (benchmark files missing), every index is kept.
- `_dedup_signatures/<table>_<digest>`: tables of hashing parameters other than the config's
  (dedup and qa_dedup) are deleted; a run with those parameters would backfill a fresh one.
- `_ingested_inputs`, `_progress` (webscale_rl/increments.py) and the current signature tables:
  OPTIMIZE and VACUUM as any table.
`prune_side_tables` off keeps every index and signature table (and still compacts and vacuums).
"""

from __future__ import annotations

import posixpath
import time

from pydantic import BaseModel, ConfigDict, Field

from webscale_rl import tables
from webscale_rl.config import Config, TableNames
from webscale_rl.errors import WebscaleError
from webscale_rl.udfs.llm.journal import prune as prune_journal

NAME = "maintain"
HELP = "OPTIMIZE and VACUUM every lakehouse table"
DESCRIPTION = (
    "Compact small files (Delta OPTIMIZE) and delete files older than the retention that no "
    "table version needs (VACUUM), on every lakehouse table that exists."
)
EXAMPLE = "webscale-rl maintain --retain-hours 168"

# Delta's default `delta.deletedFileRetentionDuration` (interval 1 week): below it, VACUUM can
# delete files an older snapshot or a running reader still uses.
SAFE_RETENTION_HOURS = 168.0
RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
SIGNATURES = "_dedup_signatures"  # jobs/dedup.py signatures_ref: one folder per table and params


class MaintainParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retain_hours: float = Field(
        SAFE_RETENTION_HOURS, ge=0, description="VACUUM keeps files younger than this many hours."
    )
    optimize: bool = Field(True, description="Run OPTIMIZE (file compaction) on each table.")
    vacuum: bool = Field(True, description="Run VACUUM on each table.")
    staging_hours: float = Field(
        24.0,
        ge=1,
        description="Delete staging tables left by killed runs once older than this many hours.",
    )
    journal_hours: float = Field(
        SAFE_RETENTION_HOURS,
        ge=1,
        description="Delete LLM response-journal files older than this many hours.",
    )
    prune_side_tables: bool = Field(
        True,
        description="Delete decontamination indexes and dedup signature tables that the "
        "current config no longer uses.",
    )


def add_arguments(p) -> None:
    p.add_argument(
        "--retain-hours",
        type=float,
        default=None,
        help=f"VACUUM retention in hours (default {SAFE_RETENTION_HOURS:g}).",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help=f"allow a retention below {SAFE_RETENTION_HOURS:g} h (breaks older time travel)",
    )
    p.add_argument("--tables", help="comma-separated logical table names (default: all)")
    p.add_argument("--no-optimize", action="store_true", help="skip OPTIMIZE")
    p.add_argument("--no-vacuum", action="store_true", help="skip VACUUM")
    p.add_argument(
        "--journal-hours",
        type=float,
        default=None,
        help=f"delete LLM response-journal files older than this (default {SAFE_RETENTION_HOURS:g})",
    )
    p.add_argument(
        "--staging-hours",
        type=float,
        default=None,
        help="delete staging tables of killed runs older than this (default 24, at least 1)",
    )
    p.add_argument(
        "--no-prune-side-tables",
        action="store_true",
        help="keep decontamination indexes and dedup signature tables of other settings",
    )


def check_retention(retain_hours: float, force: bool) -> None:
    if retain_hours < 0:
        raise WebscaleError(f"--retain-hours must be >= 0, got {retain_hours:g}")
    if retain_hours < SAFE_RETENTION_HOURS and not force:
        raise WebscaleError(
            f"a VACUUM retention of {retain_hours:g} h is below Delta's safety default of "
            f"{SAFE_RETENTION_HOURS:g} h: it deletes files that time travel to older versions "
            "and readers still running may need. Pass --force if that is what you want."
        )


def existing_tables(spark, cfg: Config, names: list[str] | None = None) -> list[tuple[str, str]]:
    """(logical name, table ref) of every configured table that exists, in config order."""
    logical = list(TableNames.model_fields)
    if names:
        unknown = [n for n in names if n not in logical]
        if unknown:
            raise WebscaleError(f"unknown table(s) {unknown}; tables: {', '.join(logical)}")
        logical = [n for n in logical if n in names]
    refs = [(n, tables.table_ref(cfg, n)) for n in logical]
    return [(n, ref) for n, ref in refs if tables.exists(spark, ref)]


def file_count(spark, ref: str) -> int:
    """Data files in the table's current version."""
    return int(tables.delta_table(spark, ref).detail().select("numFiles").first()[0])


def optimize(spark, ref: str) -> None:
    tables.delta_table(spark, ref).optimize().executeCompaction()


def vacuum(spark, ref: str, retain_hours: float, force: bool = False) -> None:
    check_retention(retain_hours, force)
    if retain_hours >= SAFE_RETENTION_HOURS:
        tables.delta_table(spark, ref).vacuum(retain_hours)
        return
    # Delta refuses a short retention by itself; lift its check for this call only.
    previous = spark.conf.get(RETENTION_CHECK, None)
    spark.conf.set(RETENTION_CHECK, "false")
    try:
        tables.delta_table(spark, ref).vacuum(retain_hours)
    finally:
        if previous is None:
            spark.conf.unset(RETENTION_CHECK)
        else:
            spark.conf.set(RETENTION_CHECK, previous)


def maintain_table(
    spark, name: str, ref: str, params: MaintainParams, force: bool, compact: bool = True
) -> dict:
    """OPTIMIZE (unless `compact` is off) then VACUUM one table, as `params` say."""
    before = file_count(spark, ref)
    if params.optimize and compact:
        optimize(spark, ref)
    after = file_count(spark, ref)
    if params.vacuum:
        vacuum(spark, ref, params.retain_hours, force)
    return {"table": name, "ref": ref, "files_before": before, "files_after": after}


def hadoop_path(spark, path: str):
    """(file system, Hadoop path) of `path`, local or remote."""
    hpath = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


def stale_staging(spark, cfg: Config, older_than_hours: float) -> list[str]:
    """Staging tables (`_staging/<stage>/<uuid>`) not modified for `older_than_hours`."""
    fs, root = hadoop_path(spark, tables.staging_root(cfg))
    if not fs.exists(root):
        return []
    cutoff_ms = (time.time() - older_than_hours * 3600) * 1000
    stale = []
    for stage_dir in fs.listStatus(root):
        if not stage_dir.isDirectory():
            continue
        for table_dir in fs.listStatus(stage_dir.getPath()):
            if table_dir.isDirectory() and _last_modified_ms(fs, table_dir) < cutoff_ms:
                stale.append(table_dir.getPath().toString())
    return sorted(stale)


def _last_modified_ms(fs, status) -> float:
    """The newest modification time under a directory (a commit writes its log last)."""
    newest = status.getModificationTime()
    files = fs.listFiles(status.getPath(), True)
    while files.hasNext():
        newest = max(newest, files.next().getModificationTime())
    return newest


def clean_staging(spark, cfg: Config, older_than_hours: float) -> list[str]:
    """Delete stale staging tables; returns their paths."""
    stale = stale_staging(spark, cfg, older_than_hours)
    for path in stale:
        tables.drop_path(spark, path)
    return stale


def maintain(
    spark, cfg: Config, params: MaintainParams, force: bool = False, names=None
) -> list[dict]:
    """OPTIMIZE then VACUUM each existing table; returns one summary dict per table.

    With all tables selected (no `names`), the side tables follow (`maintain_side_tables`),
    then stale staging tables and old LLM journal files are deleted, reported as rows with
    `table` "_staging" (paths removed) and "_llm_journal" (files pruned).
    """
    check_retention(params.retain_hours, force or not params.vacuum)
    tables.set_commit_metadata(spark, cfg, NAME)
    done = [
        maintain_table(spark, logical, ref, params, force)
        for logical, ref in existing_tables(spark, cfg, names)
    ]
    if not names:
        done += maintain_side_tables(spark, cfg, params, force)
        removed = clean_staging(spark, cfg, params.staging_hours)
        if removed:
            root = tables.staging_root(cfg)
            done.append({"table": "_staging", "ref": root, "removed": removed})
        journal = journal_dir(cfg)
        pruned = prune_journal(journal, params.journal_hours) if journal else 0
        if pruned:
            done.append({"table": "_llm_journal", "ref": journal, "pruned": pruned})
    return done


def maintain_side_tables(spark, cfg: Config, params: MaintainParams, force: bool) -> list[dict]:
    """Prune the side tables (unless `prune_side_tables` is off), then OPTIMIZE and VACUUM
    those left: a row per pruning that deleted something or kept all, one per table kept up."""
    from webscale_rl import increments
    from webscale_rl.udfs.decontam import index_cache
    from webscale_rl.udfs.read import ingested_inputs

    done = []
    if params.prune_side_tables:
        pruned = (prune_decontam_index(spark, cfg), prune_signatures(spark, cfg))
        done += [row for row in pruned if row]
    side = [
        (ingested_inputs.TABLE, ingested_inputs.table_ref(cfg), True),
        (increments.PROGRESS, increments.progress_ref(cfg), True),
        (index_cache.TABLE, index_cache.table_ref(cfg), False),  # one file per index: see top
    ]
    side += [
        (f"{SIGNATURES}/{posixpath.basename(ref)}", ref, True)
        for ref in signature_tables(spark, signatures_root(cfg))
    ]
    return done + [
        maintain_table(spark, name, ref, params, force, compact)
        for name, ref, compact in side
        if tables.exists(spark, ref)
    ]


def current_fingerprint(spark, cfg: Config) -> tuple[str | None, str]:
    """(key, "") of the index the config's next decontaminate run loads, or (None, why not).

    Computed as `jobs/decontaminate.py` does; a missing benchmark file (even with
    `on_missing: skip`, it may only be unreachable now) gives no key.
    """
    from webscale_rl.jobs import decontaminate
    from webscale_rl.udfs.decontam import index_cache
    from webscale_rl.udfs.decontam.benchmark_files import missing_files

    params = decontaminate.params_of(cfg)
    data_root = decontaminate.resolve_data_root(params.data_root)
    missing = missing_files(params.benchmarks, data_root, spark)
    if missing:
        return None, f"benchmark files missing under {data_root}: {', '.join(missing)}"
    try:
        return index_cache.fingerprint(params.benchmarks, params, data_root, spark), ""
    except (WebscaleError, OSError) as err:
        return None, str(err)


def prune_decontam_index(spark, cfg: Config) -> dict | None:
    """Delete the stored indexes of other fingerprints than the current one; a row saying what
    went (or that all was kept), None when there is no index table or nothing to delete."""
    from pyspark.sql import functions as F

    from webscale_rl.udfs.decontam import index_cache

    ref = index_cache.table_ref(cfg)
    if not tables.exists(spark, ref):
        return None
    key, why = current_fingerprint(spark, cfg)
    if key is None:
        return {"table": index_cache.TABLE, "ref": ref, "kept_all": why}
    stored = tables.read(spark, ref).select("fingerprint").distinct().collect()
    stale = sorted(r[0] for r in stored if r[0] != key)
    if not stale:
        return None
    tables.delta_table(spark, ref).delete(F.col("fingerprint").isin(stale))
    return {"table": index_cache.TABLE, "ref": ref, "deleted": stale, **deleted_size(spark, ref)}


def deleted_size(spark, ref: str) -> dict:
    """Rows and bytes the table's last commit deleted, from its Delta metrics ({} when the
    last commit is not a DELETE: another writer committed since)."""
    last = tables.delta_table(spark, ref).history(1).first()
    if last["operation"] != "DELETE":
        return {}
    metrics = last["operationMetrics"]
    removed = int(metrics.get("numRemovedBytes", 0)) - int(metrics.get("numAddedBytes", 0))
    return {"rows": int(metrics.get("numDeletedRows", 0)), "bytes": removed}


def current_signatures(cfg: Config) -> list[str]:
    """The signature tables the config's dedup and qa_dedup runs use."""
    from webscale_rl.jobs import dedup

    targets = (dedup.DOCUMENTS, dedup.QUESTIONS)
    return [dedup.signatures_ref(cfg, t, dedup.params_of(cfg, t)) for t in targets]


def signatures_root(cfg: Config) -> str:
    return posixpath.dirname(current_signatures(cfg)[0])


def signature_tables(spark, root: str) -> list[str]:
    """Every folder under the signatures root, as the file system names it."""
    fs, path = hadoop_path(spark, root)
    if not fs.exists(path):
        return []
    return sorted(s.getPath().toString() for s in fs.listStatus(path) if s.isDirectory())


def prune_signatures(spark, cfg: Config) -> dict | None:
    """Delete the signature tables of other hashing parameters or tables than the config's; a
    row naming them and their bytes, None when there was none."""
    current = {posixpath.basename(ref) for ref in current_signatures(cfg)}
    root = signatures_root(cfg)
    stale = [p for p in signature_tables(spark, root) if posixpath.basename(p) not in current]
    if not stale:
        return None
    size = sum(path_bytes(spark, p) for p in stale)
    for path in stale:
        tables.drop_path(spark, path)
    return {"table": SIGNATURES, "ref": root, "deleted": stale, "bytes": size}


def path_bytes(spark, path: str) -> int:
    fs, hpath = hadoop_path(spark, path)
    return int(fs.getContentSummary(hpath).getLength())


def journal_dir(cfg: Config) -> str | None:
    from webscale_rl.udfs.llm.stage import default_journal_dir

    return cfg.llm.journal_dir or default_journal_dir(cfg)


def run(args, cfg: Config) -> int:
    from webscale_rl.session import get_spark

    base = getattr(cfg, "maintain", None) or MaintainParams()
    if args.staging_hours is not None and args.staging_hours < 1:
        # a younger staging table may belong to a stage committing right now
        raise WebscaleError(f"--staging-hours must be at least 1, got {args.staging_hours:g}")
    if args.journal_hours is not None and args.journal_hours < 1:
        raise WebscaleError(f"--journal-hours must be at least 1, got {args.journal_hours:g}")
    params = MaintainParams(
        retain_hours=base.retain_hours if args.retain_hours is None else args.retain_hours,
        optimize=base.optimize and not args.no_optimize,
        vacuum=base.vacuum and not args.no_vacuum,
        staging_hours=base.staging_hours if args.staging_hours is None else args.staging_hours,
        journal_hours=base.journal_hours if args.journal_hours is None else args.journal_hours,
        prune_side_tables=base.prune_side_tables and not args.no_prune_side_tables,
    )
    names = [n.strip() for n in args.tables.split(",") if n.strip()] if args.tables else None
    # Refuse before Spark starts: a wrong retention should cost nothing.
    if params.vacuum:
        check_retention(params.retain_hours, args.force)
    spark = get_spark(cfg)
    done = maintain(spark, cfg, params, force=args.force, names=names)
    if not done:
        print(f"no tables found under {tables.lakehouse_root(cfg)}")
    for row in done:
        print(summary_line(row, params))
    return 0


def summary_line(row: dict, params: MaintainParams) -> str:
    """One printed line for a row of `maintain`'s summary."""
    name = f"{row['table']:<16}"
    if "removed" in row:
        return f"{name} removed {len(row['removed'])} table(s) left by killed runs"
    if "pruned" in row:
        return f"{name} pruned {row['pruned']} journal file(s)"
    if "kept_all" in row:
        return f"{name} kept every index: the current fingerprint is unknown ({row['kept_all']})"
    if "deleted" in row:
        return f"{name} deleted {deleted_text(row)}"
    vacuumed = f"vacuumed {params.retain_hours:g} h" if params.vacuum else ""
    return f"{name} files {row['files_before']:>6} -> {row['files_after']:>6}  {vacuumed}"


def deleted_text(row: dict) -> str:
    """`2 stale index(es) (4 rows, 66.1 MB): a, b` for a pruning row."""
    kind = "table(s)" if row["table"] == SIGNATURES else "index(es)"
    size = [f"{row['rows']} rows"] if "rows" in row else []
    size += [human_bytes(row["bytes"])] if "bytes" in row else []
    names = ", ".join(posixpath.basename(d) for d in row["deleted"])
    return f"{len(row['deleted'])} stale {kind} ({', '.join(size) or 'size unknown'}): {names}"


def human_bytes(n: float) -> str:
    """`512 B`, `4.2 kB`, `33.1 MB`, `1.5 GB`."""
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
