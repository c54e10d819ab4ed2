"""Run the SQL cells of the Databricks-format notebooks here against a local lakehouse.

    python notebooks/run_local.py --lakehouse ./lakehouse [notebooks/explore_lakehouse.py ...]

Each `# MAGIC %sql` cell runs through the same SQL path as `webscale-rl sql` (lakehouse tables
registered by name). A cell that names a table the lakehouse does not have yet is skipped and
reported; any other SQL error fails the run (exit code 1).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CELL_SEPARATOR = "# COMMAND ----------"


@dataclass
class CellResult:
    index: int
    sql: str
    status: str  # ok | skipped | error
    detail: str = ""
    rows: int = 0


def sql_cells(path: Path) -> list[str]:
    """The SQL text of every `%sql` cell, in order, without the MAGIC prefixes and comments."""
    text = path.read_text(encoding="utf-8")
    if not text.startswith("# Databricks notebook source"):
        raise ValueError(f"{path} is not a Databricks source notebook")
    cells = []
    for cell in text.split(CELL_SEPARATOR):
        lines = [ln for ln in cell.strip().splitlines() if ln.startswith("# MAGIC")]
        body = [re.sub(r"^# MAGIC ?", "", ln) for ln in lines]
        if body and body[0].strip() == "%sql":
            sql = "\n".join(ln for ln in body[1:] if not ln.strip().startswith("--"))
            cells.append(sql.strip())
    return cells


def tables_named(sql: str, names: set[str]) -> set[str]:
    return {n for n in names if re.search(rf"(?<![\w.`]){re.escape(n)}(?![\w`])", sql)}


def run_notebook(spark, cfg, path: Path) -> list[CellResult]:
    from webscale_rl.tables import register_views

    known = set(cfg.tables.model_dump().values())
    present = set(register_views(spark, cfg))
    results = []
    for i, sql in enumerate(sql_cells(path), start=1):
        missing = sorted(tables_named(sql, known) - present)
        if missing:
            results.append(CellResult(i, sql, "skipped", f"needs {', '.join(missing)}"))
            continue
        try:
            rows = spark.sql(sql).collect()
        except Exception as err:  # the first line of Spark's error says what is wrong
            results.append(CellResult(i, sql, "error", str(err).splitlines()[0][:500]))
            continue
        results.append(CellResult(i, sql, "ok", rows=len(rows)))
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook here")
    p.add_argument("--lakehouse", default="./lakehouse", help="lakehouse folder")
    p.add_argument("--config", help="YAML config file")
    args = p.parse_args(argv)

    from webscale_rl.config import load_config
    from webscale_rl.session import get_spark

    cfg = load_config(args.config, lakehouse=args.lakehouse)
    spark = get_spark(cfg)
    paths = args.notebooks or sorted(
        q for q in HERE.glob("*.py") if q.read_text().startswith("# Databricks notebook source")
    )
    failed = 0
    for path in paths:
        for r in run_notebook(spark, cfg, path):
            first = r.sql.splitlines()[0][:70] if r.sql else ""
            extra = f"{r.rows} rows" if r.status == "ok" else r.detail
            print(f"{path.name} cell {r.index:>2} {r.status:<8} {extra:<40} {first}")
            failed += r.status == "error"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
