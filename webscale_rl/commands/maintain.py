"""`webscale-rl maintain`: compact (OPTIMIZE) and clean (VACUUM) every existing lakehouse table.

Stages commit in many small merges, so tables collect small files; OPTIMIZE rewrites them into
few large ones. VACUUM then deletes files no table version within the retention still needs.
A retention below Delta's safety default (7 days) can break time travel and concurrent readers,
so it is refused unless `--force`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from webscale_rl import tables
from webscale_rl.config import Config, TableNames
from webscale_rl.errors import WebscaleError

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


def maintain(
    spark, cfg: Config, params: MaintainParams, force: bool = False, names=None
) -> list[dict]:
    """OPTIMIZE then VACUUM each existing table; returns one summary dict per table."""
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
    return done


def run(args, cfg: Config) -> int:
    from webscale_rl.session import get_spark

    base = getattr(cfg, "maintain", None) or MaintainParams()
    params = MaintainParams(
        retain_hours=base.retain_hours if args.retain_hours is None else args.retain_hours,
        optimize=base.optimize and not args.no_optimize,
        vacuum=base.vacuum and not args.no_vacuum,
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
        print(
            f"{row['table']:<16} files {row['files_before']:>6} -> {row['files_after']:>6}"
            f"  {'vacuumed ' + format(params.retain_hours, 'g') + ' h' if params.vacuum else ''}"
        )
    return 0
