"""The LLM stages' funnel with a real small model: SmolLM2-135M-Instruct (the bundled GGUF) on
the local llama.cpp server, as annotator, generator and/or checker.

The three stages run in process at the pandas level (`llm_stage.transform_batch`, what each Spark
task runs) over the shipped sample pages, each stage with its own engine: the model (`model`) or
the rule engine (`rules`). Prints, per stage: rows in, kept, rejects by reason, requests,
prompt/completion tokens and requests/s; then (document, persona) units that ended as verified
pairs, and tokens per verified pair.

    .venv/bin/python bench/small_model_funnel.py --annotate model --generate model --verify model
    .venv/bin/python bench/small_model_funnel.py --generate rules          # the model as checker
    .venv/bin/python bench/small_model_funnel.py --choices 10 --focus --fewshot 1 --verify both
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections import Counter
from pathlib import Path

import pandas as pd

from webscale_rl.jobs import annotate, generate, verify
from webscale_rl.jobs.ingest import sample_corpus_path
from webscale_rl.local_model import LocalModelServer, ServerSettings
from webscale_rl.udfs.llm.engine import LLMParams
from webscale_rl.udfs.llm.stage import BatchContext, transform_batch
from webscale_rl.udfs.llm.tasks import TaskParams

SHOW = 0  # rejected rows shown per reason (--show)
SHOW_PAIRS = 40  # verified pairs shown per checker


class Meter:
    """Stands in for the Spark accumulator: sums the per-batch meters."""

    def __init__(self):
        self.value: Counter = Counter()

    def add(self, meter: dict) -> None:
        self.value.update(meter)


def units_of(annotated: pd.DataFrame) -> pd.DataFrame:
    units = annotated.explode("personas").rename(columns={"personas": "persona"})
    units["persona_idx"] = units.groupby("doc_id").cumcount()
    units["qa_id"] = [
        hashlib.sha256(f"{d}#{k}".encode()).hexdigest()[:32]
        for d, k in zip(units["doc_id"], units["persona_idx"], strict=True)
    ]
    return units[["doc_id", "url", "source", "text", "domain", "persona", "persona_idx", "qa_id"]]


def run_stage(module, frame, llm, tasks, batch: int):
    if frame.empty:
        print(f"{module.NAME:<9} in=0")
        return frame, Counter()
    meter = Meter()
    ctx = BatchContext(module.SPEC, llm, tasks, "bench", meter)
    began = time.perf_counter()
    parts = [transform_batch(frame.iloc[i : i + batch], ctx) for i in range(0, len(frame), batch)]
    seconds = time.perf_counter() - began
    out = pd.concat(parts) if parts else frame.iloc[:0]
    kept = out[out["_reject_reason"].isna()]
    reasons = Counter(out["_reject_reason"].dropna())
    m = meter.value
    sent = m["llm_requests"]
    print(
        f"{module.NAME:<9} in={len(frame):<4} kept={len(kept):<4} requests={sent:<4} "
        f"prompt_tok={m['llm_prompt_tokens']:<7} completion_tok={m['llm_completion_tokens']:<6} "
        f"req/s={sent / seconds if seconds else 0:.2f}  {seconds:.0f}s"
    )
    for reason, n in reasons.most_common():
        print(f"    {reason:<34}{n:>4}")
        if SHOW:
            for detail in out.loc[out["_reject_reason"] == reason, "_reject_detail"].head(SHOW):
                print(f"        {str(detail)[:110]}")
    return kept, m


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for stage in ("annotate", "generate"):
        p.add_argument(f"--{stage}", choices=("model", "rules"), default="model")
    # both: the same candidates checked by the model, then by the rule engine's checker (the
    # 135M checker accepts nearly everything: bench/README.md, verify as a classifier).
    p.add_argument("--verify", choices=("model", "rules", "both"), default="model")
    p.add_argument("--docs", type=int, default=30, help="sample pages (30 = all)")
    p.add_argument("--doc-chars", type=int, default=2000)
    p.add_argument("--personas", type=int, default=3)
    p.add_argument("--fewshot", type=int, default=2)
    p.add_argument("--choices", type=int, default=0, help="tasks.answer_choices")
    p.add_argument("--focus", action="store_true", help="tasks.focus_fact (needs --choices)")
    p.add_argument("--repeat-penalty", type=float, help="llama.cpp repeat_penalty (extra_body)")
    p.add_argument("--show", type=int, default=0, help="reject details shown per reason")
    args = p.parse_args()
    global SHOW
    SHOW = args.show

    tasks = TaskParams(
        max_doc_chars=args.doc_chars,
        max_personas=args.personas,
        n_fewshot=args.fewshot,
        answer_choices=args.choices,
        focus_fact=args.focus,
    )
    docs = [json.loads(x) for x in Path(sample_corpus_path()).read_text().splitlines()]
    docs = pd.DataFrame(
        [
            {"doc_id": d["id"], "url": d["url"], "source": "sample", "text": d["text"]}
            for d in docs
            if d["text"].strip()
        ][: args.docs]
    )
    print(f"pairing: annotate={args.annotate} generate={args.generate} verify={args.verify}; "
          f"{len(docs)} pages, {args.doc_chars} chars, {args.personas} personas, "
          f"{args.fewshot} demos, {args.choices} answer choices, focus {args.focus}, "
          f"repeat_penalty {args.repeat_penalty}")  # fmt: skip
    with LocalModelServer(ServerSettings(port=0)) as server:
        model = server.llm_params()
        engines = {s: model if getattr(args, s) == "model" else LLMParams() for s in
                   ("annotate", "generate")}  # fmt: skip
        checkers = {"model": model, "rules": LLMParams()}
        if args.verify != "both":
            checkers = {args.verify: checkers[args.verify]}
        if args.repeat_penalty and args.generate == "model":  # the generator only
            penalty = {"repeat_penalty": args.repeat_penalty}
            engines["generate"] = model.model_copy(update={"extra_body": penalty})
        batch = 2 * server.settings.slots
        totals = Counter()
        annotated, m = run_stage(annotate, docs, engines["annotate"], tasks, batch)
        totals.update(m)
        units = units_of(annotated)
        candidates, m = run_stage(generate, units, engines["generate"], tasks, batch)
        totals.update(m)
        texts = docs.set_index("doc_id")["text"]
        candidates = candidates.assign(text=candidates["doc_id"].map(texts))
        results = {}
        for name, checker in checkers.items():
            print(f"verify by {name}:")
            verified, m = run_stage(verify, candidates, checker, tasks, batch)
            results[name] = (verified, totals + m)
    for name, (verified, spent) in results.items():
        report(name, units, verified, spent)


def report(checker: str, units, verified, totals) -> None:
    share = len(verified) / len(units) if len(units) else 0.0
    print(f"checker {checker}: (document, persona) units: {len(units)}; verified pairs: "
          f"{len(verified)} ({share:.1%})")  # fmt: skip
    if len(verified):
        print(f"per verified pair: {totals['llm_prompt_tokens'] / len(verified):.0f} prompt, "
              f"{totals['llm_completion_tokens'] / len(verified):.0f} completion tokens")  # fmt: skip
    for row in verified.head(SHOW_PAIRS).itertuples():
        print(f"  Q: {row.question}\n  A: {row.answer} ({row.answer_type})")


if __name__ == "__main__":
    main()
