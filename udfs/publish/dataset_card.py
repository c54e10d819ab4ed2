"""The published dataset's card (README.md), its export layout, and the publish/export settings.

Pure Python: the publish job computes the aggregates with Spark and `render_card` turns them
into markdown with a Hugging Face YAML header, so `datasets.load_dataset(<export dir>)` finds
the Parquet files and the card renders on the Hub as is.

Export layout under one version's folder (`<lakehouse>/exports/qa/v<N>/`):

    README.md
    hf/{split}-00000-of-0000K.parquet      all QA columns + split (datasets "parquet")
    hf_jsonl/{split}-00000-of-0000K.jsonl  the same rows as JSON lines
    verl/{split}-...parquet                verl RL rows (score with webscale_rl.reward)
    trl/{split}-...parquet                 TRL GRPOTrainer rows

File names follow the Hub's shard convention, so splits are recognised from the names. A shard
holding no rows of a split is not written: `datasets` cannot read an empty file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml
from pydantic import BaseModel, ConfigDict, Field

from webscale_rl.udfs.publish.export_formats import SPLITS, ExportParams

# The shared demo corpus (../shared/data/README.md) and what the pipeline adds to it.
DEFAULT_LICENCE_NOTES = [
    "The text of the source web pages remains its authors'; each QA pair links to its page "
    "(`url`, `doc_id`). Check the terms of the pages you publish from.",
    "QA pairs are written by the model named in `model`; its licence and terms of use apply "
    "to generated text.",
    "Demo corpus: HTML pages from adbar/trafilatura test data (Apache-2.0) and "
    "scrapinghub/article-extraction-benchmark (MIT); Common Crawl samples from "
    "chatnoir-resiliparse, whirlwind-python, dolma and warcio tests (Apache-2.0), cc_net (MIT). "
    "They are test input, not a dataset to redistribute.",
    "Packaged sample corpus (`resources/sample_corpus`): original prose written for webscale-rl, "
    "Apache-2.0 like the project.",
]

# Export folder -> (converter format, file extension).
EXPORT_DIRS = {
    "hf": ("hf", "parquet"),
    "hf_jsonl": ("hf", "jsonl"),
    "verl": ("verl", "parquet"),
    "trl": ("trl", "parquet"),
}
# Hub config name of each export folder; "default" is what load_dataset(<dir>) returns.
CONFIG_NAMES = {"hf": "default", "hf_jsonl": "jsonl", "verl": "verl", "trl": "trl"}
TOP_SOURCES = 20


class PublishParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_domain_share: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="Cap on any domain's share of the published table (None = off). Rows over "
        "the cap are dropped in hash order and go to `rejects` as `domain_cap`.",
    )
    exports: bool = Field(
        True, description="After publishing, write the trainer exports and the dataset card."
    )
    exports_dir: str | None = Field(
        None, description="Folder or URI for exports; default `<lakehouse>/exports/qa`."
    )
    title: str = Field("Webscale-RL QA", description="Dataset name in the card.")
    licence_notes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LICENCE_NOTES),
        description="Licence paragraphs of the dataset card.",
    )


class ExportSettings(ExportParams):
    """Trainer formats (see udfs/publish/export_formats.py) plus how the files are cut."""

    rows_per_file: int = Field(
        500_000,
        ge=1,
        description="Rows per export file; a larger table is written as several shards, "
        "one Spark task each, without collecting it to the driver.",
    )
    jsonl: bool = Field(True, description="Also write the hf format as JSON lines.")


def export_dirs(formats: list[str], jsonl: bool) -> dict[str, tuple[str, str]]:
    """The export folders to write for these formats, in a fixed order."""
    return {
        d: spec
        for d, spec in EXPORT_DIRS.items()
        if spec[0] in formats and (d != "hf_jsonl" or jsonl)
    }


def shard_name(split: str, part: int, n_parts: int, ext: str) -> str:
    if not 0 <= part < n_parts:
        raise ValueError(f"part {part} is outside 0..{n_parts - 1}")
    return f"{split}-{part:05d}-of-{n_parts:05d}.{ext}"


@dataclass
class CardFacts:
    """Everything the card says, as plain values (computed by the publish job)."""

    title: str
    table: str  # table ref of the published table
    version: int
    run_id: str  # the run that published this version (commit userMetadata)
    published_at: str
    pipeline_version: str
    rows: int
    domains: dict[str | None, int]
    answer_types: dict[str | None, int]
    sources: dict[str | None, int]
    models: dict[str | None, int]
    prompt_versions: dict[str | None, int]
    split_rows: dict[str, int]  # split -> rows
    funnel: dict[str, int | None]  # stage table -> rows, in pipeline order (None: absent)
    rejects: dict[str, dict[str, int]]  # stage -> reason -> rows
    export_files: dict[str, list[str]]  # export folder -> file paths relative to the card
    template: str = "boxed"
    data_source: str = "webscale_rl"
    skipped_stages: list[str] = field(default_factory=list)  # `--allow-skip`, from the commit
    licence_notes: list[str] = field(default_factory=lambda: list(DEFAULT_LICENCE_NOTES))


def md_cell(value: object) -> str:
    """Text safe inside a markdown table cell (model output may hold '|' or newlines)."""
    if value is None:
        return "(none)"
    text = " ".join(str(value).split())
    return text.replace("\\", "\\\\").replace("|", "\\|") or "(empty)"


def count_table(title: str, counts: dict, total: int, limit: int | None = None) -> str:
    """A markdown table of value -> rows and share, largest first (ties by name)."""
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    shown = ordered if limit is None else ordered[:limit]
    lines = [f"| {title} | rows | share |", "|---|---:|---:|"]
    for value, n in shown:
        lines.append(f"| {md_cell(value)} | {n} | {_share(n, total)} |")
    rest = ordered[len(shown) :]
    if rest:
        n = sum(v for _, v in rest)
        lines.append(f"| ({len(rest)} more) | {n} | {_share(n, total)} |")
    return "\n".join(lines)


def _share(n: int, total: int) -> str:
    return f"{100.0 * n / total:.1f}%" if total else "-"


def size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if rows < limit:
            return name
    return "100K<n<1M" if rows < 1_000_000 else "n>1M"


def front_matter(facts: CardFacts) -> str:
    """The Hub's YAML header: licence, size and one config per export folder."""
    configs = []
    for folder, files in facts.export_files.items():
        ext = EXPORT_DIRS[folder][1]
        data_files = [
            {"split": split, "path": f"{folder}/{split}-*.{ext}"}
            for split in SPLITS
            if any(f.startswith(f"{folder}/{split}-") for f in files)
        ]
        if data_files:  # a folder with no rows has no files
            configs.append({"config_name": CONFIG_NAMES[folder], "data_files": data_files})
    if configs and not any(c["config_name"] == "default" for c in configs):
        configs[0]["default"] = True
    header = {
        "pretty_name": facts.title,
        "license": "other",
        "task_categories": ["question-answering", "text-generation"],
        "tags": ["reinforcement-learning", "verifiable-rewards", "webscale-rl"],
        "size_categories": [size_category(facts.rows)],
        "configs": configs,
    }
    return "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n"


def usage(facts: CardFacts) -> str:
    lines = ["```python", "from datasets import load_dataset", ""]
    if "hf" in facts.export_files:
        lines.append('ds = load_dataset("path/to/this/folder")  # train + validation')
    for folder in ("verl", "trl"):
        if folder in facts.export_files:
            lines.append(
                f'{folder} = load_dataset("path/to/this/folder", "{CONFIG_NAMES[folder]}")'
            )
    lines.append("```")
    if "verl" in facts.export_files:
        train = [f for f in facts.export_files["verl"] if f.startswith("verl/train-")]
        val = [f for f in facts.export_files["verl"] if f.startswith("verl/validation-")]
        lines += [
            "",
            "verl (the reward is rule-based, `webscale_rl/reward.py`):",
            "",
            "```bash",
            f'data.train_files="{train}" data.val_files="{val}" \\',
            "custom_reward_function.path=webscale_rl/reward.py "
            "custom_reward_function.name=compute_score",
            "```",
        ]
    if "trl" in facts.export_files:
        lines += [
            "",
            "TRL: `GRPOTrainer(reward_funcs=webscale_rl.reward.trl_reward, train_dataset=trl['train'])`"
            " - the `ground_truth` and `answer_type` columns reach the reward as arguments.",
        ]
    return "\n".join(lines)


def funnel_table(facts: CardFacts) -> str:
    lines = ["| table | rows |", "|---|---:|"]
    for table, n in facts.funnel.items():
        lines.append(f"| {md_cell(table)} | {'-' if n is None else n} |")
    return "\n".join(lines)


def rejects_table(rejects: dict[str, dict[str, int]]) -> str:
    if not rejects:
        return "No rows were rejected."
    lines = ["| stage | reason | rows |", "|---|---|---:|"]
    for stage in sorted(rejects):
        for reason, n in sorted(rejects[stage].items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"| {md_cell(stage)} | {md_cell(reason)} | {n} |")
    return "\n".join(lines)


# What a reader of the card must know about data from which a stage was skipped.
SKIPPED_MEANING = {
    "filter": "the source pages were not filtered for language or quality",
    "dedup": "near-duplicate source pages were not removed",
    "qa_dedup": "near-duplicate questions were not removed",
    "decontaminate": "the pairs were NOT checked for overlap with evaluation benchmarks "
    "(GSM8K, MATH, MMLU, ...): some may be benchmark questions",
}


def skipped_section(skipped: list[str]) -> str:
    """How skipping works and which stages this data skipped (run with `--allow-skip`)."""
    if not skipped:
        return (
            "Every pipeline stage ran on this data: none was skipped. (A stage is skipped only "
            "when the run names it with `--allow-skip`, and the card then says so here.)"
        )
    lines = [
        f"**Skipped stages: {', '.join(skipped)}.** The run named them with `--allow-skip`: "
        "they did not run, and the stage after each read its input instead.",
        "",
    ]
    lines += [f"- {s}: {SKIPPED_MEANING.get(s, 'did not run')}" for s in skipped]
    return "\n".join(lines)


FIELDS = """| column | meaning |
|---|---|
| qa_id | stable id of the QA pair |
| question, answer | the question and its short, verifiable answer |
| answer_type | number, date, name, phrase or expression: how the reward compares answers |
| domain, persona | the source page's domain and the persona the question was written for |
| doc_id, url, source | the source page, its URL and the input file or table it came from |
| model, prompt_version | the generating model and prompt version |
| run_id, created_at | the pipeline run that generated the pair, and when |
| split | train or validation (a stable hash of qa_id) |"""


def render_card(facts: CardFacts) -> str:
    """The dataset card as markdown (with the Hub's YAML header)."""
    answer_forms = {
        "boxed": "the final answer in `\\boxed{}`",
        "answer_line": "a final line `Answer: <answer>`",
    }
    splits = ", ".join(f"{s} {facts.split_rows.get(s, 0)}" for s in SPLITS)
    parts = [
        front_matter(facts),
        f"# {facts.title}",
        "",
        f"{facts.rows} verifiable question-answer pairs generated from web pages by the "
        "Webscale-RL pipeline (Cen et al. 2025, arXiv 2510.06499), for reinforcement learning "
        f"with rule-based rewards. Splits: {splits}.",
        "",
        f"- table: `{facts.table}` version {facts.version}, published {facts.published_at}",
        f"- publishing run: `{facts.run_id}`",
        f"- pipeline version: webscale-rl {facts.pipeline_version}",
        f"- skipped stages: {', '.join(facts.skipped_stages) or 'none'}",
        f"- prompts ask for {answer_forms.get(facts.template, facts.template)}; "
        f"verl data_source `{facts.data_source}`",
        "",
        "## Use",
        "",
        usage(facts),
        "",
        "## Contents",
        "",
        count_table("domain", facts.domains, facts.rows),
        "",
        count_table("answer type", facts.answer_types, facts.rows),
        "",
        count_table("source", facts.sources, facts.rows, limit=TOP_SOURCES),
        "",
        count_table("model", facts.models, facts.rows),
        "",
        count_table("prompt version", facts.prompt_versions, facts.rows),
        "",
        "## Fields",
        "",
        FIELDS,
        "",
        "## How it was made",
        "",
        skipped_section(facts.skipped_stages),
        "",
        "Rows in each pipeline table when this version was published, from web documents to "
        "published QA pairs:",
        "",
        funnel_table(facts),
        "",
        "Rejected rows by stage and reason (every input row of a stage is kept or rejected):",
        "",
        rejects_table(facts.rejects),
        "",
        "## Licence",
        "",
        *[f"- {note}" for note in facts.licence_notes],
        "",
    ]
    return "\n".join(parts)
