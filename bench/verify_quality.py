"""The verify stage as a classifier, on XQuAD (English half): does it keep correct pairs and reject
wrong ones?

For each sampled question of `../shared/data/qa_gold/xquad_en_half.json`: the pair (question,
gold answer) should be kept; the same question with the gold answer of another question of the
same paragraph should be rejected (a grounded but wrong answer: the hard case, since every
grounding check passes). The whole verify stage runs on both (`udfs/llm/stage.transform_batch` with
verify's spec: the deterministic checks, then the checker), with the rule engine (`rules`) or
SmolLM2-135M-Instruct on the local llama.cpp server (`model`). Prints kept-correct (recall),
rejected-wrong (specificity), accuracy, and reject reasons.

    .venv/bin/python bench/verify_quality.py --checker rules --pairs 200
    .venv/bin/python bench/verify_quality.py --checker model --pairs 60
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from pathlib import Path

import pandas as pd

from webscale_rl.jobs import verify
from webscale_rl.udfs.llm.engine import LLMParams
from webscale_rl.udfs.llm.stage import BatchContext, transform_batch
from webscale_rl.udfs.llm.tasks import TaskParams

GOLD = Path(__file__).resolve().parents[2] / "shared/data/qa_gold/xquad_en_half.json"


def answer_type(answer: str) -> str:
    """The type the generator would have named (the checks test it)."""
    text = answer.strip()
    if re.fullmatch(r"(1[0-9]|20)\d{2}s?", text) or re.search(
        r"\b(January|February|March|April|May|June|July|August|September|October|November|"
        r"December)\b",
        text,
    ):
        return "date"
    if re.fullmatch(r"[$€£]?\s?\d[\d,.]*\s?%?(\s\w+){0,2}", text):
        return "number"
    if text[:1].isupper() and len(text.split()) <= 6:
        return "name"
    return "phrase"


def pairs(n: int, seed: int = 0) -> pd.DataFrame:
    """n/2 correct and n/2 wrong pairs from distinct questions, paragraphs spread over the set."""
    data = json.loads(GOLD.read_text(encoding="utf-8"))["data"]
    rows = []
    for a, article in enumerate(data):
        for p, para in enumerate(article["paragraphs"]):
            qas = [q for q in para["qas"] if q["answers"]]
            for i, qa in enumerate(qas):
                gold = qa["answers"][0]["text"]
                others = [o["answers"][0]["text"] for o in qas if o["answers"][0]["text"] != gold]
                if others:
                    rows.append((f"{a}-{p}", para["context"], qa["question"], gold, others, i))
    rng = random.Random(seed)
    rng.shuffle(rows)
    out = []
    for k, (doc_id, context, question, gold, others, i) in enumerate(rows[: n // 2]):
        for label, answer in ((True, gold), (False, rng.choice(others))):
            out.append(
                {
                    "qa_id": f"{doc_id}-{i}-{int(label)}",
                    "doc_id": doc_id,
                    "persona_idx": k,
                    "question": question,
                    "answer": answer,
                    "answer_type": answer_type(answer),
                    "text": context,
                    "label": label,
                }
            )
    return pd.DataFrame(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checker", choices=("rules", "model"), default="rules")
    p.add_argument("--pairs", type=int, default=200, help="pairs (half correct, half wrong)")
    args = p.parse_args()
    frame = pairs(args.pairs)

    def run(llm: LLMParams):
        meter = type("M", (), {"add": lambda self, m: None})()
        ctx = BatchContext(verify.SPEC, llm, TaskParams(), "bench", meter)
        return pd.concat(
            transform_batch(frame.iloc[i : i + 8], ctx) for i in range(0, len(frame), 8)
        )

    if args.checker == "model":
        from webscale_rl.local_model import LocalModelServer, ServerSettings

        with LocalModelServer(ServerSettings(port=0)) as server:
            out = run(server.llm_params())
    else:
        out = run(LLMParams())
    kept = out.set_index("qa_id")["_reject_reason"].isna()
    frame = frame.assign(kept=frame["qa_id"].map(kept))
    reasons = out.set_index("qa_id")["_reject_reason"]
    good, bad = frame[frame["label"]], frame[~frame["label"]]
    recall, specificity = good["kept"].mean(), 1 - bad["kept"].mean()
    accuracy = (frame["kept"] == frame["label"]).mean()
    print(f"checker={args.checker} pairs={len(frame)} ({len(good)} correct, {len(bad)} wrong)")
    print(f"kept correct {recall:.1%}  rejected wrong {specificity:.1%}  accuracy {accuracy:.1%}")
    for name, part in (("correct", good), ("wrong", bad)):
        counts = Counter(reasons[part["qa_id"]].dropna())
        print(f"  reject reasons of {name} pairs: {dict(counts.most_common())}")


if __name__ == "__main__":
    main()
