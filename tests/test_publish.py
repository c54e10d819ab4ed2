"""Publish: versions of the `qa` table, domain rebalancing with rejects, and the dataset card."""

import datetime as dt
import json

import pytest
import yaml
from pyspark.sql import functions as F

from webscale_rl import audit, cli, tables
from webscale_rl.errors import WebscaleError
from webscale_rl.jobs import publish
from webscale_rl.schemas import tables as schemas
from webscale_rl.udfs.publish.dataset_card import CardFacts, render_card

# (answer, answer type, a wrong answer of the same type)
ANSWERS = [
    ("42", "number", "43"),
    ("July 20, 1969", "date", "July 21, 1969"),
    ("Marie Curie", "name", "Isaac Newton"),
    ("photosynthesis", "phrase", "respiration"),
    ("x^2 + 1", "expression", "x^2 + 2"),
]
DOMAINS = {"math": 12, "history": 5, "biology": 3}


def qa_rows(domains=None):
    """QA rows (dicts) in the decontaminated layout; the last math row has a blank answer."""
    domains = domains or DOMAINS
    rows, i = [], 0
    created = dt.datetime(2025, 1, 2, 3, 4, 5)
    for domain, n in domains.items():
        for _ in range(n):
            answer, kind, _ = ANSWERS[i % len(ANSWERS)]
            rows.append(
                {
                    "qa_id": f"qa{i:03d}",
                    "doc_id": f"doc{i % 7}",
                    "question": f"Question {i} about {domain}?",
                    "answer": answer,
                    "answer_type": kind,
                    "domain": domain,
                    "persona": "a curious student",
                    "url": f"https://example.org/{i % 7}",
                    "source": "web_pages.warc.gz",
                    "model": "rules-v1",
                    "prompt_version": "qa-v2",
                    "run_id": "gen-run",
                    "created_at": created,
                }
            )
            i += 1
    last_math = max(k for k, r in enumerate(rows) if r["domain"] == "math")
    rows[last_math]["answer"] = "  "
    return rows


def write_qa_table(spark, cfg, logical="qa_clean", domains=None):
    # Columns of the upstream layout this test does not set stay null.
    df = spark.createDataFrame(qa_rows(domains), schemas.QA_CLEAN)
    df.write.format("delta").mode("overwrite").save(tables.table_ref(cfg, logical))
    return df


def kept_counts(domains=None):
    """Rows per domain publish keeps without a cap (the empty-answer row is dropped)."""
    counts = {}
    for row in qa_rows(domains):
        if row["answer"].strip():
            counts[row["domain"]] = counts.get(row["domain"], 0) + 1
    return counts


# ------------------------------------------------------------------------ pure parts


def test_domain_caps_bound_every_share():
    counts = {"a": 100, "b": 30, "c": 20, "d": 5}
    caps = publish.domain_caps(counts, 0.4)
    kept = {d: min(n, caps.get(d, n)) for d, n in counts.items()}
    assert max(kept.values()) / sum(kept.values()) <= 0.4
    # The cap is the largest that holds: one more row would break it.
    top = max(caps.values())
    more = {d: min(n, top + 1) for d, n in counts.items()}
    assert max(more.values()) / sum(more.values()) > 0.4
    assert set(caps) == {"a"}


def test_domain_caps_off_or_already_within():
    assert publish.domain_caps({"a": 5, "b": 5}, None) == {}
    assert publish.domain_caps({"a": 5, "b": 5}, 0.5) == {}


def test_domain_caps_impossible_share_is_an_error():
    with pytest.raises(ValueError, match="1/2"):
        publish.domain_caps({"a": 5, "b": 1}, 0.3)


def card_facts(**changes):
    facts = dict(
        title="Webscale-RL QA",
        table="/lh/qa",
        version=3,
        run_id="run-abc",
        published_at="2025-01-01 00:00:00",
        pipeline_version="0.1.0",
        rows=15,
        domains={"math": 9, "history": 5, None: 1},
        answer_types={"number": 10, "name": 5},
        sources={f"file{i}.warc.gz": 1 for i in range(25)},
        models={"qwen": 15},
        prompt_versions={"qa-v2": 15},
        split_rows={"train": 14, "validation": 1},
        funnel={"documents": 100, "documents_filtered": 40, "qa (published)": 15},
        rejects={"filter": {"too_short": 50, "lang_not_kept": 10}, "publish": {"a|b": 2}},
        export_files={
            "hf": ["hf/train-00000-of-00001.parquet", "hf/validation-00000-of-00001.parquet"],
            "verl": ["verl/train-00000-of-00001.parquet"],
        },
    )
    facts.update(changes)
    return CardFacts(**facts)


def test_card_lists_domains_funnel_rejects_and_licence():
    card = render_card(card_facts())
    for line in (
        "| math | 9 | 60.0% |",
        "| history | 5 | 33.3% |",
        "| (none) | 1 | 6.7% |",
        "| documents_filtered | 40 |",
        "| filter | too_short | 50 |",
        "| publish | a\\|b | 2 |",  # a '|' in a value must not split the cell
        "| (5 more) | 5 | 33.3% |",  # 25 sources: the top 20 and the rest
    ):
        assert line in card, line
    assert "webscale-rl 0.1.0" in card and "run-abc" in card
    assert "remains its authors'" in card


def test_card_header_points_the_hub_at_the_export_files():
    card = render_card(card_facts())
    header = yaml.safe_load(card.split("---\n")[1])
    configs = {c["config_name"]: c["data_files"] for c in header["configs"]}
    assert configs["default"] == [
        {"split": "train", "path": "hf/train-*.parquet"},
        {"split": "validation", "path": "hf/validation-*.parquet"},
    ]
    assert configs["verl"] == [{"split": "train", "path": "verl/train-*.parquet"}]
    assert header["size_categories"] == ["n<1K"]


# ------------------------------------------------------------------------ Spark


def sql_counts(lakehouse, query, capsys) -> dict[str, int]:
    """Run `webscale-rl sql` and read the `domain | count` rows it prints."""
    capsys.readouterr()
    code = cli.main(["--lakehouse", lakehouse, "--set", "mlflow.enabled=false", "sql", query])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [line.strip("|").split("|") for line in out.splitlines() if line.startswith("|")]
    return {d.strip(): int(n) for d, n in rows[1:]}


def test_publish_versions_history_and_rebalancing(spark, make_cfg, capsys):
    cfg = make_cfg("publish.exports=false")
    cfg.run_id = "run-one"
    source = write_qa_table(spark, cfg)
    first = publish.run(spark, cfg)
    assert (first.rows_in, first.rows_out, first.rejects) == (20, 19, {"empty_text": 1})

    capped = make_cfg("publish.exports=false", "publish.max_domain_share=0.5")
    capped.run_id = "run-two"
    second = publish.run(spark, capped)
    ref = tables.table_ref(cfg, "qa")
    assert first.outputs[ref] + 1 == second.outputs[ref]

    # Both versions answer SQL through the CLI.
    query = "SELECT domain, count(*) FROM qa VERSION AS OF {} GROUP BY domain"
    v0 = sql_counts(cfg.lakehouse, query.format(first.outputs[ref]), capsys)
    v1 = sql_counts(cfg.lakehouse, query.format(second.outputs[ref]), capsys)
    assert v0 == kept_counts()
    assert v1["history"] == 5 and v1["biology"] == 3
    assert v1["math"] / sum(v1.values()) <= 0.5 < (v1["math"] + 1) / (sum(v1.values()) + 1)

    # Each commit names its run.
    history = spark.sql(f"DESCRIBE HISTORY delta.`{ref}`").select("version", "userMetadata")
    meta = {r["version"]: json.loads(r["userMetadata"]) for r in history.collect()}
    assert meta[first.outputs[ref]]["run_id"] == "run-one"
    assert meta[second.outputs[ref]]["run_id"] == "run-two"

    # Every input row is published or rejected, never both; rejects describe this version.
    dropped = v0["math"] - v1["math"]
    assert second.rejects == {"empty_text": 1, "domain_cap": dropped}
    assert second.rows_in == second.rows_out + second.rejected
    rejects = tables.read(spark, tables.table_ref(cfg, "rejects")).where("stage = 'publish'")
    rejected = {r["row_id"]: (r["reason"], r["run_id"]) for r in rejects.collect()}
    published = {r["qa_id"] for r in tables.read(spark, ref).select("qa_id").collect()}
    assert set(rejected) | published == {r["qa_id"] for r in source.collect()}
    assert not set(rejected) & published
    assert {run for _, run in rejected.values()} == {"run-two"}
    assert [a.missing for a in [audit.audit_tables(spark, capped, "publish")]] == [0]

    # Capping keeps the rows first in xxhash64(qa_id) order, so a republish keeps the same ones.
    math_ids = [r["qa_id"] for r in qa_rows() if r["domain"] == "math" and r["answer"].strip()]
    ranked = (
        spark.createDataFrame([(i,) for i in math_ids], "qa_id string")
        .orderBy(F.xxhash64("qa_id"), "qa_id")
        .collect()
    )
    assert {r["qa_id"] for r in ranked[: v1["math"]]} == {i for i in published if i in math_ids}


def test_card_says_which_stages_were_skipped():
    card = render_card(card_facts(skipped_stages=["filter", "decontaminate"]))
    assert "- skipped stages: filter, decontaminate" in card
    assert "**Skipped stages: filter, decontaminate.**" in card
    assert "NOT checked for overlap with evaluation benchmarks" in card
    assert "none was skipped" in render_card(card_facts())


def test_publish_without_qa_clean_stops_and_names_decontaminate(spark, make_cfg, capsys):
    cfg = make_cfg()
    write_qa_table(spark, cfg, "qa_deduped", {"math": 2})
    capsys.readouterr()
    argv = ["--lakehouse", cfg.lakehouse, "--set", "mlflow.enabled=false", "stage", "publish"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "run stage decontaminate first" in err and "--allow-skip decontaminate" in err
    assert not tables.exists(spark, tables.table_ref(cfg, "qa"))
    with pytest.raises(WebscaleError, match="decontaminate"):
        publish.run(spark, cfg)


def test_allow_skip_decontaminate_is_recorded_in_commit_card_and_mlflow(spark, make_cfg, tmp_path):
    import mlflow

    cfg = make_cfg()
    write_qa_table(spark, cfg, "qa_deduped", {"math": 3, "history": 2})
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    sets = ["--set", "mlflow.enabled=true", "--set", f"mlflow.tracking_uri={uri}"]
    argv = ["--lakehouse", cfg.lakehouse, *sets, "stage", "publish"]
    assert cli.main([*argv, "--allow-skip", "decontaminate"]) == 0

    ref = tables.table_ref(cfg, "qa")
    assert tables.read(spark, ref).count() == 4  # 5 rows, one with a blank answer
    meta = json.loads(tables.delta_table(spark, ref).history(1).first()["userMetadata"])
    assert meta["skipped_stages"] == ["decontaminate"]
    card = (tmp_path / "lakehouse" / "exports" / "qa" / "v0" / "README.md").read_text()
    assert "**Skipped stages: decontaminate.**" in card

    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("webscale-rl").experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    stage = next(r for r in runs if r.data.tags.get("webscale_rl.stage") == "publish")
    assert parent.data.tags["webscale_rl.skipped_stages"] == "decontaminate"
    assert parent.data.params["allow_skip"] == "['decontaminate']"
    assert stage.data.tags["webscale_rl.skipped_stages"] == "decontaminate"


# ------------------------------------------------------------------------ no-op republish


def qa_versions(spark, cfg) -> list[int]:
    ref = tables.table_ref(cfg, "qa")
    return sorted(r["version"] for r in tables.delta_table(spark, ref).history().collect())


def test_publish_rerun_with_the_same_input_and_options_writes_nothing(spark, make_cfg, tmp_path):
    cfg = make_cfg()
    write_qa_table(spark, cfg)
    first = publish.run(spark, cfg)
    rejects_ref = tables.table_ref(cfg, "rejects")
    rejects_version = tables.version(spark, rejects_ref)
    card = tmp_path / "lakehouse" / "exports" / "qa" / "v0" / "README.md"
    card_written = card.stat().st_mtime_ns

    again = publish.run(spark, make_cfg())
    assert qa_versions(spark, cfg) == [0]  # no new qa version
    assert tables.version(spark, rejects_ref) == rejects_version
    assert card.stat().st_mtime_ns == card_written  # exports left as they were
    assert again.outputs == first.outputs and again.inputs == first.inputs
    assert (again.rows_in, again.rows_out, again.rejected) == (0, 0, 0)
    assert any(n.startswith("unchanged: ") for n in again.notes), again.notes
    latest = tables.delta_table(spark, tables.table_ref(cfg, "qa")).history(1).first()
    assert json.loads(latest["userMetadata"])["published_from"]["input_version"] == 0

    # Another option or a new input version publishes again.
    capped = publish.run(spark, make_cfg("publish.max_domain_share=0.5"))
    assert qa_versions(spark, cfg) == [0, 1] and capped.rejects["domain_cap"] > 0
    extra = spark.createDataFrame(qa_rows({"math": 1}), schemas.QA_CLEAN)
    extra = extra.withColumn("qa_id", F.lit("qa-new"))
    extra.write.format("delta").mode("append").save(tables.table_ref(cfg, "qa_clean"))
    grown = publish.run(spark, make_cfg("publish.max_domain_share=0.5"))
    assert qa_versions(spark, cfg) == [0, 1, 2] and grown.rows_in == 21


def test_unchanged_publish_writes_exports_a_crash_or_exports_off_left_missing(
    spark, make_cfg, tmp_path
):
    cfg = make_cfg("publish.exports=false")
    write_qa_table(spark, cfg)
    publish.run(spark, cfg)
    root = tmp_path / "lakehouse" / "exports" / "qa"
    assert not root.exists()

    result = publish.run(spark, make_cfg())  # exports on: they go with the current version
    assert qa_versions(spark, cfg) == [0]
    assert (root / "latest").read_text() == "v0\n" and (root / "v0" / "README.md").exists()
    assert any("exports and dataset card" in n for n in result.notes)
