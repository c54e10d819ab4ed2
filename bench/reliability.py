"""Reliability harness: crash-and-resume chains, table snapshots, and the figures for bench/README.

The tests in tests/test_reliability_*.py load this file for its helpers; run it directly to
measure, from one real run on the sample corpus:

    .venv/bin/python bench/reliability.py [--all-points] [--workdir /tmp/rel]

It runs the pipeline once uninterrupted (the reference), then again in a fresh lakehouse killed
(SIGKILL, via the `WEBSCALE_RL_CRASH_AT` hook in `webscale_rl/tables.py`) at one commit point
of every stage in turn, each time rerunning the same command, and reports crash points tried,
rows lost or duplicated against the reference, and LLM requests sent more than once (the
simulated engine's per-request call counts, summed over every process).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "webscale_rl" / "resources" / "sample_corpus" / "sample_corpus.jsonl"
CRASH_ENV = "WEBSCALE_RL_CRASH_AT"
# The points of `tables.commit_results`: after the staging write (nothing merged yet), after the
# rejects merge (output not merged yet) and after the output merge (staging not dropped yet).
POINTS = ("staged", "rejects", "output")
# Columns that differ between runs by design: which run wrote a row, and when.
VOLATILE = frozenset({"run_id", "ingested_at", "rejected_at", "created_at"})
SUMMARY_PREFIX = "["


def common_sets(workdir: Path, counts_name: str = "llm_calls.txt") -> list[str]:
    """--set options every reliability run shares: small local Spark, the simulated engine, one
    commit per LLM stage (chunked commits are exercised by the determinism test)."""
    return [
        "spark.master=local[2]",
        "spark.shuffle_partitions=2",
        "llm_stages.commit_chunks=1",
        "llm.engine=simulated",
        f"llm.simulated_counts_path={workdir / counts_name}",
        "llm.simulated_prompt_tokens_per_s=100000000",
        "llm.simulated_gen_tokens_per_s=100000000",
    ]


def cli_args(lakehouse: Path, sets: list[str], input_path: str, mlflow_db: Path) -> list[str]:
    out = ["--lakehouse", str(lakehouse)]
    for s in [*sets, f"mlflow.tracking_uri=sqlite:///{mlflow_db}"]:
        out += ["--set", s]
    return [*out, "run", "--input", input_path]


def run_cli(args: list[str], env: dict | None = None, cwd: Path | None = None, timeout=900):
    """`python -m webscale_rl.cli <args>` in a fresh process; returns the CompletedProcess."""
    # An armed crash hook must never leak from the caller's environment into a run.
    full_env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    full_env.update({"PYTHONUNBUFFERED": "1", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "webscale_rl.cli", *args],
        env=full_env,
        cwd=str(cwd) if cwd else None,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def stage_lines(stdout: str) -> dict[str, dict[str, int]]:
    """The `[stage] in=.. kept=.. rejected=.. skipped(done before)=..` lines of a run's output."""
    out = {}
    for line in stdout.splitlines():
        if not line.startswith(SUMMARY_PREFIX) or " in=" not in line:
            continue
        stage = line[1 : line.index("]")]
        nums = {}
        for word in line.split():
            key, _, value = word.partition("=")
            if value.isdigit():
                nums[key.split("(")[0]] = int(value)
        out[stage] = nums
    return out


def uses_commit_hook(stage: str) -> bool:
    """True unless the stage is declared `whole_table` (webscale_rl/stages.py).

    Every incremental stage commits through `tables.commit_results`, where the hook sits (the
    crash test fails if one does not). A whole-table stage (publish replaces `qa` in one
    commit) has no partial state to resume from, so it carries no crash point.
    """
    from webscale_rl import stages

    return not stages.declared(stage).whole_table


def crash_plan(stages: list[str], all_points: bool = False) -> list[tuple[str, str]]:
    """(stage, point) to crash at, one run each: every point, or one per stage in rotation."""
    hooked = [s for s in stages if uses_commit_hook(s)]
    if all_points:
        return [(s, p) for s in hooked for p in POINTS]
    return [(s, POINTS[i % len(POINTS)]) for i, s in enumerate(hooked)]


@dataclass
class ChainResult:
    crashes: list[tuple[str, str, int]] = field(default_factory=list)  # stage, point, returncode
    outputs: list[str] = field(default_factory=list)  # stdout of every run, in order
    final_rc: int | None = None
    final_stdout: str = ""
    final_stderr: str = ""


def crash_chain(args: list[str], plan: list[tuple[str, str]], cwd: Path | None = None):
    """Run `args` once per crash point with the hook armed, then once more to the end."""
    res = ChainResult()
    for stage, point in plan:
        proc = run_cli(args, env={CRASH_ENV: f"{stage}:{point}"}, cwd=cwd)
        res.crashes.append((stage, point, proc.returncode))
        res.outputs.append(proc.stdout)
        if proc.returncode not in (0, -signal.SIGKILL):
            raise RuntimeError(
                f"run armed at {stage}:{point} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
            )
    final = run_cli(args, cwd=cwd)
    res.final_rc, res.final_stdout, res.final_stderr = final.returncode, final.stdout, final.stderr
    res.outputs.append(final.stdout)
    return res


def table_dirs(lakehouse: Path) -> dict[str, Path]:
    """Every Delta table under the lakehouse (a folder with a _delta_log), staging excluded."""
    found = {}
    for log in sorted(Path(lakehouse).rglob("_delta_log")):
        rel = log.parent.relative_to(lakehouse)
        if rel.parts and rel.parts[0].startswith("_"):
            continue
        found[str(rel)] = log.parent
    return found


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "asDict"):
        return _plain(value.asDict())
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


def snapshot(spark, lakehouse: Path) -> dict[str, list[str]]:
    """Table -> its rows as sorted JSON strings, run-specific columns left out."""
    out = {}
    for name, path in table_dirs(lakehouse).items():
        df = spark.read.format("delta").load(str(path))
        df = df.select([c for c in df.columns if c not in VOLATILE])
        rows = [json.dumps(_plain(r.asDict()), sort_keys=True) for r in df.collect()]
        out[name] = sorted(rows)
    return out


def diff_snapshots(a: dict, b: dict) -> dict[str, dict[str, int]]:
    """Per table: rows only in a (lost), rows only in b (extra), as multisets. Empty = equal."""
    diffs = {}
    for name in sorted(set(a) | set(b)):
        ca, cb = Counter(a.get(name, [])), Counter(b.get(name, []))
        lost, extra = sum((ca - cb).values()), sum((cb - ca).values())
        if lost or extra or (name in a) != (name in b):
            diffs[name] = {"lost": lost, "extra": extra}
    return diffs


def read_call_counts(counts_path: Path) -> Counter:
    """Simulated-engine calls per request id, summed over every process that ran."""
    from webscale_rl.udfs.llm.engine_simulated import read_call_counts as read

    return read(counts_path)


def repeated_requests(counts_path: Path) -> dict[str, int]:
    """Simulated-engine request ids sent more than once, over every process that ran."""
    return {rid: n for rid, n in read_call_counts(counts_path).items() if n > 1}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", help="where lakehouses go (default: a temp folder)")
    p.add_argument("--all-points", action="store_true", help="both commit points of every stage")
    p.add_argument("--input", default=str(SAMPLE), help="input corpus (default: sample corpus)")
    a = p.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="reliability-"))
    work.mkdir(parents=True, exist_ok=True)
    from webscale_rl.jobs.pipeline import STAGES

    began = time.time()
    ref_dir, chain_dir = work / "reference", work / "chain"
    ref = run_cli(
        cli_args(ref_dir / "lh", common_sets(ref_dir), a.input, ref_dir / "mlflow.db"), cwd=work
    )
    if ref.returncode != 0:
        print(ref.stderr[-3000:])
        return 1
    plan = crash_plan(list(STAGES), a.all_points)
    args = cli_args(chain_dir / "lh", common_sets(chain_dir), a.input, chain_dir / "mlflow.db")
    chain = crash_chain(args, plan, cwd=work)
    audit = run_cli(
        [
            "--lakehouse",
            str(chain_dir / "lh"),
            "--set",
            f"mlflow.tracking_uri=sqlite:///{chain_dir / 'mlflow.db'}",
            "audit",
        ],
        cwd=work,
    )
    from webscale_rl.config import load_config
    from webscale_rl.session import get_spark

    spark = get_spark(load_config(overrides=["spark.master=local[2]"]))
    diffs = diff_snapshots(snapshot(spark, ref_dir / "lh"), snapshot(spark, chain_dir / "lh"))
    killed = sum(1 for _, _, rc in chain.crashes if rc == -signal.SIGKILL)
    repeated = repeated_requests(chain_dir / "llm_calls.txt")
    print(f"stages: {', '.join(STAGES)}")
    print(
        f"crash points tried: {len(plan)} ({killed} killed the run): "
        + ", ".join(f"{s}:{p}" for s, p, _ in chain.crashes)
    )
    print(f"final run rc: {chain.final_rc}; audit rc: {audit.returncode}")
    print(
        f"rows lost: {sum(d['lost'] for d in diffs.values())}, "
        f"rows extra: {sum(d['extra'] for d in diffs.values())} (vs the uninterrupted run)"
    )
    print(f"LLM requests sent more than once: {len(repeated)}")
    print(f"wall time: {time.time() - began:.0f} s")
    return 0 if chain.final_rc == 0 and not diffs and not repeated else 1


if __name__ == "__main__":
    sys.exit(main())
