"""Truncated replies with and without bounded JSON schemas, on a real small model.

SmolLM2-135M-Instruct (the bundled GGUF, served by llama.cpp through `webscale_rl.local_model`)
answers each of the four LLM tasks for the shipped sample pages twice: with the schemas as
`udfs/llm/schemas.task_schema` builds them (every string has a maxLength) and with those bounds
removed (the schemas as they were before: strings without maxLength; the personas list kept its
maxItems). Inputs for generate and verify come from the rule engine (domain, first persona, its
QA pair), so only the schema differs between the two runs. Prints, per task and variant, the
replies cut by max_tokens (`finish_reason=length`), the replies that parse into fields, and the
mean completion tokens.

    .venv/bin/python bench/llm_schema_bounds.py [--docs 16] [--doc-chars 2000]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from pathlib import Path

from webscale_rl.jobs.ingest import sample_corpus_path
from webscale_rl.local_model import LocalModelServer, ServerSettings
from webscale_rl.udfs.llm.engine_openai import OpenAIEngine
from webscale_rl.udfs.llm.engine_rules import RuleEngine
from webscale_rl.udfs.llm.tasks import TaskParams, build_request, extract_json, parse_response

TASKS = ("llm_filter", "identify", "generate", "verify")


def unbounded(schema: dict) -> dict:
    """The schema without string length caps (what `task_schema` sent before they were added)."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            node.pop("maxLength", None)
            if node.get("type") == "string" and "minLength" in node:
                node["minLength"] = 1
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def rows(n_docs: int) -> dict[str, list[dict]]:
    """Input rows per task: pages, and the rule engine's labels and pairs for the later tasks."""
    rules = RuleEngine()
    params = TaskParams()
    docs = [json.loads(line) for line in Path(sample_corpus_path()).read_text().splitlines()]
    docs = [{"doc_id": str(i), "text": d["text"]} for i, d in enumerate(docs) if d["text"].strip()]
    docs = docs[:n_docs]
    out = {"llm_filter": docs, "identify": docs, "generate": [], "verify": []}
    for doc in docs:
        [label] = rules.generate([build_request("identify", doc, params)])
        labels = extract_json(label.text)
        unit = doc | {"domain": labels["domain"], "persona": labels["personas"][0]}
        out["generate"].append(unit)
        [qa] = rules.generate([build_request("generate", unit, params)])
        pair = extract_json(qa.text or "") or {}
        if pair.get("question"):
            out["verify"].append(unit | pair)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--docs", type=int, default=16)
    p.add_argument("--doc-chars", type=int, default=2000)
    args = p.parse_args()
    params = TaskParams(max_doc_chars=args.doc_chars)
    inputs = rows(args.docs)
    print(f"{'task':<11}{'schema':<11}{'replies':>8}{'truncated':>10}{'parsed':>8}"
          f"{'compl. tok':>11}{'s':>7}")  # fmt: skip
    with LocalModelServer(ServerSettings(port=0)) as server:
        llm = server.llm_params()
        engine = OpenAIEngine(llm)
        for task in TASKS:
            for variant in ("unbounded", "bounded"):
                requests = []
                for row in inputs[task]:
                    request = build_request(task, row, params)
                    if variant == "unbounded":
                        request = dataclasses.replace(
                            request, json_schema=unbounded(request.json_schema)
                        )
                    requests.append(request)
                began = time.perf_counter()
                responses = engine.generate(requests)
                seconds = time.perf_counter() - began
                cut = sum(r.finish_reason == "length" for r in responses)
                parsed = sum(
                    parse_response(task, r, row, params).reject_reason
                    not in ("truncated", "malformed_json", "engine_error")
                    and not (parse_response(task, r, row, params).reject_reason or "").startswith(
                        "missing_field"
                    )
                    for r, row in zip(responses, inputs[task], strict=True)
                )
                tokens = sum(r.completion_tokens for r in responses) / max(1, len(responses))
                print(f"{task:<11}{variant:<11}{len(responses):>8}{cut:>10}{parsed:>8}"
                      f"{tokens:>11.1f}{seconds:>7.0f}", flush=True)  # fmt: skip
        engine.close()


if __name__ == "__main__":
    main()
