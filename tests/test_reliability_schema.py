"""Schema changes in input tables: extra columns are fine; a missing or mistyped column is a
clear error naming it, before any work starts (no output table, no rejects written).

Every stage in `pipeline.STAGES` that reads a lakehouse table is covered: its input table is
written with its first column (the row id) dropped, or retyped to an integer.
"""

from __future__ import annotations

import shutil

import pytest
from pyspark.sql import functions as F

from webscale_rl import tables
from webscale_rl.cli import main
from webscale_rl.config import load_config
from webscale_rl.jobs.base import load_stage
from webscale_rl.jobs.pipeline import STAGES
from webscale_rl.schemas import tables as schemas

STAGES_WITH_INPUT = [s for s in STAGES if load_stage(s).INPUT is not None]


def run_cli(capsys, lakehouse, *args) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(["--lakehouse", str(lakehouse), "--set", "mlflow.enabled=false", *args])
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


def write_table(spark, path, df) -> None:
    df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(str(path))


def broken_input(spark, schema, how: str):
    """An empty table of `schema` with its first column dropped or typed int."""
    df = spark.createDataFrame([], schema)
    col = schema.fields[0].name
    if how == "missing":
        return df.drop(col), col
    return df.withColumn(col, F.lit(1).cast("int")), col


@pytest.fixture(scope="module")
def valid_tables(spark, tmp_path_factory):
    """A lakehouse holding every pipeline table, empty and well-formed (a stage may read more
    than its INPUT, e.g. verify joins annotations); each test copies it, then breaks one."""
    lakehouse = tmp_path_factory.mktemp("valid") / "lh"
    cfg = load_config(lakehouse=str(lakehouse))
    for logical, schema in schemas.BY_NAME.items():
        if logical != "rejects":
            write_table(spark, tables.table_ref(cfg, logical), spark.createDataFrame([], schema))
    return lakehouse


@pytest.mark.parametrize("how", ["missing", "wrong_type"])
@pytest.mark.parametrize("stage", STAGES_WITH_INPUT)
def test_stage_input_with_a_bad_column_is_refused_before_work(
    spark, tmp_path, capsys, valid_tables, stage, how
):
    module = load_stage(stage)
    lakehouse = tmp_path / "lh"
    cfg = load_config(lakehouse=str(lakehouse))
    shutil.copytree(valid_tables, lakehouse)
    shutil.rmtree(tables.table_ref(cfg, module.OUTPUT))
    df, col = broken_input(spark, schemas.BY_NAME[module.INPUT], how)
    write_table(spark, tables.table_ref(cfg, module.INPUT), df)

    rc, out = run_cli(capsys, lakehouse, "stage", stage)
    assert rc == 1, out[-2000:]
    assert f"'{col}'" in out and "Traceback" not in out, out[-2000:]
    assert not tables.exists(spark, tables.table_ref(cfg, module.OUTPUT))
    assert not tables.exists(spark, tables.table_ref(cfg, "rejects"))


def parquet_input(spark, tmp_path, text_col):
    rows = [("p1", "https://x.invalid/1", "A plain page about rivers and boats. " * 20, 7)]
    df = spark.createDataFrame(rows, "id string, url string, text string, extra int")
    if text_col == "missing":
        df = df.drop("text")
    elif text_col == "wrong_type":
        df = df.withColumn("text", F.lit(3).cast("int"))
    path = tmp_path / "input.parquet"
    df.write.mode("overwrite").parquet(str(path))
    return str(path)


def test_ingest_table_input_with_extra_columns_is_fine(spark, tmp_path, capsys):
    src = parquet_input(spark, tmp_path, "ok")
    rc, out = run_cli(
        capsys, tmp_path / "lh", "stage", "ingest", "--input", src, "--format", "parquet"
    )
    assert rc == 0, out[-2000:]
    docs = spark.read.format("delta").load(str(tmp_path / "lh" / "documents"))
    assert docs.count() == 1


@pytest.mark.parametrize("text_col", ["missing", "wrong_type"])
def test_ingest_table_input_without_a_string_text_column_is_refused(
    spark, tmp_path, capsys, text_col
):
    src = parquet_input(spark, tmp_path, text_col)
    rc, out = run_cli(
        capsys, tmp_path / "lh", "stage", "ingest", "--input", src, "--format", "parquet"
    )
    assert rc == 1
    assert "'text'" in out and "Traceback" not in out, out[-2000:]
    assert not (tmp_path / "lh" / "documents").exists()
