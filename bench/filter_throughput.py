"""Benchmark (not a test): our check_quality vs datatrove's four heuristic filters, one core.

Loads the same documents for both sides (the extracted text in shared data text/*.json*.gz plus
text extracted from a WARC with Resiliparse), times each side over all documents, and prints
docs/s, the speed ratio, and keep/drop agreement (overall and per rule family).

datatrove runs each filter on a fresh copy of the text (our families also all see the input
text; datatrove's C4 would otherwise hand its cleaned text to the next filter).

    .venv/bin/python bench/filter_throughput.py                 # small WARC (60 pages)
    .venv/bin/python bench/filter_throughput.py --warc web/web_pages.warc.gz --repeat 1

Needs `pip install datatrove spacy` (datatrove tokenises English with a blank spaCy model).
"""

from __future__ import annotations

import os

# One core: keep numeric libraries from spawning threads before they are imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from webscale_rl.udfs.text.quality import FAMILIES, QualityParams, check_quality  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(os.environ.get("WEBSCALE_SHARED_DATA", REPO.parent / "shared" / "data"))


def load_jsonl_texts(data: Path) -> list[str]:
    texts = []
    for path in sorted((data / "text").glob("*.json*.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            texts.extend(json.loads(line)["text"] for line in f if line.strip())
    return texts


def load_warc_texts(path: Path) -> list[str]:
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    texts = []
    with open(path, "rb") as f:
        for record in ArchiveIterator(f, record_types=WarcRecordType.response):
            body = record.reader.read()
            html = bytes_to_str(body, detect_encoding(body))
            text = extract_plain_text(html, main_content=True)
            if text.strip():
                texts.append(text)
    return texts


def datatrove_filters() -> dict[str, object]:
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    return {
        "gopher_quality": GopherQualityFilter(),
        "gopher_repetition": GopherRepetitionFilter(),
        "c4": C4QualityFilter(),
        "fineweb": FineWebQualityFilter(),
    }


def run_datatrove(filters: dict, texts: list[str]) -> list[dict[str, bool]]:
    from datatrove.data import Document

    out = []
    for i, text in enumerate(texts):
        verdicts = {}
        for family, flt in filters.items():
            verdict = flt.filter(Document(text=text, id=str(i)))
            verdicts[family] = verdict is True
        out.append(verdicts)
    return out


def per_family_ours(texts: list[str]) -> list[dict[str, bool]]:
    out = []
    for text in texts:
        verdicts = {}
        for family in FAMILIES:
            params = QualityParams(enabled_rules=[family])
            verdicts[family] = check_quality(text, params).keep
        out.append(verdicts)
    return out


def timed(fn, *args, repeat: int):
    best = float("inf")
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - start)
    return result, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--warc", default="web/web_pages_small.warc.gz")
    parser.add_argument("--repeat", type=int, default=3, help="timing runs; the best is kept")
    parser.add_argument("--limit", type=int, default=0, help="use at most this many documents")
    args = parser.parse_args()

    texts = load_jsonl_texts(args.data) + load_warc_texts(args.data / args.warc)
    if args.limit:
        texts = texts[: args.limit]
    n_chars = sum(map(len, texts))
    print(f"documents: {len(texts)}  characters: {n_chars:,}  (jsonl text + {args.warc})")

    filters = datatrove_filters()
    run_datatrove(filters, texts[:2])  # warm up: spaCy loads lazily on first use
    params = QualityParams()
    [check_quality(t, params) for t in texts[:2]]
    ours_results, ours_s = timed(
        lambda: [check_quality(t, params) for t in texts], repeat=args.repeat
    )
    dt_verdicts, dt_s = timed(run_datatrove, filters, texts, repeat=args.repeat)

    ours_keep = [r.keep for r in ours_results]
    dt_keep = [all(v.values()) for v in dt_verdicts]
    print(f"ours      : {len(texts) / ours_s:9.1f} docs/s  ({ours_s:.3f} s)")
    print(f"datatrove : {len(texts) / dt_s:9.1f} docs/s  ({dt_s:.3f} s)")
    print(f"speed ratio ours/datatrove: {dt_s / ours_s:.1f}x")
    agree = sum(a == b for a, b in zip(ours_keep, dt_keep, strict=True)) / len(texts)
    print(f"kept: ours {sum(ours_keep)}/{len(texts)}, datatrove {sum(dt_keep)}/{len(texts)}")
    print(f"agreement (all four families): {agree:.3f}")

    ours_family = per_family_ours(texts)
    for family in FAMILIES:
        same = sum(o[family] == d[family] for o, d in zip(ours_family, dt_verdicts, strict=True))
        print(f"  agreement {family:18s}: {same / len(texts):.3f}")


if __name__ == "__main__":
    main()
