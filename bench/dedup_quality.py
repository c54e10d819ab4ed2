"""Near-duplicate benchmark: precision and recall of the MinHash-LSH candidate + verify logic.

Real pages from the shared WARC are copied and mutated (word replacements, insertions, deletions,
inserted boilerplate lines, plus case/punctuation/digit noise that normalisation must ignore) to
target Jaccard similarities from 0.3 to 1.0. The true Jaccard of every (original, copy) pair is
then measured exactly on the shingle sets, and `reference_clusters` (what the Spark job computes)
is scored on whether each pair ends up in one cluster.

    .venv/bin/python bench/dedup_quality.py [--pages N] [--copies K] [--seed S]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from webscale_rl.ids import stable_hash
from webscale_rl.udfs.text.minhash import MinHashParams, jaccard, reference_clusters, shingle_set

WARC = Path(__file__).resolve().parents[2] / "shared" / "data" / "web" / "web_pages.warc.gz"
TARGETS = [1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5, 0.4, 0.3]
BOILERPLATE = [
    "Accept all cookies to continue browsing this site",
    "Subscribe to our newsletter and never miss a story",
    "Share this article on Facebook Twitter and LinkedIn",
    "All rights reserved Terms of use Privacy policy Contact us",
    "Read more related articles from our editors below",
    "Sign in or register to leave a comment",
]


def load_pages(path: Path = WARC, min_words: int = 50, limit: int | None = None) -> list[str]:
    """Main-content text of the WARC's HTML responses with at least `min_words` words."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    pages = []
    with open(path, "rb") as stream:
        for record in ArchiveIterator(stream, record_types=WarcRecordType.response):
            body = record.reader.read()
            html = bytes_to_str(body, detect_encoding(body))
            text = extract_plain_text(html, main_content=True)
            if len(text.split()) >= min_words:
                pages.append(text)
                if limit and len(pages) >= limit:
                    break
    return pages


def _edit_ops(rng: random.Random, n: int, vocab: list[str]) -> list[tuple[str, float, str]]:
    ops = []
    for _ in range(n):
        kind = rng.choices(["replace", "insert", "delete", "boilerplate"], [5, 2, 2, 1])[0]
        filler = rng.choice(BOILERPLATE) if kind == "boilerplate" else rng.choice(vocab)
        ops.append((kind, rng.random(), filler))
    return ops


def _apply(words: list[str], ops) -> list[str]:
    out = list(words)
    for kind, where, filler in ops:
        i = int(where * len(out))
        if kind == "replace" and out:
            out[min(i, len(out) - 1)] = filler
        elif kind == "delete" and len(out) > 1:
            del out[min(i, len(out) - 1)]
        else:  # insert a word or a boilerplate line
            out[i:i] = filler.split()
    return out


def _surface_noise(rng: random.Random, words: list[str]) -> list[str]:
    """Case, punctuation and digit changes: invisible after normalisation."""
    out = []
    for w in words:
        r = rng.random()
        if r < 0.05:
            w = w.upper()
        elif r < 0.08:
            w = w + rng.choice([",", ".", ";", "!", " -"])
        out.append("".join(str(rng.randrange(10)) if c.isdigit() else c for c in w))
    return out


def mutate(text: str, target: float, rng: random.Random, vocab: list[str]) -> str:
    """A copy of `text` whose shingle Jaccard with it is as close to `target` as edits allow."""
    words = text.split()
    original = shingle_set(text)
    ops = _edit_ops(rng, 2 * len(words), vocab)
    lo, hi = 0, len(ops)  # binary search on the number of edits: Jaccard falls as edits grow
    while lo < hi:
        mid = (lo + hi) // 2
        if jaccard(original, shingle_set(" ".join(_apply(words, ops[:mid])))) > target:
            lo = mid + 1
        else:
            hi = mid
    best = min(
        (k for k in (lo - 1, lo) if k >= 0),
        key=lambda k: abs(
            jaccard(original, shingle_set(" ".join(_apply(words, ops[:k])))) - target
        ),
    )
    return " ".join(_surface_noise(rng, _apply(words, ops[:best])))


def build_benchmark(pages: list[str], copies: int, seed: int):
    """(ids, texts, pairs): pairs are (original id, copy id, true Jaccard)."""
    rng = random.Random(seed)
    vocab = [w for p in pages[:200] for w in p.split()]
    ids, texts, pairs = [], [], []
    for p, page in enumerate(pages):
        # Random hex ids, as in the pipeline: which member is a bucket's minimum is arbitrary.
        orig = stable_hash("page", str(seed), str(p), length=16)
        ids.append(orig)
        texts.append(page)
        page_set = shingle_set(page)
        for c, target in enumerate(rng.sample(TARGETS, copies)):
            copy = mutate(page, target, rng, vocab)
            cid = stable_hash("copy", str(seed), str(p), str(c), length=16)
            ids.append(cid)
            texts.append(copy)
            pairs.append((orig, cid, jaccard(page_set, shingle_set(copy))))
    return ids, texts, pairs


def score(pairs, clusters: dict, originals: list[str], hi: float = 0.8, lo: float = 0.5) -> dict:
    together = [(j, clusters[a] == clusters[b]) for a, b, j in pairs]
    positives = [t for j, t in together if j >= hi]
    predicted = [j for j, t in together if t]
    negatives = [t for j, t in together if j < lo]
    merged_pages = len(originals) - len({clusters[o] for o in originals})
    return {
        "pairs>=0.8": len(positives),
        "recall": sum(positives) / max(1, len(positives)),
        "precision": sum(j >= hi for j in predicted) / max(1, len(predicted)),
        "pairs<0.5": len(negatives),
        "fpr<0.5": sum(negatives) / max(1, len(negatives)),
        "pages_merged": merged_pages,
    }


def recall_by_bin(pairs, clusters: dict) -> str:
    bins = [(0.3, 0.5), (0.5, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.01)]
    parts = []
    for lo, hi in bins:
        inside = [clusters[a] == clusters[b] for a, b, j in pairs if lo <= j < hi]
        parts.append(f"[{lo:.1f},{min(hi, 1.0):.1f}): {sum(inside)}/{len(inside)}")
    return "  ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=0, help="use the first N pages (0: all)")
    ap.add_argument("--copies", type=int, default=4, help="mutated copies per page")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    start = time.time()
    pages = load_pages(limit=args.pages or None)
    ids, texts, pairs = build_benchmark(pages, args.copies, args.seed)
    originals = ids[:: args.copies + 1]
    print(
        f"{len(pages)} pages (>= 50 words) + {len(pairs)} mutated copies = {len(ids)} docs; "
        f"built in {time.time() - start:.1f}s"
    )
    for verify in (False, True):
        params = MinHashParams(verify=verify)
        start = time.time()
        clusters = reference_clusters(ids, texts, params)
        s = score(pairs, clusters, originals)
        print(
            f"verify={str(verify):5}  recall(J>=0.8)={s['recall']:.4f} of {s['pairs>=0.8']}  "
            f"precision={s['precision']:.4f}  FPR(J<0.5)={s['fpr<0.5']:.4f} of {s['pairs<0.5']}  "
            f"original pages merged={s['pages_merged']}  ({time.time() - start:.1f}s)"
        )
        print(f"   together by true Jaccard: {recall_by_bin(pairs, clusters)}")


if __name__ == "__main__":
    main()
