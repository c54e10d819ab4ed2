"""Which HTML extractor: quality against trafilatura's gold snippets, and speed.

Pages come from the shared WARC (web/web_pages.warc.gz); each response record's
`X-Source-Fixture` header names the trafilatura test file it was made from, which is the
`file` field of the gold data (extraction_gold/trafilatura_evaldata.json). URLs are not used
to join: some gold URLs carry stray spaces.

Scoring is trafilatura's (tests/eval_common.py): whitespace-normalised substring matching;
a "with" snippet found is a true positive, missed a false negative; a "without" snippet found
is a false positive. precision = tp/(tp+fp), recall = tp/(tp+fn), F1 = 2tp/(2tp+fp+fn).
An extractor that raises scores the page as all-missed, as in trafilatura's benchmark.

Run from the repo root:
    .venv/bin/python bench/extraction_eval.py
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastwarc.warc import ArchiveIterator, WarcRecordType

from webscale_rl.udfs.read.extract import DEFAULT_EXTRACTOR, EXTRACTORS, html_to_text
from webscale_rl.udfs.read.warc import WarcParams, WarcStats, decode_html, iter_records

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
FIXTURE_ORIGIN = "adbar/trafilatura:"


def all_text(html: str) -> str:
    """Reference row: every visible text, no boilerplate removal (the recall ceiling)."""
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(html, main_content=False)


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    pages: int = 0
    errors: int = 0
    empty: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0

    def add(self, item: dict, text: str | None) -> None:
        found = norm(text) if text else ""
        tp = sum(1 for s in item["with"] if norm(s) in found)
        fp = sum(1 for s in item["without"] if norm(s) in found)
        self.tp += tp
        self.fp += fp
        self.fn += len(item["with"]) - tp
        self.tn += len(item["without"]) - fp
        self.pages += 1
        self.empty += not found

    def row(self, name: str, reference_rate: float) -> str:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        total = self.tp + self.fp + self.fn + self.tn
        accuracy = (self.tp + self.tn) / total if total else 0.0
        f1 = 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp else 0.0
        rate = self.pages / self.cpu_s if self.cpu_s else 0.0
        return (
            f"| {name} | {self.pages} | {self.errors} | {self.empty} | {precision:.3f} | "
            f"{recall:.3f} | {accuracy:.3f} | {f1:.3f} | {rate:.1f} | "
            f"{self.pages / self.wall_s:.1f} | {rate / reference_rate:.2f} |"
        )


def load_pages(warc: Path, gold: dict, limit: int | None) -> list[tuple[str, dict]]:
    """(decoded HTML, gold item) for every WARC page that has gold snippets."""
    by_file = {item["file"]: item for item in gold.values()}
    pages = []
    with open(warc, "rb") as f:
        for record in ArchiveIterator(f, record_types=WarcRecordType.response):
            fixture = record.headers.get("X-Source-Fixture") or ""
            item = by_file.get(fixture.rsplit("/", 1)[-1])
            if not fixture.startswith(FIXTURE_ORIGIN) or item is None:
                continue
            pages.append((decode_html(record.reader.read(), record.http_charset), item))
            if limit and len(pages) >= limit:
                break
    return pages


def evaluate(extract: Callable[[str], str], pages: list[tuple[str, dict]]) -> Score:
    score = Score()
    extract("<html><body><p>warm-up: lazy imports and caches</p></body></html>")
    for html, item in pages:
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            text = extract(html)
        except Exception:
            text = None
            score.errors += 1
        score.cpu_s += time.process_time() - cpu
        score.wall_s += time.perf_counter() - wall
        score.add(item, text)
    return score


def end_to_end(warc: Path, extractor: str) -> str:
    """iter_records over the whole WARC: read, decode, extract, checks."""
    stats = WarcStats()
    cpu, wall = time.process_time(), time.perf_counter()
    with open(warc, "rb") as f:
        for _ in iter_records(f, str(warc), WarcParams(extractor=extractor), stats):
            pass
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    n = stats.kept + sum(stats.rejected.values())
    return (
        f"iter_records end to end ({extractor}): {n} records ({stats.kept} kept, "
        f"rejects {dict(stats.rejected)}) in {cpu:.1f} CPU-s / {wall:.1f} s wall = "
        f"{n / cpu:.1f} records/CPU-s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warc", type=Path, default=DATA / "web" / "web_pages.warc.gz")
    parser.add_argument(
        "--gold", type=Path, default=DATA / "extraction_gold" / "trafilatura_evaldata.json"
    )
    parser.add_argument("--extractors", nargs="+", default=[*EXTRACTORS, "all_text"])
    parser.add_argument("--limit", type=int, default=None, help="first N matched pages only")
    parser.add_argument("--e2e", action="store_true", help="also time iter_records end to end")
    args = parser.parse_args()

    gold = json.loads(args.gold.read_text(encoding="utf-8"))
    pages = load_pages(args.warc, gold, args.limit)
    print(f"{len(pages)} pages of {args.warc.name} matched to {len(gold)} gold entries\n")
    scores = {}
    for name in args.extractors:
        if name == "all_text":
            scores[name] = evaluate(all_text, pages)
        else:
            scores[name] = evaluate(lambda html, name=name: html_to_text(html, name), pages)
    reference = scores.get(DEFAULT_EXTRACTOR) or next(iter(scores.values()))
    reference_rate = reference.pages / reference.cpu_s
    print(
        "| extractor | pages | errors | empty | precision | recall | accuracy | F1 | "
        f"pages/CPU-s | pages/s wall | speed vs {DEFAULT_EXTRACTOR} |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, score in scores.items():
        print(score.row(name, reference_rate))
    if args.e2e:
        print("\n" + end_to_end(args.warc, DEFAULT_EXTRACTOR))


if __name__ == "__main__":
    main()
