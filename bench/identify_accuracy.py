"""How well the LLM-free engine picks a document's domain (the identify task).

Two labelled sets:
- held-out: English pages of the shared WARC (web/web_pages.warc.gz) that pass the quality
  filter, labelled by hand by reading each page (bench/data/domain_gold.jsonl: url, domain,
  a few words on why; no page text). The lexicon was written without looking at them.
- sample: the project's own 32-document sample corpus (written per domain for the demo).

Prints accuracy, recall per gold domain and the most common confusions. With
`--baseline-lexicon FILE` the same documents are also scored with another lexicon (e.g. an
older version: `git show HEAD~5:webscale_rl/resources/lexicon/domains.json > /tmp/old.json`)
and both are printed side by side.

Run from the repo root:
    .venv/bin/python bench/identify_accuracy.py [--baseline-lexicon /tmp/old.json]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from webscale_rl.udfs.llm import engine_rules
from webscale_rl.udfs.llm.engine_rules import RuleEngineParams, identify_page
from webscale_rl.udfs.llm.tasks import TaskParams
from webscale_rl.udfs.read.documents import clean_text
from webscale_rl.udfs.read.warc import WarcParams, iter_records

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
GOLD = REPO / "bench" / "data" / "domain_gold.jsonl"
SAMPLE = REPO / "webscale_rl" / "resources" / "sample_corpus" / "sample_corpus.jsonl"


def held_out(warc: Path, gold: Path) -> list[tuple[str, str, str]]:
    """(url, text, gold domain) of every labelled page found in the WARC."""
    labels = {}
    for line in gold.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            labels[row["url"]] = row["domain"]
    docs = {}
    with open(warc, "rb") as f:
        for rec in iter_records(f, str(warc), WarcParams()):
            if rec["reject_reason"] is None and rec["url"] in labels:
                docs.setdefault(rec["url"], clean_text(rec["text"]))
    missing = sorted(set(labels) - set(docs))
    if missing:
        print(f"note: {len(missing)} labelled urls not found in {warc.name}: {missing[:3]} ...")
    return [(url, docs[url], labels[url]) for url in sorted(docs)]


def sample_corpus() -> list[tuple[str, str, str]]:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line]
    return [(r["id"], r["text"], r["domain"]) for r in rows]


def predict(docs: list[tuple[str, str, str]]) -> list[str]:
    domains, params = TaskParams().domains, RuleEngineParams()
    payload = {"domains": domains, "max_personas": 3}
    return [
        identify_page({**payload, "doc_id": key, "document": text}, params)["domain"]
        for key, text, _ in docs
    ]


def with_lexicon(path: Path | None, docs) -> list[str]:
    """Predictions under the lexicon file at `path` (None: the packaged one)."""
    if path is None:
        engine_rules.load_lexicon.cache_clear()
        return predict(docs)
    packaged = engine_rules.load_lexicon
    personas = packaged()[1]
    engine_rules.load_lexicon = lambda: (json.loads(path.read_text(encoding="utf-8")), personas)
    try:
        return predict(docs)
    finally:
        engine_rules.load_lexicon = packaged


def report(name: str, docs, predictions: dict[str, list[str]]) -> None:
    gold = [d for _, _, d in docs]
    print(f"\n{name}: {len(docs)} documents")
    for label, pred in predictions.items():
        right = sum(p == g for p, g in zip(pred, gold, strict=True))
        print(f"  {label:<10} accuracy {right / len(docs):.3f} ({right}/{len(docs)})")
    label, pred = list(predictions.items())[-1]
    print(f"  recall per gold domain ({label}):")
    for domain, n in sorted(Counter(gold).items(), key=lambda kv: -kv[1]):
        hit = sum(p == g == domain for p, g in zip(pred, gold, strict=True))
        print(f"    {domain:<26} {hit:>3}/{n:<3} {hit / n:.2f}")
    confusions = Counter((g, p) for p, g in zip(pred, gold, strict=True) if p != g)
    print(f"  most common confusions ({label}), gold -> predicted:")
    for (g, p), n in confusions.most_common(6):
        print(f"    {g} -> {p}: {n}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warc", type=Path, default=DATA / "web" / "web_pages.warc.gz")
    parser.add_argument("--gold", type=Path, default=GOLD)
    parser.add_argument("--baseline-lexicon", type=Path, default=None)
    args = parser.parse_args()
    sets = [
        ("held-out web pages", held_out(args.warc, args.gold)),
        ("sample corpus", sample_corpus()),
    ]
    for name, docs in sets:
        predictions = {}
        if args.baseline_lexicon:
            predictions["baseline"] = with_lexicon(args.baseline_lexicon, docs)
        predictions["current"] = with_lexicon(None, docs)
        report(name, docs, predictions)


if __name__ == "__main__":
    main()
