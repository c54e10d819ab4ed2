"""Turn the published QA table into rows RL trainers load directly.

Pure pandas: a job reads the QA Delta table (or a slice of it), calls `export_frames`, and writes
each (format, split) frame with `to_arrow` + pyarrow, one Parquet file per split.

Formats:
- `hf`:   plain columns, loadable with `datasets.load_dataset("parquet" | "json", ...)`.
- `verl`: verl's RL dataset layout: data_source, prompt (chat messages), ability,
          reward_model {style, ground_truth}, extra_info {split, index, ...}; score it with
          `webscale_rl.reward.compute_score` as verl's custom_reward_function.
- `trl`:  GRPOTrainer layout: prompt (chat messages) plus the columns `trl_reward` reads
          (ground_truth, answer_type) as keyword arguments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Literal

import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

QA_COLUMNS = (
    "qa_id",
    "question",
    "answer",
    "answer_type",
    "domain",
    "persona",
    "doc_id",
    "url",
    "source",
    "model",
    "prompt_version",
    "run_id",
    "created_at",
)
SPLITS = ("train", "validation")
FORMATS = ("hf", "verl", "trl")

# The instruction appended to every question. `webscale_rl.reward.extract_answer` understands
# both forms: the last \boxed{...} and a final 'Answer: ...' line.
ANSWER_INSTRUCTIONS = {
    "boxed": "Think step by step, then put your final answer in \\boxed{}.",
    "answer_line": (
        "Think step by step, then end your response with a final line of the form "
        "'Answer: <answer>'."
    ),
}


class ExportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    formats: list[Literal["hf", "verl", "trl"]] = Field(
        default_factory=lambda: list(FORMATS), description="Which trainer formats to produce."
    )
    template: Literal["boxed", "answer_line"] = Field(
        "boxed", description="How the prompt asks for the final answer (\\boxed{} or 'Answer:')."
    )
    system_prompt: str | None = Field(
        None, description="Optional system message put before the question in chat prompts."
    )
    validation_fraction: float = Field(
        0.05, ge=0.0, le=1.0, description="Share of QA pairs assigned to the validation split."
    )
    split_seed: int = Field(
        0, description="Salt of the split hash; change it to draw a different validation set."
    )
    data_source: str = Field(
        "webscale_rl", min_length=1, description="verl data_source tag (selects the reward)."
    )


def split_of(qa_id: str, validation_fraction: float, seed: int = 0) -> str:
    """'train' or 'validation', stable across runs, machines and Python processes.

    Python's hash() is salted per process, so a SHA-256 of the id decides instead: the first
    8 bytes as a number in [0, 1) falls below the fraction for validation rows.
    """
    if not isinstance(qa_id, str) or not qa_id:
        raise ValueError(f"qa_id must be a non-empty string, got {qa_id!r}")
    if not 0.0 <= validation_fraction <= 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1], got {validation_fraction}")
    digest = hashlib.sha256(f"{seed}:{qa_id}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return "validation" if position < validation_fraction else "train"


def build_prompt(question: str, template: str, system_prompt: str | None = None) -> list[dict]:
    """Chat messages asking `question` and the final answer in the template's fixed form."""
    if template not in ANSWER_INSTRUCTIONS:
        raise ValueError(f"unknown template {template!r}; choose from {list(ANSWER_INSTRUCTIONS)}")
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": f"{question}\n\n{ANSWER_INSTRUCTIONS[template]}"})
    return messages


def check_qa_frame(qa: pd.DataFrame) -> None:
    """Fail early, with the reason, on input the exporters cannot convert faithfully."""
    missing = [c for c in QA_COLUMNS if c not in qa.columns]
    if missing:
        raise ValueError(f"QA frame lacks columns {missing}")
    for column in ("qa_id", "question", "answer"):
        empty = qa[column].isna() | (qa[column].astype(str).str.strip() == "")
        if empty.any():
            raise ValueError(f"{int(empty.sum())} rows have an empty {column}")
    duplicated = qa["qa_id"].duplicated()
    if duplicated.any():
        raise ValueError(f"duplicate qa_id values, e.g. {qa['qa_id'][duplicated].iloc[0]!r}")


def _splits(qa: pd.DataFrame, params: ExportParams) -> pd.Series:
    return qa["qa_id"].map(
        lambda qa_id: split_of(qa_id, params.validation_fraction, params.split_seed)
    )


def _text(series: pd.Series) -> pd.Series:
    """Strings for every cell ('' for missing) so Parquet and JSONL agree on the type."""
    return series.map(
        lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)
    )


def _created_at(series: pd.Series) -> pd.Series:
    # ISO-8601 text keeps JSONL and Parquet identical and avoids timezone dtype surprises.
    as_time = pd.to_datetime(series, utc=True, errors="coerce")
    return as_time.map(lambda t: t.isoformat() if pd.notna(t) else "")


def to_hf_rows(qa: pd.DataFrame, params: ExportParams) -> pd.DataFrame:
    """All QA columns as plain strings, plus the split."""
    rows = pd.DataFrame({c: _text(qa[c]) for c in QA_COLUMNS if c != "created_at"})
    rows["created_at"] = _created_at(qa["created_at"])
    rows["split"] = _splits(qa, params)
    return rows.reset_index(drop=True)


def to_verl_rows(qa: pd.DataFrame, params: ExportParams) -> pd.DataFrame:
    """verl RL rows; extra_info.index is the row's position in the input frame."""
    splits = _splits(qa, params).tolist()
    answer_types = _text(qa["answer_type"]).tolist()
    rows = {
        "data_source": [params.data_source] * len(qa),
        "prompt": [build_prompt(q, params.template, params.system_prompt) for q in qa["question"]],
        "ability": _text(qa["domain"]).tolist(),
        "reward_model": [{"style": "rule", "ground_truth": str(a)} for a in qa["answer"]],
        "extra_info": [
            {
                "qa_id": str(qa_id),
                "doc_id": doc_id,
                "answer_type": answer_type,
                "split": split,
                "index": index,
            }
            for index, (qa_id, doc_id, answer_type, split) in enumerate(
                zip(qa["qa_id"], _text(qa["doc_id"]), answer_types, splits, strict=True)
            )
        ],
    }
    return pd.DataFrame(rows)


def to_trl_rows(qa: pd.DataFrame, params: ExportParams) -> pd.DataFrame:
    """GRPOTrainer rows: every non-prompt column reaches the reward function as a kwarg."""
    return pd.DataFrame(
        {
            "prompt": [
                build_prompt(q, params.template, params.system_prompt) for q in qa["question"]
            ],
            "ground_truth": _text(qa["answer"]).tolist(),
            "answer_type": _text(qa["answer_type"]).tolist(),
            "qa_id": _text(qa["qa_id"]).tolist(),
            "split": _splits(qa, params).tolist(),
        }
    )


_CONVERTERS: dict[str, Callable[[pd.DataFrame, ExportParams], pd.DataFrame]] = {
    "hf": to_hf_rows,
    "verl": to_verl_rows,
    "trl": to_trl_rows,
}

_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
ARROW_SCHEMAS = {
    "hf": pa.schema([(c, pa.string()) for c in (*QA_COLUMNS, "split")]),
    "verl": pa.schema(
        [
            ("data_source", pa.string()),
            ("prompt", _MESSAGES),
            ("ability", pa.string()),
            ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
            (
                "extra_info",
                pa.struct(
                    [
                        ("qa_id", pa.string()),
                        ("doc_id", pa.string()),
                        ("answer_type", pa.string()),
                        ("split", pa.string()),
                        ("index", pa.int64()),
                    ]
                ),
            ),
        ]
    ),
    "trl": pa.schema(
        [
            ("prompt", _MESSAGES),
            ("ground_truth", pa.string()),
            ("answer_type", pa.string()),
            ("qa_id", pa.string()),
            ("split", pa.string()),
        ]
    ),
}


def split_column(frame: pd.DataFrame) -> pd.Series:
    """The split of each exported row, wherever the format keeps it."""
    if "split" in frame.columns:
        return frame["split"]
    return frame["extra_info"].map(lambda info: info["split"])


def export_frames(qa: pd.DataFrame, params: ExportParams) -> dict[str, dict[str, pd.DataFrame]]:
    """{format: {"train": rows, "validation": rows}} for every format in params.formats."""
    check_qa_frame(qa)
    exported = {}
    for fmt in params.formats:
        frame = _CONVERTERS[fmt](qa, params)
        splits = split_column(frame)
        exported[fmt] = {s: frame[splits == s].reset_index(drop=True) for s in SPLITS}
    return exported


def to_arrow(frame: pd.DataFrame, fmt: str) -> pa.Table:
    """An Arrow table with the format's fixed schema (stable even for an empty split)."""
    if fmt not in ARROW_SCHEMAS:
        raise ValueError(f"unknown format {fmt!r}; choose from {list(ARROW_SCHEMAS)}")
    schema = ARROW_SCHEMAS[fmt]
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
