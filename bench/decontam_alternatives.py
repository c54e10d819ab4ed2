"""Which near-match method: the candidates measured on the sets of bench/decontam_quality.py.

- `13-gram`: today's check alone (lm-evaluation-harness).
- `k-gram overlap >= r`: the share of a benchmark text's word k-grams (canonical words) that
  occur in the QA text; the "shorter n-grams with an overlap ratio" family. Order-aware, but one
  substituted word removes k grams, so short items fall below r fast.
- `k-gram Jaccard >= r`: MinHash's target measure on the same k-gram sets (computed exactly, so
  this is its best case). Symmetric: a short item inside a longer question scores low.
- `weighted containment >= t`: the method used (udfs/decontam/near_match.py) at several thresholds.

All rows add their check to the 13-gram check. k-grams held by more than 1,000 benchmark texts
are not indexed (generic phrasing; without the cap each QA row touches tens of thousands of
postings). Throughput is clean QA rows per CPU-second on one core.

    .venv/bin/python bench/decontam_alternatives.py [--per-benchmark 60]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from decontam_quality import BENCH, clean_sets, planted, sample_items  # noqa: E402

from webscale_rl.udfs.decontam.near_match import NearMatchParams  # noqa: E402
from webscale_rl.udfs.decontam.ngrams import (  # noqa: E402
    DecontamIndex,
    DecontamParams,
    benchmark_texts,
    canonical_tokens,
)


class KgramIndex:
    def __init__(self, items, k: int, max_df: int = 1000):
        self.k = k
        self.sizes = []
        postings = defaultdict(list)
        for _, _, text, whole in items:
            grams = self.grams(text) if whole else set()
            for g in grams:
                postings[g].append(len(self.sizes))
            self.sizes.append(len(grams))
        self.postings = {g: v for g, v in postings.items() if len(v) <= max_df}

    def grams(self, text: str) -> set[tuple[str, ...]]:
        toks = canonical_tokens(text)
        return {tuple(toks[i : i + self.k]) for i in range(len(toks) - self.k + 1)}

    def score(self, text: str, jaccard: bool) -> float:
        grams = self.grams(text)
        shared = Counter(i for g in grams for i in self.postings.get(g, ()))
        best = 0.0
        for item, n in shared.items():
            size = self.sizes[item]
            if size >= 3:  # fewer grams than that is not a test item
                best = max(best, n / (size + len(grams) - n) if jaccard else n / size)
        return best


def evaluate(name, rows, clean, decide) -> list[str]:
    def rate(sel):
        return 100 * sum(decide(r) for r in sel) / len(sel)

    kinds = {
        "embedded": [r for r in rows if r["kind"] == "embedded"],
        "embedded short": [r for r in rows if r["kind"] == "embedded" and r["short"]],
        "edited": [r for r in rows if r["kind"] == "edited"],
        "edited short": [r for r in rows if r["kind"] == "edited" and r["short"]],
    }
    start = time.process_time()
    removed = sum(decide(qa) for qa in clean["xquad (human)"] + clean["generated from text + web"])
    n_clean = len(clean["xquad (human)"]) + len(clean["generated from text + web"])
    speed = n_clean / (time.process_time() - start)
    generic = sum(decide(qa) for qa in clean["generic phrasing"])
    cells = [f"{rate(sel):.1f}%" for sel in kinds.values()]
    cells += [f"{100 * removed / n_clean:.2f}% ({removed})", f"{generic}/60", f"{speed:,.0f}"]
    return [name, *cells]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--per-benchmark", type=int, default=60)
    args = ap.parse_args(argv)
    params = DecontamParams()
    items = [(s.name, i, t, w) for s in params.benchmarks for i, t, w in benchmark_texts(s, BENCH)]
    rows, clean = planted(sample_items(args.per_benchmark, 0), 0), clean_sets()

    base = DecontamIndex(items, DecontamParams(near=NearMatchParams(enabled=False)))
    table = [evaluate("13-gram", rows, clean, lambda qa: base.find(qa) is not None)]
    for k, measure, cut in (
        (3, "overlap", 0.5),
        (3, "overlap", 0.7),
        (5, "overlap", 0.5),
        (3, "Jaccard", 0.5),
    ):
        kg = KgramIndex(items, k)
        jac = measure == "Jaccard"

        def decide(qa, kg=kg, jac=jac, cut=cut):
            if base.find(qa) is not None:
                return True
            text = " ".join(qa[c] for c in ("question", "answer") if isinstance(qa.get(c), str))
            return kg.score(text, jac) >= cut

        table.append(evaluate(f"{k}-gram {measure} >= {cut}", rows, clean, decide))
    for t in (0.7, 0.75, 0.8, 0.85):
        index = DecontamIndex(items, DecontamParams(near=NearMatchParams(threshold=t)))
        table.append(
            evaluate(
                f"weighted containment >= {t}",
                rows,
                clean,
                lambda qa, i=index: i.find(qa) is not None,
            )
        )

    head = [
        "method",
        "embedded",
        "embedded short",
        "edited",
        "edited short",
        "clean removed",
        "generic removed",
        "clean rows/s/core",
    ]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for row in table:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
