"""Every SQL cell of the notebooks runs against a real lakehouse (the session's reference run)."""

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
def lakehouse(reference):
    """The session's reference run: every pipeline table, filled (read only here)."""
    from webscale_rl.config import load_config

    cfg = load_config(overrides=["mlflow.enabled=false"], lakehouse=str(reference.lakehouse))
    cfg.run_id = "notebook-test"
    return cfg


def test_every_sql_cell_runs(spark, lakehouse):
    results = runner.run_notebook(spark, lakehouse, NOTEBOOKS / "explore_lakehouse.py")
    errors = [f"cell {r.index}: {r.detail}\n{r.sql}" for r in results if r.status == "error"]
    assert not errors, "\n\n".join(errors)
    ran = [r for r in results if r.status == "ok"]
    # Every pipeline table is present: every cell must have run and returned rows, except the
    # near-duplicate clusters, which the sample corpus has none of.
    assert len(ran) == len(results) >= 15, [(r.index, r.status, r.detail) for r in results]
    empty = [r for r in ran if not r.rows and "cluster_size > 1" not in r.sql]
    assert not empty, [(r.index, r.sql) for r in empty]
