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
"""

from __future__ import annotations

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


def stale_staging(spark, cfg: Config, older_than_hours: float) -> list[str]:
    """Staging tables (`_staging/<stage>/<uuid>`) not modified for `older_than_hours`."""
    jvm = spark.sparkContext._jvm
    root = jvm.org.apache.hadoop.fs.Path(tables.staging_root(cfg))
    fs = root.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
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

    Stale staging tables and old LLM journal files are deleted too (all tables selected only),
    reported as rows with `table` "_staging" (paths removed) and "_llm_journal" (files pruned).
    """
    check_retention(params.retain_hours, force or not params.vacuum)
    tables.set_commit_metadata(spark, cfg, NAME)
    done = []
    for logical, ref in existing_tables(spark, cfg, names):
        before = file_count(spark, ref)
        if params.optimize:
            optimize(spark, ref)
        after = file_count(spark, ref)
        if params.vacuum:
            vacuum(spark, ref, params.retain_hours, force)
        done.append({"table": logical, "ref": ref, "files_before": before, "files_after": after})
    if not names:
        removed = clean_staging(spark, cfg, params.staging_hours)
        if removed:
            root = tables.staging_root(cfg)
            done.append({"table": "_staging", "ref": root, "removed": removed})
        journal = journal_dir(cfg)
        pruned = prune_journal(journal, params.journal_hours) if journal else 0
        if pruned:
            done.append({"table": "_llm_journal", "ref": journal, "pruned": pruned})
    return done


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
        if "removed" in row:
            print(f"{'_staging':<16} removed {len(row['removed'])} table(s) left by killed runs")
            continue
        if "pruned" in row:
            print(f"{'_llm_journal':<16} pruned {row['pruned']} journal file(s)")
            continue
        print(
            f"{row['table']:<16} files {row['files_before']:>6} -> {row['files_after']:>6}"
            f"  {'vacuumed ' + format(params.retain_hours, 'g') + ' h' if params.vacuum else ''}"
        )
    return 0
