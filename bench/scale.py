"""Scale benchmark (issue 13): the whole pipeline at N documents, a no-op rerun, +10% incremental.

    .venv/bin/python bench/scale.py --n 10000 [--n 100000] [--workdir /tmp/scale] [--chunks 1]
        [--gpu-cost X]   # LLM stages on the simulated GPU at X times its default throughput
        [--runs first,noop,incr]   # which of the three runs to make

For each N it makes a corpus of N documents from the real pages in ../shared/data (see
`make_docs`), runs every stage in one Python process with one local Spark session (LLM stages
on the `simulated` engine at 1e9 tokens/s, so only our own overhead is timed), then runs the
same command again (nothing left to do) and once more after appending 10% new documents to the
input (incremental). Per stage it prints wall seconds, rows/s (input rows of the first run),
Delta files added to the stage's tables, MB shuffled and written (Spark's status API, by the
stage's job group) and peak driver memory (bench/stage_metrics.py); then the ratios
time(N_last)/time(N_first) per stage, no-op/first and incremental/first. Each N runs in its own
child process (its own driver JVM), so the driver memory of two sizes can be compared.

Corpus (deterministic for a seed): documents are built from paragraphs of the English and
non-English pages of web/web_pages.warc.wet.gz and the English CCNet/Dolma documents in text/;
each original document is 3-8 paragraphs drawn at random from the pool with light word-level
mutation, so originals are distinct for MinHash. Shares (defaults): 15% near-duplicates (a copy
of an earlier document with ~3% of words changed and a line dropped), 5% exact duplicates,
20% non-English (paragraphs from non-English pages), 10% low quality (very short, symbol or
link lists, repeated boilerplate). Written as JSONL (the ingest stage's default format) and,
with --parquet, as Parquet too.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stage_metrics import StageMetrics

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("WEBSCALE_SHARED_DATA", REPO.parent / "shared" / "data"))
WET = DATA / "web" / "web_pages.warc.wet.gz"
TEXTS = [DATA / "text" / "cc_en_head-0091.jsonl.gz", DATA / "text" / "cc_en_head-0174.jsonl.gz"]
DOLMA = DATA / "text" / "dolma-documents-000.json.gz"
STAGE_TABLES = {  # stage -> tables it writes (output and the shared rejects table)
    "ingest": ["documents"],
    "filter": ["documents_filtered"],
    "dedup": ["documents_deduped"],
    "annotate": ["annotations"],
    "generate": ["qa_candidates"],
    "verify": ["qa_verified"],
    "qa_dedup": ["qa_deduped"],
    "decontaminate": ["qa_clean"],
    "publish": ["qa"],
}
EN_WORDS = frozenset(
    "the and of to in is that for it with as was on are be by this from at or have an".split()
)
BOILER = [
    "Home | About | Contact | Privacy Policy | Terms of Use | Sitemap",
    "Click here to subscribe to our newsletter!!! Best deals, free shipping, buy now",
    "Copyright (c) All rights reserved. Cookies help us deliver our services.",
    "Login Register Cart (0) Wishlist Search Menu",
]
SHARES = {"near_dup": 0.15, "exact_dup": 0.05, "non_en": 0.20, "low_quality": 0.10}
RUNS = ("first", "noop", "incr")


def is_english(text: str) -> bool:
    words = re.findall(r"[a-z]+", text.lower())
    return len(words) > 30 and sum(w in EN_WORDS for w in words) / len(words) > 0.12


def source_pages() -> tuple[list[str], list[str]]:
    """(English texts, non-English texts) from the shared WET file and text/ documents."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    en, other = [], []
    with open(WET, "rb") as fh:
        for rec in ArchiveIterator(fh, record_types=WarcRecordType.conversion):
            text = rec.reader.read().decode("utf-8", errors="replace")
            if len(text) > 400:
                (en if is_english(text) else other).append(text)
    for path in [*TEXTS, DOLMA]:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                obj = json.loads(line)
                text = obj.get("raw_content") or obj.get("text") or ""
                if is_english(text):
                    en.append(text)
    return en, other


def paragraphs(texts: list[str]) -> list[str]:
    out = []
    for t in texts:
        out += [p.strip() for p in re.split(r"\n\s*\n|\n", t) if len(p.strip()) > 80]
    return out


def mutate(text: str, rng: random.Random, rate: float) -> str:
    words = text.split(" ")
    for _ in range(max(1, int(len(words) * rate))):
        i = rng.randrange(len(words))
        op = rng.random()
        if op < 0.4:
            words[i] = words[rng.randrange(len(words))]
        elif op < 0.7:
            words[i] = words[i].upper() if rng.random() < 0.5 else words[i][::-1]
        else:
            words.insert(i, rng.choice(("very", "also", "then", "2024", "new", "it")))
    return " ".join(words)


def make_docs(n: int, seed: int = 0, start: int = 0, pool=None) -> list[dict]:
    """Documents start..start+n-1 of the corpus for `seed` (a prefix of a larger corpus is the
    same corpus: document i depends only on the seed and i, and on documents before it for
    duplicates, which are drawn from the same index range)."""
    en_par, other_par = pool or pools()
    out: list[dict] = []
    for i in range(start, start + n):
        rng = random.Random(f"{seed}:{i}")
        r = rng.random()
        kind = "original"
        cut = 0.0
        for k, share in SHARES.items():
            cut += share
            if r < cut:
                kind = k
                break
        if kind in ("near_dup", "exact_dup") and i > 10:
            j = rng.randrange(max(0, i - 5000), i)  # an earlier document (its original text)
            base = _original(j, seed, en_par)
            if kind == "near_dup":
                lines = base.split("\n")
                if len(lines) > 3:
                    del lines[rng.randrange(len(lines))]
                text = mutate("\n".join(lines), rng, 0.03)
            else:
                text = base
        elif kind == "non_en":
            text = "\n\n".join(rng.sample(other_par, rng.randint(3, 8)))
        elif kind == "low_quality":
            style = rng.randrange(3)
            if style == 0:
                text = rng.choice(en_par)[:120]
            elif style == 1:
                text = "\n".join(
                    f"* [{rng.randint(1, 999)}] http://x{rng.randint(1, 10**6)}.example/{k} >>"
                    for k in range(rng.randint(20, 60))
                )
            else:
                text = "\n".join(rng.choice(BOILER) for _ in range(rng.randint(10, 40)))
        else:
            kind = "original"
            text = _original(i, seed, en_par)
        out.append(
            {"id": f"doc-{i:09d}", "url": f"https://scale.example/{i}", "text": text, "kind": kind}
        )
    return out


def _original(i: int, seed: int, en_par: list[str]) -> str:
    rng = random.Random(f"{seed}:orig:{i}")
    parts = rng.sample(en_par, rng.randint(3, 8))
    return "\n\n".join(mutate(p, rng, 0.02) for p in parts)


_POOLS = None


def pools():
    global _POOLS
    if _POOLS is None:
        en, other = source_pages()
        _POOLS = (paragraphs(en), paragraphs(other))
    return _POOLS


def write_jsonl(docs: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for d in docs:
            fh.write(json.dumps(d, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- the pipeline runs


def delta_files(lakehouse: Path) -> dict[str, int]:
    """Table folder -> data files committed to it (Delta `add` actions over all versions)."""
    out = {}
    for log in Path(lakehouse).rglob("_delta_log"):
        n = 0
        for commit in log.glob("*.json"):
            with open(commit, encoding="utf-8") as fh:
                n += sum(1 for line in fh if line.startswith('{"add"'))
        out[str(log.parent.relative_to(lakehouse))] = n
    return out


def run_once(spark, cfg, label: str, lakehouse: Path, metrics: StageMetrics) -> dict[str, dict]:
    from webscale_rl import tracking
    from webscale_rl.jobs import pipeline

    before = delta_files(lakehouse)
    bytes_before = metrics.bytes_by_stage()
    began = time.time()
    with tracking.pipeline_run(cfg, f"scale {label}") as run_id, metrics.watch():
        cfg.run_id = run_id
        results = pipeline.run(spark, cfg)
    total = time.time() - began
    after = delta_files(lakehouse)
    spark_metrics = metrics.per_stage(bytes_before)
    out = {}
    for r in results:
        files = 0
        for t in STAGE_TABLES.get(r.stage, []):
            key = next((k for k in after if k.endswith(t)), None)
            if key:
                files += after[key] - before.get(key, 0)
        rej = next((k for k in after if k.endswith("rejects")), None)
        out[r.stage] = {"s": r.seconds, "in": r.rows_in, "files": files}
        out[r.stage].update(spark_metrics.get(r.stage, {}))
        if "llm_engine_seconds" in r.metrics:
            # The engine's busy time summed over tasks; tasks run side by side.
            tasks = cfg.llm_stages.tasks or spark.sparkContext.defaultParallelism
            out[r.stage]["engine_s"] = r.metrics["llm_engine_seconds"] / tasks
    out["_total"] = {"s": total, "rejects_files": after.get(rej, 0) - before.get(rej, 0)}
    return out


def print_table(title: str, res: dict[str, dict]) -> None:
    print(f"\n### {title}")
    print(
        "| stage | wall s | rows in | rows/s | Delta files committed | MB shuffled | MB written "
        "| peak driver MB: Python RSS / JVM RSS / JVM heap | JVM heap after GC MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for st, v in res.items():
        if st.startswith("_"):
            continue
        rate = v["in"] / v["s"] if v["s"] > 0 else 0
        memory = " / ".join(
            f"{v.get(k, 0):.0f}" for k in ("py_rss_mb", "jvm_rss_mb", "jvm_heap_mb")
        )
        print(
            f"| {st} | {v['s']:.1f} | {v['in']} | {rate:.0f} | {v['files']} "
            f"| {v.get('shuffle_mb', 0):.1f} | {v.get('written_mb', 0):.1f} | {memory} "
            f"| {v.get('jvm_retained_mb', 0):.0f} |"
        )
    llm = {st: v for st, v in res.items() if "engine_s" in v}
    if llm:
        print("\n| LLM stage | wall s | engine busy s (per task) | Spark's own share |")
        print("|---|---:|---:|---:|")
        for st, v in llm.items():
            share = 1 - v["engine_s"] / v["s"] if v["s"] > 0 else 0
            print(f"| {st} | {v['s']:.1f} | {v['engine_s']:.1f} | {share:.0%} |")
    t = res["_total"]
    print(f"| **total** | {t['s']:.1f} | | | rejects: {t['rejects_files']} | | | | |", flush=True)


def bench_n(
    spark,
    metrics: StageMetrics,
    n: int,
    work: Path,
    chunks: int,
    seed: int,
    gpu_cost: float = 0,
    runs: tuple[str, ...] = RUNS,
) -> dict[str, dict]:
    from webscale_rl.config import load_config

    root = work / f"n{n}"
    inp = root / "input"
    pool = pools()
    t0 = time.time()
    docs = make_docs(n, seed, pool=pool)
    write_jsonl(docs, inp / "part-0000.jsonl")
    kinds = {k: sum(d["kind"] == k for d in docs) for k in ("original", *SHARES)}
    print(f"\n## N={n}: corpus in {time.time() - t0:.1f} s: {kinds}", flush=True)
    # Zero latency times only our overhead; --gpu-cost X runs the simulated GPU at X times its
    # default throughput (50k prompt / 5k generated tokens/s per instance) instead.
    prompt_rate, gen_rate = (50_000 * gpu_cost, 5_000 * gpu_cost) if gpu_cost else (1e9, 1e9)
    sets = [
        f"llm_stages.commit_chunks={chunks}",
        "llm.engine=simulated",
        f"llm.simulated_prompt_tokens_per_s={prompt_rate:.0f}",
        f"llm.simulated_gen_tokens_per_s={gen_rate:.0f}",
        f"mlflow.tracking_uri=sqlite:///{root / 'mlflow.db'}",
        f"ingest.input={inp}/*.jsonl",
    ]
    cfg = load_config(overrides=sets, lakehouse=str(root / "lh"))
    res = {}
    res["first"] = run_once(spark, cfg, f"{n} first", root / "lh", metrics)
    print_table(f"N={n} first run", res["first"])
    if "noop" in runs:
        cfg = load_config(overrides=sets, lakehouse=str(root / "lh"))
        res["noop"] = run_once(spark, cfg, f"{n} noop", root / "lh", metrics)
        print_table(f"N={n} no-op rerun", res["noop"])
    if "incr" in runs:
        write_jsonl(make_docs(n // 10, seed, start=n, pool=pool), inp / "part-0001.jsonl")
        cfg = load_config(overrides=sets, lakehouse=str(root / "lh"))
        res["incr"] = run_once(spark, cfg, f"{n} +10%", root / "lh", metrics)
        print_table(f"N={n} +10% new documents", res["incr"])
    for label in [r for r in ("noop", "incr") if r in res]:
        print(
            f"{label}/first: "
            + ", ".join(
                f"{st} {res[label][st]['s'] / max(res['first'][st]['s'], 1e-9):.2f}"
                for st in res["first"]
            ),
            flush=True,
        )
    return res


def child_args(a, n: int, out: Path) -> list[str]:
    """The command that benchmarks one N in a fresh process and writes its results to `out`."""
    args = [sys.executable, str(Path(__file__).resolve()), "--n", str(n), "--json", str(out)]
    args += ["--workdir", a.workdir, "--chunks", str(a.chunks), "--seed", str(a.seed)]
    return args + ["--gpu-cost", str(a.gpu_cost), "--runs", a.runs]


def print_ratios(all_res: dict[int, dict]) -> None:
    ns = sorted(all_res)
    lo, hi = ns[0], ns[-1]
    print(f"\n### time(N={hi}) / time(N={lo}) per stage (first runs; data ratio {hi / lo:.1f})")
    first_lo, first_hi = all_res[lo]["first"], all_res[hi]["first"]
    print(
        "| stage | s lo | s hi | ratio | MB shuffled lo / hi "
        "| driver JVM heap after GC MB lo / hi | peak Python RSS MB lo / hi |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for st in first_lo:
        lo_, hi_ = first_lo[st], first_hi.get(st, {})
        ratio = hi_.get("s", 0) / max(lo_["s"], 1e-9)
        print(
            f"| {st} | {lo_['s']:.1f} | {hi_.get('s', 0):.1f} | {ratio:.2f} "
            f"| {lo_.get('shuffle_mb', 0):.1f} / {hi_.get('shuffle_mb', 0):.1f} "
            f"| {lo_.get('jvm_retained_mb', 0):.0f} / {hi_.get('jvm_retained_mb', 0):.0f} "
            f"| {lo_.get('py_rss_mb', 0):.0f} / {hi_.get('py_rss_mb', 0):.0f} |"
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, action="append", help="corpus size (repeatable)")
    p.add_argument("--workdir", default="/tmp/scale")
    p.add_argument("--chunks", type=int, default=1, help="llm_stages.commit_chunks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--gpu-cost",
        type=float,
        default=0,
        help="simulated engine at X times its default GPU throughput (0: zero latency)",
    )
    p.add_argument("--runs", default=",".join(RUNS), help="which runs: first,noop,incr")
    p.add_argument("--json", help="(one N) also write the results to this file")
    p.add_argument("--corpus-only", action="store_true", help="write the corpus and stop")
    a = p.parse_args()
    ns = a.n or [10_000]
    runs = tuple(r for r in a.runs.split(",") if r)
    if "first" not in runs or set(runs) - set(RUNS):
        p.error(f"--runs: a comma list of {', '.join(RUNS)} that includes first")
    work = Path(a.workdir)
    if a.corpus_only:
        for n in ns:
            write_jsonl(make_docs(n, a.seed), work / f"corpus-{n}.jsonl")
        return 0
    if len(ns) > 1:
        # One process (one driver JVM) per N: driver memory is then comparable across sizes.
        import subprocess

        all_res = {}
        for n in ns:
            out = work / f"n{n}.json"
            subprocess.run(child_args(a, n, out), check=True)
            all_res[n] = json.loads(out.read_text())
        print_ratios(all_res)
        return 0
    from stage_metrics import UI_CONF, StageMetrics  # beside this script (sys.path[0])

    from webscale_rl.config import load_config
    from webscale_rl.session import get_spark

    cfg = load_config()
    cfg.spark.conf.update(UI_CONF)  # the status REST API gives bytes per stage
    spark = get_spark(cfg)
    metrics = StageMetrics(spark)
    res = bench_n(spark, metrics, ns[0], work, a.chunks, a.seed, a.gpu_cost, runs)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
