"""The filter stage over Spark: language and quality verdicts, stats kept, every row accounted for."""

import pandas as pd
from pyspark.sql import functions as F

from webscale_rl import tables
from webscale_rl.audit import audit_tables
from webscale_rl.jobs import filter as filter_job
from webscale_rl.jobs import ingest
from webscale_rl.jobs.filter import language_verdict
from webscale_rl.udfs.langid import LangIdParams

GOOD = (
    "The Danube is the second-longest river in Europe. It flows through ten countries and "
    "four capital cities, including Vienna and Budapest. The river is about 2,850 kilometres "
    "long and drains an area of 801,000 square kilometres. Ships have carried grain, timber "
    "and wine along its course for centuries, and its delta is one of the largest wetlands on "
    "the continent. Today the river is also a popular route for cyclists and cruise boats. "
)


def test_language_verdict():
    p = LangIdParams(keep_languages=["en"], min_confidence=0.5)
    assert language_verdict("en", 0.9, p) == (True, None, None)
    assert language_verdict("de", 0.99, p)[1] == "lang_not_kept"
    assert language_verdict("en", 0.2, p)[1] == "lang_low_confidence"


def test_filter_stage(spark, make_cfg, tmp_path):
    rows = [
        {"id": "good", "url": "https://e.invalid/good", "text": GOOD * 3},
        {"id": "short", "url": "https://e.invalid/short", "text": "Too short to be a page."},
        {"id": "de", "url": "https://e.invalid/de", "text": "Die Donau ist der zweitlängste Fluss Europas und fließt durch zehn Länder. " * 20},
        {"id": "lorem", "url": "https://e.invalid/lorem", "text": (GOOD + " Lorem ipsum dolor sit amet. ") * 3},
    ]
    src = tmp_path / "docs.parquet"
    pd.DataFrame(rows).to_parquet(src)
    cfg = make_cfg()
    cfg.ingest.input, cfg.ingest.format = [str(src)], "parquet"
    ingest.run(spark, cfg)
    result = filter_job.run(spark, cfg)
    assert (result.rows_in, result.rows_out) == (4, 1)
    assert result.rejects == {"gopher_quality:word_count": 1, "lang_not_kept": 1, "c4:lorem_ipsum": 1}
    kept = tables.read(spark, tables.table_ref(cfg, "filtered")).collect()
    assert kept[0].url == "https://e.invalid/good"
    assert kept[0].quality_stats["word_count"] > 100
    rej = tables.read(spark, tables.table_ref(cfg, "rejects")).where(F.col("stage") == "filter")
    details = {r.reason: r.detail for r in rej.collect()}
    assert "< 50" in details["gopher_quality:word_count"]
    audit = audit_tables(spark, cfg, "filter")
    assert (audit.units, audit.missing) == (4, 0)
    # a rerun does nothing new
    again = filter_job.run(spark, cfg)
    assert (again.rows_in, again.rows_out, again.skipped) == (4, 0, 4)
