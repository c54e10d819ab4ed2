"""The filter stage over Spark: language and quality verdicts, stats kept, every row accounted for."""

import pandas as pd
from pyspark.sql import functions as F

from webscale_rl import tables
from webscale_rl.audit import audit_tables
from webscale_rl.jobs import filter as filter_job
from webscale_rl.jobs import ingest
from webscale_rl.jobs.filter import language_verdict
from webscale_rl.udfs.text.langid import LangIdParams

GOOD = (
    "The Danube is the second-longest river in Europe. It flows through ten countries and "
    "four capital cities, including Vienna and Budapest. The river is about 2,850 kilometres "
    "long and drains an area of 801,000 square kilometres. Ships have carried grain, timber "
    "and wine along its course for centuries, and its delta is one of the largest wetlands on "
    "the continent. Today the river is also a popular route for cyclists and cruise boats.\n"
    "Its source lies in the Black Forest of Germany, where two small streams, the Brigach and "
    "the Breg, meet at the town of Donaueschingen. From there the water heads east across "
    "Bavaria before entering Austria near Passau. Engineers built many locks and dams in the "
    "twentieth century, which made navigation easier but changed the habitat of fish such as "
    "the beluga sturgeon. Conservation groups now work with governments to restore side arms "
    "and floodplain forests.\n"
    "In Hungary the river bends sharply south at a place called the Danube Bend. Budapest grew "
    "from two older settlements, Buda on the hilly western bank and Pest on the flat eastern "
    "plain, which were united in 1873. Further downstream the Iron Gates gorge forms part of "
    "the border between Serbia and Romania, and a large hydroelectric plant there opened in "
    "1972. The final stretch crosses the plains of Romania and Bulgaria before reaching the "
    "Black Sea through three main channels."
)


def test_language_verdict():
    p = LangIdParams(keep_languages=["en"], min_confidence=0.5)
    assert language_verdict("en", 0.9, p) == (True, None, None)
    assert language_verdict("de", 0.99, p)[1] == "lang_not_kept"
    assert language_verdict("en", 0.2, p)[1] == "lang_low_confidence"


def test_filter_stage(spark, make_cfg, tmp_path):
    rows = [
        {"id": "good", "url": "https://e.invalid/good", "text": GOOD},
        {"id": "short", "url": "https://e.invalid/short", "text": "Too short to be a page."},
        {
            "id": "de",
            "url": "https://e.invalid/de",
            "text": "Die Donau ist der zweitlängste Fluss Europas und fließt durch zehn Länder. "
            * 20,
        },
        {
            "id": "lorem",
            "url": "https://e.invalid/lorem",
            "text": GOOD + " Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
        },
    ]
    src = tmp_path / "docs.parquet"
    pd.DataFrame(rows).to_parquet(src)
    cfg = make_cfg()
    cfg.ingest.input, cfg.ingest.format = [str(src)], "parquet"
    ingest.run(spark, cfg)
    result = filter_job.run(spark, cfg)
    assert (result.rows_in, result.rows_out) == (4, 1)
    assert result.rejects == {
        "gopher_quality:word_count": 1,
        "lang_not_kept": 1,
        "c4:lorem_ipsum": 1,
    }
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
