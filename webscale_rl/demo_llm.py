"""`make demo-llm`: the whole pipeline with a real (small) model in the loop.

Starts the local model server (llama.cpp with the bundled SmolLM2-135M, see `local_model`),
runs every stage on a few pages with the LLM stages pointed at it, prints the funnel, and stops
the server. Pairings (`--pairing`):

- `checker` (default): the rule engine annotates and generates, the model checks every pair
  (`llm_stages.verify.llm.*`). A 135M model is a usable checker but a weak generator.
- `all`: the model filters, labels, generates and checks; its answers are pinned to spans of
  the page (`tasks.answer_choices`), without which a 135M model mostly invents them, and each
  persona sees only the sentences around its span (`tasks.focus_fact`; bench/README.md "a
  small model" has the funnel).

Pages are cut to `--doc-chars` characters in prompts (and in the checks, which see the same
text): a small CPU server reads ~100-200 prompt tokens a second.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from webscale_rl.local_model import LocalModelServer, ServerSettings

PAIRINGS = {"checker": ("verify",), "all": ("annotate", "generate", "verify")}


def model_sets(base_url: str, model: str, stages) -> list[str]:
    """`--set` values pointing `stages` at the server (`llm.*` for every LLM stage)."""
    keys = {"engine": "openai", "base_url": base_url, "model": model, "api_key_env": ""}
    if set(stages) == set(PAIRINGS["all"]):
        return [f"llm.{k}={v}" for k, v in keys.items()]
    return [f"llm_stages.{s}.llm.{k}={v}" for s in stages for k, v in keys.items()]


def cut_input(source: str, docs: int, folder: Path) -> str:
    """The first `docs` lines of a JSON-lines input; other inputs are used whole."""
    if not source.endswith(".jsonl"):
        print(f"--docs applies to JSON-lines input only; using all of {source}")
        return source
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "demo_input.jsonl"
    with open(source, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()][:docs]
    out.write_text("".join(lines), encoding="utf-8")
    return str(out)


def main(argv: list[str] | None = None) -> int:
    from webscale_rl.cli import main as cli_main
    from webscale_rl.jobs.ingest import sample_corpus_path

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lakehouse", default="./lakehouse-llm", help="where the tables go")
    p.add_argument("--input", help="JSON-lines (cut to --docs) or any input (default: samples)")
    p.add_argument("--docs", type=int, default=12, help="pages to take from JSON-lines input")
    p.add_argument("--pairing", choices=sorted(PAIRINGS), default="checker")
    p.add_argument("--doc-chars", type=int, default=2000, help="page characters in prompts")
    p.add_argument("--set", action="append", default=[], help="extra config overrides")
    args = p.parse_args(argv)

    lakehouse = Path(args.lakehouse)
    corpus = cut_input(args.input or sample_corpus_path(), args.docs, lakehouse)
    benchmarks = Path(__file__).resolve().parent.parent.parent / "shared/data/benchmarks"
    settings = [
        f"tasks.max_doc_chars={args.doc_chars}",
        "llm_stages.tasks=2",
        *([] if benchmarks.exists() else ["decontam.on_missing=skip"]),
        *(["tasks.answer_choices=10", "tasks.focus_fact=true"] if args.pairing == "all" else []),
        *args.set,
    ]
    with LocalModelServer(ServerSettings(port=0)) as server:
        print(f"model server: {server.base_url} (log {server.log_path})")
        sets = model_sets(server.base_url, server.settings.model_name, PAIRINGS[args.pairing])
        argv_run = ["--lakehouse", str(lakehouse)]
        for s in [*settings, *sets]:
            argv_run += ["--set", s]
        code = cli_main([*argv_run, "run", "--input", corpus])
    print("model server stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
