"""The filter stage over Spark: language and quality verdicts, stats kept, every row accounted for."""

import json
import math
import random

import pandas as pd
import pytest
from pyspark.sql import functions as F

from webscale_rl import tables
from webscale_rl.audit import audit_tables
from webscale_rl.jobs import filter as filter_job
from webscale_rl.jobs import ingest
from webscale_rl.jobs.filter import LANG_DETAIL, LANG_REASON, with_language_verdict
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


def verdicts(spark, rows, params):
    """(lang, lang_score, text) rows -> [(reason, detail, text)] after `with_language_verdict`."""
    df = spark.createDataFrame(rows, "lang string, lang_score double, text string")
    out = with_language_verdict(df, params).select(LANG_REASON, LANG_DETAIL, "text")
    return [tuple(r) for r in out.collect()]


NAN = float("nan")
# (lang, score) -> the (reason, detail) the pandas verdict gave before it moved to Spark SQL: a
# null score reached pandas as NaN ("nan"), a null language as None ("None").
KEEP_EN = [
    (("en", 0.9), (None, None)),
    (("en", 0.5), (None, None)),
    (("en", None), (None, None)),
    (("en", NAN), (None, None)),
    (("de", 0.99), ("lang_not_kept", "lang=de score=0.99")),
    (("fr", 1.0), ("lang_not_kept", "lang=fr score=1.0")),
    (("de", 0.0), ("lang_not_kept", "lang=de score=0.0")),
    (("de", 0.12345), ("lang_not_kept", "lang=de score=0.123")),
    (("de", 0.0005), ("lang_not_kept", "lang=de score=0.001")),  # Spark's round(): 0.0
    (("de", 0.0625), ("lang_not_kept", "lang=de score=0.062")),  # an exact tie: to even
    (("de", None), ("lang_not_kept", "lang=de score=nan")),
    ((None, None), ("lang_not_kept", "lang=None score=nan")),
    ((None, 0.97), ("lang_not_kept", "lang=None score=0.97")),
    (("en", 0.2), ("lang_low_confidence", "lang=en score=0.200 < 0.5")),
    (("en", 0.4995), ("lang_low_confidence", "lang=en score=0.499 < 0.5")),
    (("en", 0.0005), ("lang_low_confidence", "lang=en score=0.001 < 0.5")),
    (("en", 0.0), ("lang_low_confidence", "lang=en score=0.000 < 0.5")),
    (("en", 0.3125), ("lang_low_confidence", "lang=en score=0.312 < 0.5")),
]
KEEP_ANY = [
    (("de", 0.9), (None, None)),
    ((None, None), (None, None)),
    (("de", 0.25), ("lang_low_confidence", "lang=de score=0.250 < 0.3")),
    ((None, 0.1), ("lang_low_confidence", "lang=None score=0.100 < 0.3")),
]


@pytest.mark.parametrize(
    "params, cases",
    [
        (LangIdParams(keep_languages=["en"], min_confidence=0.5), KEEP_EN),
        (LangIdParams(keep_languages=None, min_confidence=0.3), KEEP_ANY),
    ],
    ids=["keep_en", "keep_any"],
)
def test_language_verdict(spark, params, cases):
    """Reasons and details as the pandas verdict wrote them; a rejected row loses its text."""
    rows = [(lang, score, f"text {i}") for i, ((lang, score), _) in enumerate(cases)]
    got = verdicts(spark, rows, params)
    want = [(r, d, f"text {i}" if r is None else None) for i, (_, (r, d)) in enumerate(cases)]
    assert got == want


def test_score_text_is_pythons_at_ties_and_their_neighbours(spark):
    """The detail's score is Python's text of the float: `str(round(s, 3))` and `f"{s:.3f}"`,
    half to even on the exact binary value, also at every tie k/1000 + 0.0005 in [0, 1] and at
    the doubles next to each (where Spark's `round`/`format_number` can differ)."""
    rng = random.Random(0)
    ties = [(2 * k + 1) / 2000 for k in range(1000)]
    scores = [0.0, 1.0, 1e-300, 5e-324, 0.9999999, *ties]
    scores += [math.nextafter(t, d) for t in ties for d in (0.0, 1.0)]
    scores += [rng.random() for _ in range(2000)] + [rng.random() ** 6 for _ in range(500)]
    scores += [-0.0, -0.25, 1.5, 2.675, 1234.0625, float("inf"), float("-inf")]  # no probabilities
    rows = [("de", s, "x") for s in scores] + [("en", s, "x") for s in scores]
    params = LangIdParams(keep_languages=["en"], min_confidence=1.0)
    got = [d for _, d, _ in verdicts(spark, rows, params)]
    want = [f"lang=de score={round(s, 3)}" for s in scores]
    want += [f"lang=en score={s:.3f} < 1.0" if s < 1.0 else None for s in scores]
    assert got == want


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
    cfg = ingested(spark, make_cfg, tmp_path, rows)
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
    docs = tables.read(spark, tables.table_ref(cfg, "documents"))
    de = docs.where(F.col("url").endswith("/de")).first()
    assert details["lang_not_kept"] == f"lang={de.lang} score={round(de.lang_score, 3)}"
    audit = audit_tables(spark, cfg, "filter")
    assert (audit.units, audit.missing) == (4, 0)
    # a rerun does nothing new
    again = filter_job.run(spark, cfg)
    assert (again.rows_in, again.rows_out, again.skipped) == (0, 0, 0)  # nothing new to read


def test_language_rejects_reach_the_udf_without_their_text(spark, make_cfg, tmp_path, monkeypatch):
    """The language verdict is decided in Spark SQL before the pandas UDF: a document it rejects
    is handed to the UDF without its text (the workers write what they see to a file) and is
    still rejected as `lang_not_kept`."""
    seen = tmp_path / "udf_rows.jsonl"
    real_row_stage = filter_job.row_stage

    def recording_row_stage(*args, transform, **kwargs):
        def record(pdf):  # runs in the Python workers: a closure, pickled by value
            with open(seen, "a", encoding="utf-8") as fh:
                for url, text in zip(pdf["url"], pdf["text"], strict=True):
                    fh.write(json.dumps({"url": url, "text": text}) + "\n")
            return transform(pdf)

        return real_row_stage(*args, transform=record, **kwargs)

    monkeypatch.setattr(filter_job, "row_stage", recording_row_stage)
    german = "Die Donau ist der zweitlängste Fluss Europas und fließt durch zehn Länder. " * 20
    rows = [
        {"id": "good", "url": "https://e.invalid/good", "text": GOOD},
        {"id": "de", "url": "https://e.invalid/de", "text": german},
    ]
    cfg = ingested(spark, make_cfg, tmp_path, rows)
    result = filter_job.run(spark, cfg)
    assert (result.rows_in, result.rows_out, result.rejects) == (2, 1, {"lang_not_kept": 1})
    udf_rows = [json.loads(line) for line in seen.read_text(encoding="utf-8").splitlines()]
    texts = {r["url"].rsplit("/", 1)[1]: r["text"] for r in udf_rows}
    assert texts.keys() == {"good", "de"}, udf_rows
    assert texts["de"] is None, "a language-rejected document's text was sent to pandas"
    assert texts["good"].startswith("The Danube")


def ingested(spark, make_cfg, tmp_path, rows):
    """A config whose `documents` table holds `rows` (id, url, text), ingested from Parquet."""
    src = tmp_path / "docs.parquet"
    pd.DataFrame(rows).to_parquet(src)
    cfg = make_cfg()
    cfg.ingest.input, cfg.ingest.format = [str(src)], "parquet"
    ingest.run(spark, cfg)
    return cfg
