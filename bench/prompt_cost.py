"""Prompt tokens per accepted QA pair, the share of them that is a shared prefix, and a cost
estimate per million QA pairs.

The three LLM stages run in process (pandas level, `udfs/llm/stage.transform_batch`) over the
shipped sample corpus with the rule engine's answers, and every request is recorded. Tokens
are estimated as characters / 4 (+4 per chat message), as `SimulatedEngine` does; no tokenizer
is downloaded. Shared prefix: per request, the longest prefix (of its rendered messages) it has
in common with any request of the same task sent before it: what vLLM's automatic prefix cache
can reuse (ignoring its 16-token block granularity and eviction).

Cost: GPU-seconds = uncached prompt tokens / prefill rate + completion tokens / decode rate.
Defaults are assumptions, not measurements: 50,000 prompt and 5,000 generated tokens/s per GPU
(the rates the orchestration benchmark simulates, the order of a 7-8B model on one H100 with
vLLM), and $3.99 per H100-SXM hour (RunPod on-demand, as listed in MAKO's "GPU go brrrrr, but at
what cost" vLLM/Llama-3.1 benchmark). Pass your own with the options.

    .venv/bin/python bench/prompt_cost.py [--prefill 50000] [--decode 5000] [--gpu-hour 3.99]
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd

RECORDED = []  # (task, rendered prompt, prompt tokens, completion tokens), in send order


def record(request) -> str:
    """Simulated-engine responder: the rule engine's answer, and a note of the request."""
    from webscale_rl.udfs.llm.engine_rules import RuleEngine
    from webscale_rl.udfs.llm.engine_simulated import estimate_prompt_tokens, estimate_tokens

    response = RuleEngine().generate([request])[0]
    if response.text is None:
        raise ValueError(response.error)
    prompt = "\n".join(m["content"] for m in request.messages)
    tokens = estimate_prompt_tokens(request.messages)
    RECORDED.append((request.task, prompt, tokens, estimate_tokens(response.text)))
    return response.text


def run_stages() -> int:
    """Annotate, generate and verify the sample corpus; returns the accepted QA pairs."""
    from webscale_rl.jobs import annotate, generate, verify
    from webscale_rl.jobs.ingest import sample_corpus_path
    from webscale_rl.udfs.llm.engine import LLMParams
    from webscale_rl.udfs.llm.stage import BatchContext, transform_batch
    from webscale_rl.udfs.llm.tasks import TaskParams

    llm = LLMParams(
        engine="simulated",
        simulated_responder="__main__:record",
        simulated_prompt_tokens_per_s=1e12,
        simulated_gen_tokens_per_s=1e12,
    )
    tasks = TaskParams()

    def stage(module, frame):
        out = transform_batch(frame, BatchContext(module.SPEC, llm, tasks, "bench"))
        return out[out["_reject_reason"].isna()]

    docs = [json.loads(x) for x in Path(sample_corpus_path()).read_text().splitlines()]
    docs = pd.DataFrame(
        [
            {"doc_id": d["id"], "url": d["url"], "source": "sample", "text": d["text"]}
            for d in docs
            if d["text"].strip()
        ]
    )
    annotated = stage(annotate, docs)
    units = annotated.explode("personas").rename(columns={"personas": "persona"})
    units["persona_idx"] = units.groupby("doc_id").cumcount()
    units["qa_id"] = [
        hashlib.sha256(f"{d}#{k}".encode()).hexdigest()[:32]
        for d, k in zip(units["doc_id"], units["persona_idx"], strict=True)
    ]
    candidates = stage(generate, units[["doc_id", "url", "source", "text", "domain", "persona",
                                        "persona_idx", "qa_id"]])  # fmt: skip
    texts = docs.set_index("doc_id")["text"]
    candidates = candidates.assign(text=candidates["doc_id"].map(texts))
    return len(stage(verify, candidates))


def shared_prefix_chars(prompts: list[str]) -> list[int]:
    """Per prompt, its longest common prefix with any earlier prompt (sorted-neighbour trick)."""
    seen: list[str] = []
    out = []
    for p in prompts:
        i = bisect.bisect_left(seen, p)
        best = 0
        for j in (i - 1, i):
            if 0 <= j < len(seen):
                best = max(best, len(os.path.commonprefix([seen[j], p])))
        out.append(best)
        seen.insert(i, p)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prefill", type=float, default=50_000.0, help="prompt tokens/s per GPU")
    p.add_argument("--decode", type=float, default=5_000.0, help="generated tokens/s per GPU")
    p.add_argument("--gpu-hour", type=float, default=3.99, help="USD per GPU-hour")
    args = p.parse_args()

    accepted = run_stages()
    by_task = defaultdict(list)
    for task, prompt, prompt_tokens, completion_tokens in RECORDED:
        by_task[task].append((prompt, prompt_tokens, completion_tokens))
    print(f"accepted QA pairs: {accepted} (sample corpus, rule engine answers)\n")
    print("| task | requests | prompt tok/request | shared prefix | completion tok/request |")
    print("|---|---|---|---|---|")
    totals = {"prompt": 0, "shared": 0, "completion": 0}
    for task, rows in by_task.items():
        prompts = [r[0] for r in rows]
        shared_chars = shared_prefix_chars(prompts)
        prompt_tokens = sum(r[1] for r in rows)
        # the same characters-per-token estimate applied to the shared part of each prompt
        shared = sum(min(t, c // 4) for (_, t, _), c in zip(rows, shared_chars, strict=True))
        completion = sum(r[2] for r in rows)
        totals["prompt"] += prompt_tokens
        totals["shared"] += shared
        totals["completion"] += completion
        print(
            f"| {task} | {len(rows)} | {prompt_tokens / len(rows):.0f} "
            f"| {shared / prompt_tokens:.1%} | {completion / len(rows):.0f} |"
        )
    per_qa = {k: v / accepted for k, v in totals.items()}
    print(
        f"\nper accepted QA pair: {per_qa['prompt']:.0f} prompt tokens, of which "
        f"{per_qa['shared']:.0f} ({totals['shared'] / totals['prompt']:.1%}) a shared prefix; "
        f"{per_qa['completion']:.0f} completion tokens"
    )
    for label, prompt in (
        ("no prefix cache", per_qa["prompt"]),
        ("prefix cache", per_qa["prompt"] - per_qa["shared"]),
    ):
        gpu_s = 1e6 * (prompt / args.prefill + per_qa["completion"] / args.decode)
        print(
            f"per 1M accepted QA pairs, {label}: {gpu_s / 3600:.0f} GPU-hours, "
            f"${gpu_s / 3600 * args.gpu_hour:,.0f} at ${args.gpu_hour}/GPU-hour "
            f"({args.prefill:,.0f} prefill, {args.decode:,.0f} decode tokens/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
