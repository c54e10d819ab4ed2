"""The dedup job on local Spark + Delta: real pages with planted exact and near duplicates."""

import json
import random

import pytest

from webscale_rl import tables
from webscale_rl.errors import WebscaleError
from webscale_rl.jobs import dedup
from webscale_rl.schemas import tables as schemas
from webscale_rl.udfs.text.minhash import MinHashParams, jaccard, reference_clusters, shingle_set

BOILERPLATE = " ".join(
    f"Footer line {i}: contact us, privacy policy, imprint, cookie settings and newsletter."
    for i in range(12)
)


@pytest.fixture(scope="module")
def pages(shared_data):
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    out = []
    with open(shared_data / "web" / "web_pages_small.warc.gz", "rb") as stream:
        for record in ArchiveIterator(stream, record_types=WarcRecordType.response):
            body = record.reader.read()
            text = extract_plain_text(bytes_to_str(body, detect_encoding(body)), main_content=True)
            if 80 <= len(text.split()) <= 1500:
                out.append(text)
    return out[:10]


def near_copy(text: str, seed: int) -> str:
    """Two words replaced: Jaccard well above 0.8 on a page of 80+ words."""
    rng = random.Random(seed)
    words = text.split()
    for i in rng.sample(range(len(words)), 2):
        words[i] = "CHANGED"
    return " ".join(words)


def corpus(pages):
    """(rows as (doc_id, text), expected {doc_id: (reason, survivor)} of the rejected ones)."""
    rows = [(f"d{i:02d}", t) for i, t in enumerate(pages[:6])]
    # Planted: an exact duplicate (only case and punctuation differ, shorter so not kept),
    # a near duplicate of the same page, and a near duplicate of another page.
    exact = pages[0].replace(",", "").replace(".", "").lower()
    rows += [
        ("x_exact", exact),
        ("x_near", near_copy(pages[0], 1)),
        ("a_near", near_copy(pages[1], 2)),
    ]
    # Two distinct pages sharing a long boilerplate footer: both must stay.
    rows += [("b1", pages[6] + "\n" + BOILERPLATE), ("b2", pages[7] + "\n" + BOILERPLATE)]
    longest = {k: t for k, t in rows}
    survivor_0 = max(["d00", "x_near"], key=lambda k: (len(longest[k]), [-ord(c) for c in k]))
    survivor_1 = max(["d01", "a_near"], key=lambda k: (len(longest[k]), [-ord(c) for c in k]))
    expected = {
        "x_exact": ("exact_duplicate" if survivor_0 == "d00" else "near_duplicate", survivor_0),
        ("x_near" if survivor_0 == "d00" else "d00"): ("near_duplicate", survivor_0),
        ("a_near" if survivor_1 == "d01" else "d01"): ("near_duplicate", survivor_1),
    }
    return rows, expected


def write_table(spark, cfg, logical, schema, rows_by_column):
    from pyspark.sql import functions as F

    cols = list(rows_by_column[0])
    df = spark.createDataFrame(
        [tuple(r[c] for c in cols) for r in rows_by_column],
        ", ".join(f"{c} string" for c in cols),
    )
    df = df.select(
        [
            F.col(f.name).cast(f.dataType)
            if f.name in cols
            else F.lit(None).cast(f.dataType).alias(f.name)
            for f in schema.fields
        ]
    )
    df.write.format("delta").save(tables.table_ref(cfg, logical))


def outcome(spark, cfg, target):
    out = tables.read(spark, tables.table_ref(cfg, target.output)).toPandas()
    rej = tables.read(spark, tables.table_ref(cfg, "rejects")).toPandas()
    rej = rej[rej["stage"] == target.stage]
    return out, rej


def test_documents_dedup_finds_planted_duplicates_and_matches_reference(spark, cfg, pages):
    assert len(pages) >= 8
    rows, expected = corpus(pages)
    assert jaccard(shingle_set(rows[-1][1]), shingle_set(rows[-2][1])) < 0.8  # boilerplate pair
    write_table(
        spark, cfg, "filtered", schemas.FILTERED, [{"doc_id": i, "text": t} for i, t in rows]
    )
    params = MinHashParams()

    result = dedup.run(spark, cfg, params)
    out, rej = outcome(spark, cfg, dedup.DOCUMENTS)

    got = {r.row_id: (r.reason, json.loads(r.detail)["survivor"]) for r in rej.itertuples()}
    assert got == expected
    assert {"b1", "b2"} <= set(out["doc_id"])
    assert len(out) + len(rej) == len(rows)
    assert result.rejects == {
        reason: sum(1 for r, _ in expected.values() if r == reason)
        for reason in {r for r, _ in expected.values()}
    }

    # Clusters equal the pure reference; cluster_id and cluster_size are in the output.
    cluster_of = dict(zip(out["doc_id"], out["cluster_id"], strict=True))
    cluster_of.update({r.row_id: json.loads(r.detail)["cluster_id"] for r in rej.itertuples()})
    reference = reference_clusters([i for i, _ in rows], [t for _, t in rows], params)
    assert cluster_of == reference
    size_of = dict(zip(out["doc_id"], out["cluster_size"], strict=True))
    assert size_of[expected["x_exact"][1]] == 3
    assert size_of["b1"] == size_of["b2"] == 1

    # A rerun on the same input adds nothing and rejects nothing new: every row was decided.
    again = dedup.run(spark, cfg, params)
    assert (again.rows_in, again.rows_out, again.rejected) == (0, 0, 0)  # nothing new read
    out2, rej2 = outcome(spark, cfg, dedup.DOCUMENTS)
    assert len(out2) == len(out) and len(rej2) == len(rej)


def test_question_dedup_uses_the_same_job(spark, cfg):
    questions = {
        "q1": "According to the article, how many bridges cross the river in the old town?",
        "q2": "according to the article how many bridges cross the river in the old town",
        "q3": "According to the article, how many bridges cross the river in the new town?",
        "q4": "Which enzyme unwinds the DNA double helix ahead of the replication fork?",
    }
    rows = [{"qa_id": k, "doc_id": f"d-{k}", "question": q} for k, q in questions.items()]
    write_table(spark, cfg, "qa_verified", schemas.QA_VERIFIED, rows)
    # Short texts: 2-word shingles, keep the smallest id.
    params = MinHashParams(
        text_column="question", ngram=2, keep="smallest_id", verify_threshold=0.7
    )

    dedup.run(spark, cfg, params, target=dedup.QUESTIONS)
    out, rej = outcome(spark, cfg, dedup.QUESTIONS)

    assert sorted(out["qa_id"]) == ["q1", "q4"]
    got = {r.row_id: (r.reason, json.loads(r.detail)["survivor"]) for r in rej.itertuples()}
    assert got == {"q2": ("exact_duplicate", "q1"), "q3": ("near_duplicate", "q1")}


def test_missing_text_column_is_a_clear_error(spark, cfg):
    write_table(spark, cfg, "filtered", schemas.FILTERED, [{"doc_id": "a", "text": "x y z"}])
    with pytest.raises(WebscaleError, match="no column"):
        dedup.run(spark, cfg, MinHashParams(text_column="body"))
