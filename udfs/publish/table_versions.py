"""Looking up Delta table versions: what a commit recorded, and which version was current when.

Every commit of a stage carries JSON userMetadata (`tables.set_commit_metadata`): the run id,
the stage and, when stages were skipped, `skipped_stages`.
"""

from __future__ import annotations

import datetime as dt
import json

from webscale_rl import tables
from webscale_rl.errors import WebscaleError


def _metadata(text: str | None) -> dict:
    try:
        meta = json.loads(text or "{}")
    except ValueError:
        return {"run_id": text or ""}
    return meta if isinstance(meta, dict) else {}


def commit_info(spark, ref: str, version: int) -> tuple[dt.datetime, dict]:
    """(commit time, userMetadata as a dict) of one table version."""
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
    return row["timestamp"], _metadata(row["userMetadata"])


def latest_commit(spark, ref: str) -> tuple[int, dict] | None:
    """(version, userMetadata as a dict) of the table's latest commit; None: no such table."""
    if not tables.exists(spark, ref):
        return None
    row = tables.delta_table(spark, ref).history(1).select("version", "userMetadata").first()
    return None if row is None else (int(row["version"]), _metadata(row["userMetadata"]))


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


def recorded_skips(spark, ref: str) -> set[str]:
    """Every stage any commit of the table recorded as skipped (its whole history)."""
    if not tables.exists(spark, ref):
        return set()
    rows = tables.delta_table(spark, ref).history().select("userMetadata").collect()
    found: set[str] = set()
    for row in rows:
        found.update(_metadata(row["userMetadata"]).get("skipped_stages") or [])
    return found
