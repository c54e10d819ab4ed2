"""Reject reasons that a rerun retries, and how an engine's error becomes a reason.

A reject is final when the row's content is the problem (malformed JSON, a truncated reply, a
checker that said no, a duplicate): a rerun keeps it. It is retryable when the engine failed
and the row never got a real answer; a rerun sends those rows again, and their stale reject
rows are superseded by the new outcome (`tables.commit_results`), so nothing a few minutes of
endpoint outage touched is lost. `--retry-rejects <reason>` retries chosen final reasons too.
"""

from __future__ import annotations

import re

from webscale_rl.errors import WebscaleError

# Imported by the LLM stages' executor code: no import of the config or Spark up here.
STAGE_NAME = re.compile(r"^[a-z_]{1,64}$")

# The endpoint was down or overloaded: timeout, connection refused/reset, 429/5xx after the
# engine's own retries.
ENGINE_UNAVAILABLE = "engine_unavailable"
# The engine or its client broke on the request: an exception in the client, a 4xx (a key or
# model name that is wrong until someone fixes it), a body that is not a chat completion.
ENGINE_FAILED = "engine_failed"
RETRYABLE = frozenset({ENGINE_UNAVAILABLE, ENGINE_FAILED})

# Final: the engine answered for this row and retrying the same request gives the same.
ENGINE_ERROR = "engine_error"  # a deterministic engine (rules, a scripted test double) refused
PROMPT_TOO_LONG = "prompt_too_long"
REFUSED = "refused"
EMPTY_RESPONSE = "empty_response"
NO_CANDIDATE = "no_candidate"  # the rule engine found nothing more to ask about the page

_UNAVAILABLE = ("timeout", "connection_error", "http_429", "http_5", "request_error")
_FAILED = ("client_error", "bad_response", "stream_error", "http_4", "engine_error")


def engine_failure_reason(error: str | None) -> str:
    """The reject reason of a response whose `error` is set (engines in udfs/engine_*.py)."""
    text = (error or "").strip().lower()
    if text.startswith("responder_error:"):  # the simulated engine's responder raised: by what
        text = text.split(":", 1)[1].strip()
    if text.startswith(NO_CANDIDATE + ":"):
        return NO_CANDIDATE
    if text.startswith(PROMPT_TOO_LONG) or "maximum context length" in text:
        return PROMPT_TOO_LONG
    if text.startswith(_UNAVAILABLE):
        return ENGINE_UNAVAILABLE
    if text.startswith(_FAILED):
        return ENGINE_FAILED
    if text.startswith("refusal"):
        return REFUSED
    if text.startswith(("empty_content", "empty_output")):
        return EMPTY_RESPONSE
    return ENGINE_ERROR


# --- the rejects table (driver side; tables.commit_results calls these)


def retry_reasons(cfg) -> list[str]:
    """Reject reasons a run redoes: the retryable ones and those named in `retry_rejects`."""
    return sorted(RETRYABLE | set(cfg.retry_rejects))


def redo_ids(spark, cfg, stage: str):
    """Row ids of the stage's rejects this run redoes (`retry_reasons`), or None if none."""
    from pyspark.sql import functions as F

    from webscale_rl.tables import exists, read, table_ref

    ref = table_ref(cfg, "rejects")
    if not exists(spark, ref):
        return None
    ids = (
        read(spark, ref)
        .where((F.col("stage") == stage) & F.col("reason").isin(retry_reasons(cfg)))
        .select("row_id")
    )
    return None if ids.isEmpty() else ids


def supersede_rejects(spark, cfg, stage: str, outcome) -> None:
    """Merge the outcome of rows that include redone ones into `rejects`: a redone row kept now
    loses its stale reject row, one rejected again has it replaced, a new reject is inserted.
    A final reject not named for retry is never touched. The condition names the stage as a
    literal, so Delta reads only that stage's partition."""
    from webscale_rl.tables import delta_table, retry_on_conflict, table_ref

    if not STAGE_NAME.match(stage):
        raise WebscaleError(f"stage name {stage!r} is not a safe identifier")
    stale = "t.reason IN ({})".format(", ".join(f"'{r}'" for r in retry_reasons(cfg)))
    cond = f"t.stage = '{stage}' AND t.row_id = s.row_id"
    table = delta_table(spark, table_ref(cfg, "rejects"))
    retry_on_conflict(
        lambda: (
            table.alias("t")
            .merge(outcome.alias("s"), cond)
            .whenMatchedDelete(condition=f"s.reason IS NULL AND {stale}")
            .whenMatchedUpdateAll(condition=f"s.reason IS NOT NULL AND {stale}")
            .whenNotMatchedInsertAll(condition="s.reason IS NOT NULL")
            .execute()
        )
    )
