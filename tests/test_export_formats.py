import json
import os
import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from webscale_rl.reward import compute_score, trl_reward
from webscale_rl.udfs.publish.export_formats import (
    ExportParams,
    build_prompt,
    export_frames,
    split_of,
    to_arrow,
    to_hf_rows,
    to_trl_rows,
    to_verl_rows,
)

# (question, answer, answer_type, a right response body, a wrong response body)
QA = [
    ("How tall is the tower in metres?", "324 metres", "number", "324 m", "342 m"),
    ("When did the bridge open?", "May 27, 1937", "date", "27 May 1937", "May 28, 1937"),
    ("Who designed the engine?", "Ada Lovelace", "name", "ada lovelace", "Charles Babbage"),
    ("What process do leaves use?", "photosynthesis", "phrase", "Photosynthesis", "respiration"),
    ("Expand (x+1)^2.", "x^2+2x+1", "expression", "(x+1)^2", "x^2+1"),
    ("What share of revenue came from exports?", "45%", "number", "45 percent", "54%"),
]


def qa_frame(n_copies: int = 1) -> pd.DataFrame:
    rows = []
    for copy in range(n_copies):
        for i, (question, answer, answer_type, _, _) in enumerate(QA):
            rows.append(
                {
                    "qa_id": f"qa-{copy}-{i}",
                    "question": question,
                    "answer": answer,
                    "answer_type": answer_type,
                    "domain": "Natural Science" if i % 2 else "Math",
                    "persona": "a curious student",
                    "doc_id": f"doc-{i}",
                    "url": f"https://sample.webscale-rl.invalid/x/{i}",
                    "source": "sample_corpus",
                    "model": "rule-based",
                    "prompt_version": "v1",
                    "run_id": "run-1",
                    "created_at": pd.Timestamp("2025-01-02T03:04:05Z"),
                }
            )
    return pd.DataFrame(rows)


def respond(template: str, body: str) -> str:
    if template == "boxed":
        return f"Let me think.\nThe result follows. \\boxed{{{body}}}"
    return f"Let me think.\nThe result follows.\nAnswer: {body}"


def test_split_is_deterministic_and_close_to_the_fraction():
    ids = [f"qa-{i}" for i in range(4000)]
    first = [split_of(i, 0.1, seed=7) for i in ids]
    assert first == [split_of(i, 0.1, seed=7) for i in ids]
    share = first.count("validation") / len(ids)
    assert 0.08 < share < 0.12
    assert first != [split_of(i, 0.1, seed=8) for i in ids]  # the seed changes the draw
    assert {split_of(i, 0.0) for i in ids[:200]} == {"train"}
    assert {split_of(i, 1.0) for i in ids[:200]} == {"validation"}


def test_split_does_not_depend_on_the_process_hash_seed():
    # Python's hash() of a str changes with PYTHONHASHSEED; split_of must not.
    code = (
        "from webscale_rl.udfs.publish.export_formats import split_of;"
        "print(''.join(split_of(f'qa-{i}', 0.5)[0] for i in range(64)))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert outputs == {"".join(split_of(f"qa-{i}", 0.5)[0] for i in range(64))}


def test_split_of_rejects_bad_arguments():
    with pytest.raises(ValueError, match="qa_id"):
        split_of("", 0.1)
    with pytest.raises(ValueError, match="validation_fraction"):
        split_of("a", 1.5)


def test_export_params_validate():
    assert ExportParams().validation_fraction == 0.05
    with pytest.raises(ValidationError):
        ExportParams(formats=["csv"])
    with pytest.raises(ValidationError):
        ExportParams(template="json")
    with pytest.raises(ValidationError):
        ExportParams(unknown_field=1)


@pytest.mark.parametrize("template", ["boxed", "answer_line"])
def test_prompt_asks_for_the_fixed_answer_form(template):
    messages = build_prompt("What is 2+2?", template, system_prompt="Be brief.")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[1]["content"].startswith("What is 2+2?")
    marker = "\\boxed{}" if template == "boxed" else "Answer: <answer>"
    assert marker in messages[1]["content"]


def test_missing_columns_and_duplicates_are_rejected():
    with pytest.raises(ValueError, match="lacks columns"):
        export_frames(qa_frame().drop(columns=["answer"]), ExportParams())
    doubled = pd.concat([qa_frame(), qa_frame()])
    with pytest.raises(ValueError, match="duplicate qa_id"):
        export_frames(doubled, ExportParams())
    empty_answer = qa_frame()
    empty_answer.loc[0, "answer"] = "  "
    with pytest.raises(ValueError, match="empty answer"):
        export_frames(empty_answer, ExportParams())


def test_splits_partition_the_rows():
    qa = qa_frame(n_copies=20)
    frames = export_frames(qa, ExportParams(validation_fraction=0.3))
    for fmt, by_split in frames.items():
        assert sum(len(f) for f in by_split.values()) == len(qa), fmt
        assert len(by_split["validation"]) > 0 and len(by_split["train"]) > 0
    hf = frames["hf"]
    assert set(hf["train"]["qa_id"]).isdisjoint(hf["validation"]["qa_id"])
    # Every format puts a QA pair in the same split.
    trl_val = set(frames["trl"]["validation"]["qa_id"])
    verl_val = {info["qa_id"] for info in frames["verl"]["validation"]["extra_info"]}
    assert trl_val == verl_val == set(hf["validation"]["qa_id"])


def test_verl_parquet_round_trip(tmp_path):
    params = ExportParams(data_source="webscale_rl_test")
    rows = to_verl_rows(qa_frame(), params)
    path = tmp_path / "verl.parquet"
    pq.write_table(to_arrow(rows, "verl"), path)
    table = pq.read_table(path)
    assert table.schema.field("prompt").type == pa.list_(
        pa.struct([("role", pa.string()), ("content", pa.string())])
    )
    assert pa.types.is_struct(table.schema.field("reward_model").type)
    assert table.schema.field("extra_info").type.field("index").type == pa.int64()
    back = table.to_pylist()
    assert len(back) == len(QA)
    for i, (row, (question, answer, answer_type, _, _)) in enumerate(zip(back, QA, strict=True)):
        assert row["data_source"] == "webscale_rl_test"
        assert row["prompt"][-1]["role"] == "user"
        assert row["prompt"][-1]["content"].startswith(question)
        assert row["reward_model"] == {"style": "rule", "ground_truth": answer}
        assert row["ability"] in ("Math", "Natural Science")
        assert row["extra_info"]["answer_type"] == answer_type
        assert row["extra_info"]["index"] == i
        assert row["extra_info"]["split"] in ("train", "validation")


@pytest.mark.parametrize("template", ["boxed", "answer_line"])
def test_verl_rows_score_with_compute_score(tmp_path, template):
    rows = to_verl_rows(qa_frame(), ExportParams(template=template))
    path = tmp_path / "verl.parquet"
    pq.write_table(to_arrow(rows, "verl"), path)
    back = pq.read_table(path).to_pylist()
    for row, (_, _, _, right, wrong) in zip(back, QA, strict=True):
        gold = row["reward_model"]["ground_truth"]
        args = (row["data_source"], gold, row["extra_info"])
        assert compute_score(args[0], respond(template, right), gold, args[2]) == 1.0, right
        assert compute_score(args[0], respond(template, wrong), gold, args[2]) == 0.0, wrong


@pytest.mark.parametrize("template", ["boxed", "answer_line"])
def test_trl_rows_score_with_trl_reward(tmp_path, template):
    rows = to_trl_rows(qa_frame(), ExportParams(template=template))
    path = tmp_path / "trl.parquet"
    pq.write_table(to_arrow(rows, "trl"), path)
    back = pq.read_table(path).to_pandas()
    assert list(back.columns) == ["prompt", "ground_truth", "answer_type", "qa_id", "split"]
    # GRPOTrainer passes the remaining columns as lists, completions as chat messages.
    right = [[{"role": "assistant", "content": respond(template, qa[3])}] for qa in QA]
    wrong = [[{"role": "assistant", "content": respond(template, qa[4])}] for qa in QA]
    columns = {"ground_truth": list(back["ground_truth"]), "answer_type": list(back["answer_type"])}
    assert trl_reward(right, **columns, qa_id=list(back["qa_id"])) == [1.0] * len(QA)
    assert trl_reward(wrong, **columns, qa_id=list(back["qa_id"])) == [0.0] * len(QA)


def test_hf_rows_load_with_datasets_from_parquet_and_jsonl(tmp_path):
    datasets = pytest.importorskip("datasets")
    frames = export_frames(qa_frame(n_copies=10), ExportParams(validation_fraction=0.2))["hf"]
    files_pq, files_js = {}, {}
    for split, frame in frames.items():
        files_pq[split] = str(tmp_path / f"{split}.parquet")
        pq.write_table(to_arrow(frame, "hf"), files_pq[split])
        files_js[split] = str(tmp_path / f"{split}.jsonl")
        frame.to_json(files_js[split], orient="records", lines=True, force_ascii=False)
    cache = str(tmp_path / "cache")
    from_pq = datasets.load_dataset("parquet", data_files=files_pq, cache_dir=cache)
    from_js = datasets.load_dataset("json", data_files=files_js, cache_dir=cache)
    for loaded in (from_pq, from_js):
        assert set(loaded) == {"train", "validation"}
        assert loaded["train"].num_rows == len(frames["train"])
        assert loaded["validation"].num_rows == len(frames["validation"])
        assert loaded["train"].features["question"].dtype == "string"
        first = loaded["train"][0]
        # Parquet keeps the ISO text; datasets' JSON reader turns it into a (UTC) datetime.
        assert str(first["created_at"]).replace(" ", "T").startswith("2025-01-02T03:04:05")
        expected = frames["train"].iloc[0]
        assert first["answer"] == expected["answer"]
        assert first["qa_id"] == expected["qa_id"]


def test_hf_rows_keep_every_qa_column_as_text():
    qa = qa_frame()
    qa.loc[0, "persona"] = None
    rows = to_hf_rows(qa, ExportParams())
    assert rows.loc[0, "persona"] == ""
    assert list(rows["answer"]) == [q[1] for q in QA]
    assert json.loads(rows.to_json(orient="records"))[1]["answer_type"] == "date"


def test_empty_split_still_writes_with_the_schema(tmp_path):
    frames = export_frames(qa_frame(), ExportParams(validation_fraction=0.0))
    for fmt in ("hf", "verl", "trl"):
        empty = frames[fmt]["validation"]
        assert len(empty) == 0
        path = tmp_path / f"{fmt}.parquet"
        pq.write_table(to_arrow(empty, fmt), path)
        assert pq.read_table(path).num_rows == 0
