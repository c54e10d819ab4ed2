"""Every SQL cell of the notebooks runs against a real lakehouse (ingest + filter of the sample)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def load_runner():
    spec = importlib.util.spec_from_file_location("run_local", NOTEBOOKS / "run_local.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_local"] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


runner = load_runner()


def test_cells_are_parsed_from_the_databricks_format():
    cells = runner.sql_cells(NOTEBOOKS / "explore_lakehouse.py")
    assert len(cells) >= 15
    assert all(c and "# MAGIC" not in c and "%sql" not in c for c in cells)
    assert any(c.startswith("DESCRIBE HISTORY") for c in cells)


def test_table_names_are_found_as_whole_words():
    names = {"documents", "documents_filtered", "qa", "qa_verified"}
    sql = "SELECT qa_id FROM documents_filtered JOIN qa ON x.doc_id = qa.doc_id"
    assert runner.tables_named(sql, names) == {"documents_filtered", "qa"}


@pytest.fixture(scope="module")
def lakehouse(spark, shared_data, tmp_path_factory):
    from webscale_rl.config import load_config
    from webscale_rl.jobs import pipeline

    tmp = tmp_path_factory.mktemp("notebooks")
    cfg = load_config(
        overrides=[
            "spark.shuffle_partitions=2",
            "mlflow.enabled=false",
            f"ingest.input={shared_data / 'web' / 'web_pages_small.warc.gz'}",
        ],
        lakehouse=str(tmp / "lakehouse"),
    )
    cfg.run_id = "notebook-test"
    pipeline.run(spark, cfg, ["ingest", "filter"])
    return cfg


def test_every_sql_cell_runs(spark, lakehouse):
    results = runner.run_notebook(spark, lakehouse, NOTEBOOKS / "explore_lakehouse.py")
    errors = [f"cell {r.index}: {r.detail}\n{r.sql}" for r in results if r.status == "error"]
    assert not errors, "\n\n".join(errors)
    ran = [r for r in results if r.status == "ok"]
    # With documents, documents_filtered and rejects present these cells must have run.
    assert len(ran) >= 8, [(r.index, r.status, r.detail) for r in results]
    assert all(r.rows > 0 for r in ran), [(r.index, r.rows) for r in ran if not r.rows]
    skipped = {r.detail for r in results if r.status == "skipped"}
    assert all(not d.startswith("needs documents,") for d in skipped)
