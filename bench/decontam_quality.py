"""Decontamination quality: planted benchmark items must go, clean QA must stay.

Planted sets are built from the question-like field of every benchmark in
../shared/data/benchmarks (up to --per-benchmark items each, seeded):

- verbatim: the item is the question;
- embedded: the item sits inside a longer question (a lead-in sentence before it, an instruction
  after it);
- edited, one rule at a time (EDITS below): one or two words substituted with a common word,
  one or two dropped, two inserted, the two halves swapped at the clause boundary nearest the
  middle, numbers 0-99 written as words (or number words as digits), upper case with punctuation
  removed, and one substitution plus one insertion. A rule that cannot apply (no number, no
  clause boundary) leaves that item out of its row.

Clean QA comes from sources that are in no benchmark: the 612 human questions of XQuAD
(../shared/data/qa_gold), questions the LLM-free generator writes from ../shared/data/text and
the English pages of ../shared/data/web (what `make demo` publishes), and
bench/data/decontam_generic_clean.jsonl, questions written for this benchmark in the phrasing
benchmarks use ("Which of the following ...", "What is the name of the ...", word problems).

"before" is today's check (word 13-grams, `check_qa`); "after" is `DecontamIndex.find` with the
default config. Throughput is QA rows per second on one core over the clean set, the common case.

    .venv/bin/python bench/decontam_quality.py [--per-benchmark 120] [--scale 300000]
        [--show-misses embedded]
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import json
import pickle
import random
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

from webscale_rl.udfs.decontam.ngrams import (
    BenchmarkSpec,
    DecontamIndex,
    DecontamParams,
    benchmark_texts,
    build_ngram_index,
    check_qa,
    default_benchmarks,
    load_benchmark_items,
    normalize,
)

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
BENCH = SHARED / "benchmarks"
# The field of each benchmark that a generated question could copy.
QUESTION_FIELD = {
    "gsm8k": "question",
    "math500": "problem",
    "math": "problem",
    "aime24": "problem",
    "amc23": "problem",
    "mmlu_stem": "question",
    "mmlu_pro": "question",
    "humaneval": "prompt",
    "mbpp": "text",
    "bbh": "examples[].input",
}
LEADS = [
    "A student preparing for an exam asked the following.",
    "Consider this problem from a study guide:",
    "Here is a question a reader sent in about the article.",
    "Use the passage to answer.",
]
TAILS = ["Give a short answer.", "Explain your reasoning briefly.", "Answer in one word.", ""]
SUBSTITUTES = "large small red city book student value total friend river house garden".split()
INSERTS = "really exactly also then now still only just".split()
NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split()
)
TENS_WORDS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


# ---------------------------------------------------------------- planted sets


def sample_items(per_benchmark: int, seed: int) -> list[tuple[str, str, str]]:
    """(benchmark, item_id, text) of the question field, up to `per_benchmark` each."""
    rng = random.Random(seed)
    out = []
    for spec in default_benchmarks():
        one = BenchmarkSpec(
            name=spec.name,
            path=spec.path,
            fields=[QUESTION_FIELD[spec.name]],
            id_field=spec.id_field,
        )
        items = [(i, t) for i, t in load_benchmark_items(one, BENCH) if t.strip()]
        rng.shuffle(items)
        out += [(spec.name, i, t) for i, t in items[:per_benchmark]]
    return out


def number_to_words(n: int) -> str:
    if n < 20:
        return NUMBER_WORDS[n]
    tens, unit = divmod(n, 10)
    return TENS_WORDS[tens - 2] + (f"-{NUMBER_WORDS[unit]}" if unit else "")


def swap_numbers(text: str) -> str | None:
    """Numbers 0-99 standing as words of prose ("3 apples", "costs 5.") as words, else number
    words as digits; numbers inside formulas ("$x=2$", "3.5") stay."""
    standalone = r"(?<!\S)(\d{1,2})(?=\s|$|[.,;:?!](?:\s|$))"
    digits = re.sub(standalone, lambda m: number_to_words(int(m[1])), text)
    if digits != text:
        return digits
    words = {w: i for i, w in enumerate(NUMBER_WORDS)}
    pattern = re.compile(r"\b(" + "|".join(NUMBER_WORDS[1:]) + r")\b", re.IGNORECASE)
    swapped = pattern.sub(lambda m: str(words[m[1].lower()]), text)
    return swapped if swapped != text else None


def reorder(text: str) -> str | None:
    """Swap the two parts at the clause boundary (. ; ,) nearest the middle."""
    cuts = [m.end() for m in re.finditer(r"[.;,?]\s+", text)]
    if not cuts:
        return None
    cut = min(cuts, key=lambda c: abs(c - len(text) / 2))
    return f"{text[cut:].strip()} {text[:cut].strip()}"


def _positions(rng: random.Random, words: list[str], k: int) -> list[int]:
    return sorted(rng.sample(range(len(words)), k))


def substitute(rng, text, k):
    words = text.split()
    if len(words) < k + 2:
        return None
    for i in _positions(rng, words, k):
        words[i] = rng.choice(SUBSTITUTES)
    return " ".join(words)


def drop(rng, text, k):
    words = text.split()
    if len(words) < k + 3:
        return None
    gone = set(_positions(rng, words, k))
    return " ".join(w for i, w in enumerate(words) if i not in gone)


def insert(rng, text, k):
    words = text.split()
    for _ in range(k):
        words.insert(rng.randrange(len(words) + 1), rng.choice(INSERTS))
    return " ".join(words)


EDITS = {
    "substitute 1 word": lambda rng, t: substitute(rng, t, 1),
    "substitute 2 words": lambda rng, t: substitute(rng, t, 2),
    "drop 1 word": lambda rng, t: drop(rng, t, 1),
    "drop 2 words": lambda rng, t: drop(rng, t, 2),
    "insert 2 words": lambda rng, t: insert(rng, t, 2),
    "reorder clauses": lambda rng, t: reorder(t),
    "digits <-> number words": lambda rng, t: swap_numbers(t),
    "upper case, no punctuation": lambda rng, t: re.sub(r"[^\w\s]", "", t).upper(),
    "substitute 1 + insert 1": lambda rng, t: insert(rng, substitute(rng, t, 1) or t, 1),
}


def planted(items, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for bench, item_id, text in items:
        base = {"benchmark": bench, "item_id": item_id, "short": len(normalize(text)) < 13}
        rows.append({**base, "kind": "verbatim", "rule": "", "question": text})
        embedded = f"{rng.choice(LEADS)} {text} {rng.choice(TAILS)}".strip()
        rows.append({**base, "kind": "embedded", "rule": "", "question": embedded})
        for rule, edit in EDITS.items():
            edited = edit(rng, text)
            if edited and normalize(edited) != normalize(text):
                rows.append({**base, "kind": "edited", "rule": rule, "question": edited})
    for row in rows:
        row["answer"] = "42"  # generated answers are short; the item's own answer is not copied
    return rows


# ---------------------------------------------------------------- clean QA


def clean_sets(max_per_doc: int = 8) -> dict[str, list[dict]]:
    return {
        "xquad (human)": xquad_questions(),
        "generated from text + web": generated_questions(max_per_doc),
        "generic phrasing": generic_questions(),
    }


def xquad_questions() -> list[dict]:
    squad = json.loads((SHARED / "qa_gold" / "xquad_en_half.json").read_text())
    return [
        {"question": qa["question"], "answer": qa["answers"][0]["text"]}
        for art in squad["data"]
        for para in art["paragraphs"]
        for qa in para["qas"]
    ]


def generic_questions() -> list[dict]:
    with (HERE / "data" / "decontam_generic_clean.jsonl").open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def generated_questions(max_per_doc: int = 8) -> list[dict]:
    """What the LLM-free generator asks about the English documents of ../shared/data."""
    import py3langid

    from webscale_rl.udfs.llm.engine_rules import RuleEngineParams, qa_candidates

    docs = []
    for name in (
        "cc_en_head-0091.jsonl.gz",
        "cc_en_head-0174.jsonl.gz",
        "dolma-documents-000.json.gz",
    ):
        with gzip.open(SHARED / "text" / name, "rt", encoding="utf-8") as fh:
            docs += [json.loads(line)["text"] for line in fh if line.strip()]
    wiki = bz2.open(SHARED / "text" / "enwiki-excerpt.xml.bz2", "rt", encoding="utf-8").read()
    for body in re.findall(r"<text[^>]*>(.*?)</text>", wiki, re.S):
        if not body.lstrip().upper().startswith("#REDIRECT"):
            docs.append(_strip_wiki(body))
    docs += [p for p in _web_pages() if py3langid.classify(p)[0] == "en"]
    params = RuleEngineParams()
    return [
        {"question": c["question"], "answer": c["answer"]}
        for doc in docs
        for c in qa_candidates(doc, params)[:max_per_doc]
    ]


def _strip_wiki(body: str) -> str:
    import html

    text = html.unescape(body)
    text = re.sub(r"\{\{[^{}]*\}\}", " ", text)
    text = re.sub(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]", r"\1", text)
    text = re.sub(r"<ref[^>]*>.*?</ref>|<[^>]+>|'{2,}|={2,}", " ", text, flags=re.S)
    return text


def _web_pages() -> list[str]:
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    with open(SHARED / "web" / "web_pages.warc.wet.gz", "rb") as stream:
        return [
            r.reader.read().decode("utf-8", "replace")
            for r in ArchiveIterator(stream, record_types=WarcRecordType.conversion)
        ]


# ---------------------------------------------------------------- scoring


def rates(rows, decide) -> dict[str, tuple[int, int]]:
    """(removed, total) per group key of each row."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for key, row in rows:
        out[key][0] += decide(row) is not None
        out[key][1] += 1
    return {k: (a, b) for k, (a, b) in out.items()}


def pct(pair: tuple[int, int]) -> str:
    removed, total = pair
    return f"{100 * removed / total:.1f}% ({removed}/{total})" if total else "-"


def throughput(rows, decide, seconds: float = 4.0) -> float:
    done, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        for row in rows:
            decide(row)
        done += len(rows)
    return done / (time.process_time() - start)


def scaled_index(items, target: int, params: DecontamParams, seed: int):
    """`target` benchmark texts: the real ones plus copies with 30% of words swapped for words
    of other items, so word frequencies stay realistic while every text is new."""
    rng = random.Random(seed)
    vocab = [w for _, _, t, _ in items for w in t.split()]
    grown = list(items)
    while len(grown) < target:
        name, item_id, text, _ = items[rng.randrange(len(items))]
        words = [rng.choice(vocab) if rng.random() < 0.3 else w for w in text.split()]
        grown.append((f"synthetic_{name}", f"{item_id}#{len(grown)}", " ".join(words), True))
    start = time.process_time()
    index = DecontamIndex(grown, params)
    return index, time.process_time() - start


def show_misses(rows, kind: str, decide) -> None:
    """The planted rows of one kind that are kept, with the item they came from."""
    missed = [r for r in rows if r["kind"] == kind and decide(r) is None]
    print(f"\n{kind} rows kept: {len(missed)}")
    for r in missed:
        print(f"  {r['benchmark']} {r['item_id']} [{r['rule'] or kind}]: {r['question'][:160]!r}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--per-benchmark", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=int, default=0, help="also time an index of N texts")
    ap.add_argument(
        "--show-misses",
        metavar="KIND",
        choices=["verbatim", "embedded", "edited"],
        help="print the planted rows of KIND that the default checks keep",
    )
    args = ap.parse_args(argv)

    params = DecontamParams()
    t0 = time.process_time()
    old_index = build_ngram_index(params.benchmarks, params.n, BENCH)
    t1 = time.process_time()
    new_index = DecontamIndex.build(params.benchmarks, params, BENCH)
    t2 = time.process_time()
    before = lambda qa: check_qa(qa, old_index, params.n, params.check_fields)  # noqa: E731
    after = new_index.find

    rows = planted(sample_items(args.per_benchmark, args.seed), args.seed)
    clean = clean_sets()
    print(
        f"index build: 13-gram {t1 - t0:.1f} CPU-s, all checks {t2 - t1:.1f} CPU-s; "
        f"pickled {len(pickle.dumps(old_index)) / 1e6:.1f} MB vs "
        f"{len(pickle.dumps(new_index)) / 1e6:.1f} MB; {new_index.metrics()}"
    )

    print("\n| planted kind | items | removed before | removed after |\n|---|---|---|---|")
    groups = [(r["kind"], r) for r in rows]
    groups += [(f"{r['kind']}, short item (< 13 words)", r) for r in rows if r["short"]]
    groups += [(f"edited: {r['rule']}", r) for r in rows if r["kind"] == "edited"]
    b, a = rates(groups, before), rates(groups, after)
    for key in a:
        print(f"| {key} | {a[key][1]} | {pct(b[key])} | {pct(a[key])} |")

    print("\n| benchmark | embedded before | embedded after | edited before | edited after |")
    print("|---|---|---|---|---|")
    per = [(f"{r['benchmark']}/{r['kind']}", r) for r in rows if r["kind"] != "verbatim"]
    b, a = rates(per, before), rates(per, after)
    for spec in params.benchmarks:
        e, d = f"{spec.name}/embedded", f"{spec.name}/edited"
        print(f"| {spec.name} | {pct(b[e])} | {pct(a[e])} | {pct(b[d])} | {pct(a[d])} |")

    other = defaultdict(int)
    for r in rows:
        if (m := after(r)) is not None and m.benchmark != r["benchmark"]:
            other[f"{r['benchmark']} -> {m.benchmark}"] += 1
    # MATH-500 is drawn from MATH and MMLU-Pro holds MMLU questions: those name either.
    print(f"\nremovals naming another benchmark than the planted one: {dict(other)}")
    methods = defaultdict(int)
    for r in rows:
        if (m := after(r)) is not None:
            methods[m.method] += 1
    print(f"planted removals by method: {dict(methods)}")
    if args.show_misses:
        show_misses(rows, args.show_misses, after)

    print("\n| clean set | QA pairs | removed before | removed after |\n|---|---|---|---|")
    all_clean = [(name, qa) for name, qas in clean.items() for qa in qas]
    all_clean += [("all clean", qa) for _, qa in all_clean]
    b, a = rates(all_clean, before), rates(all_clean, after)
    for key in a:
        print(f"| {key} | {a[key][1]} | {pct(b[key])} | {pct(a[key])} |")
    for name, qa in all_clean:
        if name != "all clean" and (m := after(qa)) is not None:
            print(f"  removed clean ({name}): {qa['question'][:100]!r} -> {tuple(m)[:5]}")

    sample = [qa for _, qa in all_clean if _ != "all clean"]
    old_rate, new_rate = throughput(sample, before), throughput(sample, after)
    print(
        f"\nthroughput, clean QA rows/s/core: 13-gram {old_rate:,.0f}, all checks {new_rate:,.0f}"
        f" ({new_rate / old_rate:.2f}x)"
    )
    if args.scale:
        items = [
            (s.name, i, t, whole)
            for s in params.benchmarks
            for i, t, whole in benchmark_texts(s, BENCH)
        ]
        index, build = scaled_index(items, args.scale, params, args.seed)
        size = len(pickle.dumps(index)) / 1e6
        rate = throughput(sample, index.find)
        print(
            f"scaled index: {args.scale:,} benchmark texts, built in {build:.0f} CPU-s, "
            f"pickled {size:.0f} MB, {rate:,.0f} clean QA rows/s/core"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
