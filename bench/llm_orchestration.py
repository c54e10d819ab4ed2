"""How much of an engine's capacity the Spark generate stage uses, and what a task retry costs.

The engine is `SimulatedEngine` (`llm.engine=simulated`): it sleeps a fixed time per token,
50,000 prompt tokens/s and 5,000 generated tokens/s, like one GPU serving a small model. Its
answers come from `canned` below (a cheap grounded reply), so CPU work on this machine is the
pipeline's own, not the stand-in model's. Figures per run:

- engine busy: the seconds the simulated engine sleeps, from the stage's token totals;
- in-task share: time inside engine calls / time inside the UDF (request building, parsing,
  journaling and Arrow hand-off are the rest): what the orchestration controls per task;
- stage share: engine busy / (stage wall time x engine instances): also pays Spark's fixed
  per-chunk costs (anti-join, staging write, Delta merges), which a real run amortises over
  hours of engine time per chunk.

Retry: the responder kills each task's first attempt after 8 requests; Spark (local[2,2])
retries it; the per-request call counts show whether a finished request was sent again.

    .venv/bin/python bench/llm_orchestration.py [--docs 200 800] [--chunks 1 4]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

PROMPT_RATE, GEN_RATE = 50_000.0, 5_000.0
FAIL_AFTER = 8
_YEAR = re.compile(r"\b1[5-9]\d\d\b|\b20[0-2]\d\b")


def canned(request) -> str:
    """A grounded generate reply without real work: the first year the page mentions."""
    doc = request.payload["document"]
    match = _YEAR.search(doc)
    answer = match.group(0) if match else doc.split()[0]
    subject = " ".join(doc.split()[:6])
    question = f"Which year comes first in the account that begins '{subject}'?"
    return json.dumps({"question": question, "answer": answer, "answer_type": "date"})


class TaskKilled(BaseException):
    """Escapes the engine's row error handling: the task fails and Spark retries it."""


_seen: dict[int, int] = {}


def canned_failing_once(request) -> str:
    from pyspark import TaskContext

    ctx = TaskContext.get()
    key = ctx.taskAttemptId()
    _seen[key] = _seen.get(key, 0) + 1
    if ctx.attemptNumber() == 0 and _seen[key] > FAIL_AFTER:
        raise TaskKilled("injected task failure")
    return canned(request)


def annotations(spark, n_docs: int):
    from webscale_rl import ids
    from webscale_rl.jobs.ingest import sample_corpus_path
    from webscale_rl.schemas.tables import ANNOTATIONS

    docs = [json.loads(x) for x in Path(sample_corpus_path()).read_text().splitlines()]
    docs = [d for d in docs if d["text"].strip()]
    now = datetime(2026, 1, 1)
    rows = []
    for i in range(n_docs):
        d = docs[i % len(docs)]
        url = f"{d['url']}?copy={i}"
        personas = ["a student", "a journalist", "a retired teacher"]
        rows.append((ids.doc_id(url, d["text"]), url, "bench", d["text"], True, True, "ok",
                     d["domain"], personas, "m", "v", "{}", 1, 1, "bench", now))  # fmt: skip
    return spark.createDataFrame(rows, ANNOTATIONS)


def config(lakehouse: Path, responder: str, batch_size: int):
    from webscale_rl.config import load_config

    cfg = load_config(
        overrides=[
            "mlflow.enabled=false",
            "spark.shuffle_partitions=2",
            "llm.engine=simulated",
            f"llm.simulated_responder=llm_orchestration:{responder}",
            f"llm.simulated_prompt_tokens_per_s={PROMPT_RATE}",
            f"llm.simulated_gen_tokens_per_s={GEN_RATE}",
            f"llm.simulated_counts_path={lakehouse}/calls.txt",
            f"llm.batch_size={batch_size}",
        ],
        lakehouse=str(lakehouse),
    )
    cfg.run_id = "bench"
    return cfg


def prepare(spark, lakehouse: Path, responder: str, n_docs: int, batch_size: int = 64):
    from webscale_rl import tables
    from webscale_rl.schemas.tables import ANNOTATIONS

    cfg = config(lakehouse, responder, batch_size)
    ref = tables.table_ref(cfg, "annotations")
    tables.merge_new(spark, ref, annotations(spark, n_docs), ANNOTATIONS, ["doc_id"])
    return cfg


def capacity(spark, root: Path, n_docs: int, chunks: int, tasks: int) -> dict:
    from webscale_rl.jobs import generate
    from webscale_rl.udfs.llm.stage import LLMStageParams

    cfg = prepare(spark, root / f"cap-{n_docs}-{chunks}", "canned", n_docs)
    began = time.time()
    result = generate.run(spark, cfg, LLMStageParams(commit_chunks=chunks, tasks=tasks))
    wall = time.time() - began
    m = result.metrics
    busy = m["llm_prompt_tokens"] / PROMPT_RATE + m["llm_completion_tokens"] / GEN_RATE
    return {
        "units": result.rows_in,
        "chunks": chunks,
        "wall_s": wall,
        "engine_busy_s": busy,
        "in_task_share": m["llm_engine_seconds"] / m["llm_udf_seconds"],
        "stage_share": busy / (wall * tasks),
        "overhead_s": wall - busy / tasks,
    }


def retry(spark, root: Path, n_docs: int, tasks: int) -> dict:
    from webscale_rl.jobs import generate
    from webscale_rl.udfs.llm.engine_simulated import read_call_counts
    from webscale_rl.udfs.llm.stage import LLMStageParams

    lakehouse = root / "retry"
    cfg = prepare(spark, lakehouse, "canned_failing_once", n_docs, batch_size=4)
    result = generate.run(spark, cfg, LLMStageParams(commit_chunks=1, tasks=tasks))
    calls = read_call_counts(lakehouse / "calls.txt")
    return {
        "units": result.rows_in,
        "kept": result.rows_out,
        "requests_sent": sum(calls.values()),
        "distinct_requests": len(calls),
        "sent_twice": sum(1 for n in calls.values() if n > 1),
        "from_journal": int(result.metrics["llm_requests_from_journal"]),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--docs", type=int, nargs="+", default=[200, 800])
    p.add_argument("--chunks", type=int, nargs="+", default=[1, 4])
    p.add_argument("--tasks", type=int, default=2)
    args = p.parse_args()

    from webscale_rl.config import load_config
    from webscale_rl.session import get_spark

    # local[2,2]: two task slots, and a failed task is retried once (for the retry figure)
    spark = get_spark(load_config(overrides=["spark.master=local[2,2]"]))
    spark.sparkContext.setLogLevel("ERROR")
    spark.sparkContext.addPyFile(__file__)
    root = Path(tempfile.mkdtemp(prefix="llm_orch_"))
    print("| units | chunks | wall s | engine busy s | in-task share | stage share | overhead s |")
    print("|---|---|---|---|---|---|---|")
    for n_docs in args.docs:
        for chunks in args.chunks:
            r = capacity(spark, root, n_docs, chunks, args.tasks)
            print(
                f"| {r['units']} | {r['chunks']} | {r['wall_s']:.1f} | {r['engine_busy_s']:.1f} "
                f"| {r['in_task_share']:.1%} | {r['stage_share']:.1%} | {r['overhead_s']:.1f} |",
                flush=True,
            )
    r = retry(spark, root, min(args.docs), args.tasks)
    print(f"\nretry: {json.dumps(r)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
