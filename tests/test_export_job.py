"""Exports written by publish and `webscale-rl export`: loadable by datasets, verl and TRL."""

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_publish import ANSWERS, kept_counts, qa_rows, write_qa_table

from webscale_rl import cli, tables
from webscale_rl.config import load_config
from webscale_rl.jobs import publish
from webscale_rl.reward import compute_score
from webscale_rl.udfs.publish.export_formats import ARROW_SCHEMAS, split_of

VALIDATION = 0.3
WRONG = {answer: wrong for answer, _, wrong in ANSWERS}


@pytest.fixture(scope="module")
def published(spark, tmp_path_factory):
    """A lakehouse where publish ran twice: v0 with exports (3 shards), then v1 capped."""
    root = tmp_path_factory.mktemp("export")
    sets = [
        "mlflow.enabled=false",
        "spark.shuffle_partitions=2",
        "export.rows_per_file=8",
        f"export.validation_fraction={VALIDATION}",
    ]
    cfg = load_config(overrides=sets, lakehouse=str(root / "lakehouse"))
    cfg.run_id = "run-export"
    write_qa_table(spark, cfg)
    result = publish.run(spark, cfg)
    capped = load_config(
        overrides=[*sets, "publish.max_domain_share=0.5", "publish.exports=false"],
        lakehouse=cfg.lakehouse,
    )
    publish.run(spark, capped)
    version = result.outputs[tables.table_ref(cfg, "qa")]
    return cfg, Path(cfg.lakehouse) / "exports" / "qa", version, result


def expected_rows():
    return {r["qa_id"]: r for r in qa_rows() if r["answer"].strip()}


def read_folder(folder: Path):
    files = sorted(folder.glob("*.parquet"))
    return files, [pq.read_table(f) for f in files]


def test_publish_writes_exports_card_and_latest(published):
    _, exports, version, result = published
    assert (exports / "latest").read_text().strip() == f"v{version}"
    out = exports / f"v{version}"
    assert f"exports and dataset card: {out}" in result.notes
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "hf", "hf_jsonl", "trl", "verl"]
    # 19 rows at 8 per file: 3 shards, each with train rows (a 30% validation split may miss one).
    names = {p.name for p in (out / "verl").iterdir()}
    train = {f"train-0000{i}-of-00003.parquet" for i in range(3)}
    validation = {f"validation-0000{i}-of-00003.parquet" for i in range(3)}
    assert train <= names <= train | validation and names & validation


def test_verl_export_types_contents_and_reward(published):
    _, exports, version, _ = published
    files, parts = read_folder(exports / f"v{version}" / "verl")
    for table in parts:
        assert table.schema.equals(ARROW_SCHEMAS["verl"], check_metadata=False)
    frame = pd.concat([t.to_pandas() for t in parts], ignore_index=True)
    expected = expected_rows()
    assert sorted(i["qa_id"] for i in frame["extra_info"]) == sorted(expected)
    assert sorted(i["index"] for i in frame["extra_info"]) == list(range(len(expected)))
    for f, table in zip(files, parts, strict=True):
        split = f.name.split("-")[0]
        assert all(i["split"] == split for i in table.column("extra_info").to_pylist())
    for _, row in frame.iterrows():
        info, truth = row["extra_info"], row["reward_model"]["ground_truth"]
        source = expected[info["qa_id"]]
        assert info["split"] == split_of(info["qa_id"], VALIDATION)
        assert truth == source["answer"] and info["answer_type"] == source["answer_type"]
        assert row["ability"] == source["domain"]
        (message,) = row["prompt"]
        assert message["role"] == "user"
        assert (
            message["content"].startswith(source["question"]) and "\\boxed{}" in message["content"]
        )
        # The prompt asks for \boxed{}: a response in that form scores by its content.
        right = f"Let me think about it.\nThe result is \\boxed{{{truth}}}"
        wrong = f"Let me think about it.\nThe result is \\boxed{{{WRONG[truth]}}}"
        assert compute_score(row["data_source"], right, truth, info) == 1.0
        assert compute_score(row["data_source"], wrong, truth, info) == 0.0


def test_trl_export_columns(published):
    _, exports, version, _ = published
    _, parts = read_folder(exports / f"v{version}" / "trl")
    frame = pd.concat([t.to_pandas() for t in parts], ignore_index=True)
    assert list(frame.columns) == ["prompt", "ground_truth", "answer_type", "qa_id", "split"]
    expected = expected_rows()
    assert dict(zip(frame["qa_id"], frame["ground_truth"], strict=True)) == {
        k: r["answer"] for k, r in expected.items()
    }


def test_hf_parquet_and_jsonl_load_with_datasets(published, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    _, exports, version, _ = published
    out = exports / f"v{version}"
    cache = str(tmp_path / "hf-cache")
    expected = expected_rows()

    def check(ds):
        assert set(ds) == {"train", "validation"}
        rows = {r["qa_id"]: r for split in ds for r in ds[split]}
        assert {k: r["question"] for k, r in rows.items()} == {
            k: r["question"] for k, r in expected.items()
        }
        for split in ds:
            assert set(ds[split]["split"]) <= {split}

    files = {s: str(out / "hf" / f"{s}-*.parquet") for s in ("train", "validation")}
    check(datasets.load_dataset("parquet", data_files=files, cache_dir=cache))
    lines = {s: sorted(str(p) for p in (out / "hf_jsonl").glob(f"{s}-*.jsonl")) for s in files}
    check(datasets.load_dataset("json", data_files=lines, cache_dir=cache))
    # The card's YAML header lets load_dataset find the files from the folder alone.
    check(datasets.load_dataset(str(out), cache_dir=cache))
    verl = datasets.load_dataset(str(out), "verl", cache_dir=cache)
    assert verl["train"].num_rows + verl["validation"].num_rows == len(expected)


def test_card_lists_domains_and_counts(published):
    _, exports, version, _ = published
    card = (exports / f"v{version}" / "README.md").read_text()
    counts = kept_counts()
    total = sum(counts.values())
    for domain, n in counts.items():
        assert f"| {domain} | {n} | {100 * n / total:.1f}% |" in card
    assert "| publish | empty_text | 1 |" in card
    assert f"| qa_clean | {len(qa_rows())} |" in card
    assert f"table: `{tables.table_ref(published[0], 'qa')}` version {version}" in card


def test_export_command_reexports_an_older_version(spark, published, tmp_path, capsys):
    cfg, _, version, _ = published
    out = tmp_path / "again"
    (out / "trl").mkdir(parents=True)
    (out / "trl" / "train-00000-of-00009.parquet").write_text("from an earlier export")
    base = ["--lakehouse", cfg.lakehouse, "--set", "mlflow.enabled=false"]
    args = ["export", "--version", str(version), "--formats", "verl", "--out", str(out)]
    assert cli.main([*base, *args]) == 0
    assert "19 rows" in capsys.readouterr().out
    # Only what the card lists is left: the earlier trl folder is gone.
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "verl"]
    # Version 0 is re-exported whole, although the latest version is capped.
    _, parts = read_folder(out / "verl")
    assert sum(t.num_rows for t in parts) == len(expected_rows())
    assert tables.version(spark, tables.table_ref(cfg, "qa")) == version + 1

    assert cli.main([*base, "export", "--version", "9"]) == 1
    assert "versions 0..1" in capsys.readouterr().err
    assert cli.main([*base, "export", "--formats", "csv"]) == 1
    assert "unknown export format" in capsys.readouterr().err
