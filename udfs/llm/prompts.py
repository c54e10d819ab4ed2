"""Prompt templates and demonstrations: load, version, fill, and keep the document in its box.

Templates live in `webscale_rl/resources/prompts/<task>.v<N>.md`, split into a system and a user
part by the lines `=== system ===` and `=== user ===`, with `{{name}}` placeholders. Filling is a
single regex pass, so a document that contains `{{persona}}` is never expanded a second time.

Web text is untrusted: `neutralize` rewrites anything inside it that could pass for one of our
delimiter tags (`</document>`, `<persona>`, ...) or for a chat-template control token
(`<|im_start|>`, `<s>`), so a page cannot close its own box or open a fake system turn.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from importlib.resources import files

from webscale_rl.udfs.llm.interface import TASKS

# The template each task uses now; earlier versions stay beside it, and every row records the
# hash of the one it was made with (`prompt_version`).
TEMPLATE_FILES = {
    "llm_filter": "llm_filter.v1.md",
    "identify": "identify.v1.md",
    "generate": "generate.v3.md",
    "verify": "verify.v2.md",
}
# Tags the templates use to box untrusted text; a document may not contain any of them.
DELIMITER_TAGS = ("document", "persona", "question", "answer", "example", "excerpt")

_SECTION = re.compile(r"^=== (system|user|focus) ===\s*$", re.MULTILINE)
_COMMENT = re.compile(r"<!--.*?-->\s*", re.DOTALL)
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def resource_dir(area: str):
    """`webscale_rl/resources/<area>` as a Traversable (works from a zipped wheel too)."""
    return files("webscale_rl") / "resources" / area


@cache
def template_text(task: str) -> str:
    if task not in TEMPLATE_FILES:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    return (resource_dir("prompts") / TEMPLATE_FILES[task]).read_text(encoding="utf-8")


@cache
def _sections(task: str) -> dict[str, str]:
    parts = _SECTION.split(_COMMENT.sub("", template_text(task)))
    # split gives ['', 'system', body, 'user', body, ...]
    sections = {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    if not {"system", "user"} <= set(sections):
        raise ValueError(f"template {TEMPLATE_FILES[task]} needs a system and a user section")
    return sections


def load_template(task: str) -> tuple[str, str]:
    """(system, user) template strings of `task`, comments stripped."""
    sections = _sections(task)
    return sections["system"], sections["user"]


def load_focus_template(task: str) -> str | None:
    """The user turn for a small model shown one fact (generate's `focus` section), if any."""
    return _sections(task).get("focus")


@cache
def prompt_version(task: str) -> str:
    """`<task>-<sha256[:10]>` of the template text.

    For `generate` the demonstration library is hashed in too: it is part of the prompt, and a
    changed demo must not let a journal reuse answers produced under the old one.
    """
    digest = hashlib.sha256(template_text(task).encode("utf-8"))
    if task == "generate":
        for name, text in _all_demo_texts():
            digest.update(name.encode("utf-8") + b"\0" + text.encode("utf-8"))
    return f"{task}-{digest.hexdigest()[:10]}"


def fill(template: str, values: dict[str, str]) -> str:
    """Replace every `{{name}}` in one pass; a missing value is an error, not an empty string."""
    missing = sorted(set(_PLACEHOLDER.findall(template)) - set(values))
    if missing:
        raise KeyError(f"no value for placeholder(s) {missing}")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def build_messages(task: str, values: dict[str, str]) -> list[dict]:
    system, user = load_template(task)
    return [
        {"role": "system", "content": fill(system, values)},
        {"role": "user", "content": fill(user, values)},
    ]


def build_focus_messages(task: str, values: dict[str, str], demos: list[dict]) -> list[dict]:
    """System, then one user/assistant pair per demonstration, then this row's user turn, all
    from the focus section. A small model answers the last turn in the shape of the earlier
    replies, instead of copying a demonstration that sits inside its own prompt."""
    system, _ = load_template(task)
    focus = load_focus_template(task)
    if focus is None:
        raise ValueError(f"template {TEMPLATE_FILES[task]} has no focus section")
    messages = [{"role": "system", "content": fill(system, values)}]
    for demo in demos:
        shown = {
            "document": neutralize(demo["source_excerpt"]),
            "persona": neutralize(demo["persona"]),
            "answer": json.dumps(demo["answer"], ensure_ascii=False),
        }
        # The reply's key order is the schema's: the answer first, then the question.
        reply = {k: demo[k] for k in ("answer", "answer_type", "question")}
        messages.append({"role": "user", "content": fill(focus, shown)})
        messages.append({"role": "assistant", "content": json.dumps(reply, ensure_ascii=False)})
    messages.append({"role": "user", "content": fill(focus, values)})
    return messages


# --- keeping untrusted text inside its box ---------------------------------------------------

_LT, _GT = "[<\uff1c\ufe64\u2329\u27e8]", "[>\uff1e\ufe65\u232a\u27e9]"
_OUR_TAG = re.compile(
    _LT + r"\s*(/?)\s*(" + "|".join(DELIMITER_TAGS) + r")\b[^<>\n]{0,200}?" + _GT,
    re.IGNORECASE,
)
# Chat-template control tokens (ChatML, Llama 3, ...) that a tokenizer may read as special.
_CONTROL_TOKEN = re.compile(r"<\|\s*([\w.\-]{0,40})\s*\|>")
_BOS_EOS = re.compile(r"<(/?)s>|<</?SYS>>")


def neutralize(text: str) -> str:
    """Rewrite look-alikes of our delimiters and of chat control tokens as inert `[...]` text."""
    text = _OUR_TAG.sub(lambda m: f"[{m.group(1)}{m.group(2).lower()}]", text or "")
    text = _CONTROL_TOKEN.sub(lambda m: f"[{m.group(1)}]", text)
    return _BOS_EOS.sub(lambda m: "[" + m.group(0).strip("<>") + "]", text)


def truncate_document(text: str, max_chars: int) -> str:
    """At most `max_chars` characters, cut at a whitespace so no word is split."""
    text = (text or "").strip()
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    return cut[:space] if space > max_chars // 2 else cut


# --- demonstrations ------------------------------------------------------------------------

DEMO_FIELDS = ("source_excerpt", "persona", "question", "answer", "answer_type")


def domain_slug(domain: str) -> str:
    """'Technology & Engineering' -> 'technology_engineering' (the demo file's stem)."""
    return "_".join(re.findall(r"[a-z0-9]+", domain.lower()))


def _all_demo_texts() -> list[tuple[str, str]]:
    demo_dir = resource_dir("demos")
    entries = sorted(
        (e for e in demo_dir.iterdir() if e.name.endswith(".jsonl")), key=lambda e: e.name
    )
    return [(e.name, e.read_text(encoding="utf-8")) for e in entries]


@cache
def load_demos(domain: str) -> tuple[dict, ...]:
    """The domain's demonstrations in file order; () when the domain has no library."""
    path = resource_dir("demos") / f"{domain_slug(domain)}.jsonl"
    if not path.is_file():
        return ()
    demos = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        demo = json.loads(line)
        missing = [f for f in DEMO_FIELDS if not isinstance(demo.get(f), str) or not demo[f]]
        if missing:
            raise ValueError(f"demo {path.name}:{n} lacks {missing}")
        demos.append(demo)
    return tuple(demos)


def format_fewshot(demos: list[dict]) -> str:
    """Demonstrations as tagged blocks; their text is ours, but we neutralise it all the same."""
    if not demos:
        return "(no examples for this domain)"
    blocks = []
    for demo in demos:
        output = {k: demo[k] for k in ("question", "answer", "answer_type")}
        blocks.append(
            "<example>\n"
            f"<excerpt>{neutralize(demo['source_excerpt'])}</excerpt>\n"
            f"<persona>{neutralize(demo['persona'])}</persona>\n"
            f"Output: {json.dumps(output, ensure_ascii=False)}\n"
            "</example>"
        )
    return "\n".join(blocks)
