"""Publish's optional domain rebalancing: the cap per domain, and the rows it drops.

With `publish.max_domain_share` set, a domain over its share loses rows in xxhash64(qa_id)
order (so a republish drops the same ones); each dropped row gets the reason `domain_cap`, and
a row without question or answer gets `empty_text`: no trainer can use it.
"""

from __future__ import annotations

from webscale_rl import tables
from webscale_rl.errors import WebscaleError

KEY = "qa_id"


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
