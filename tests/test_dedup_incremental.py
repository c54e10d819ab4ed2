"""Dedup over runs: earlier decisions are final, later runs hash only new rows.

A second run on a grown input must never reject a row an earlier run kept (it would then sit
both in the output and in `rejects`): a new row that duplicates a kept one is the one rejected,
also when it bridges two kept rows into one cluster.
"""

import json

import pytest

from webscale_rl import tables
from webscale_rl.jobs import dedup
from webscale_rl.schemas import tables as schemas
from webscale_rl.udfs.text.minhash import reference_clusters

WORDS = (
    "which medieval stone bridge crossed the narrow river below the old cathedral before "
    "the great winter flood destroyed its wooden harbour walls and most merchant houses nearby"
).split()


def bridged(words):
    """(a, c, b): a and c are not duplicates of each other, b (longer) is one of both."""
    cut = len(words) * 15 // 100 + 1
    return " ".join(words[:-cut]), " ".join(words[cut:]), " ".join(words)


def append_rows(spark, cfg, logical, schema, rows):
    from pyspark.sql import functions as F

    cols = list(rows[0])
    df = spark.createDataFrame(
        [tuple(r[c] for c in cols) for r in rows], ", ".join(f"{c} string" for c in cols)
    )
    df = df.select(
        [
            F.col(f.name).cast(f.dataType)
            if f.name in cols
            else F.lit(None).cast(f.dataType).alias(f.name)
            for f in schema.fields
        ]
    )
    df.write.format("delta").mode("append").save(tables.table_ref(cfg, logical))


def outcome(spark, cfg, target):
    out = tables.read(spark, tables.table_ref(cfg, target.output)).toPandas()
    rej = tables.read(spark, tables.table_ref(cfg, "rejects")).toPandas()
    rej = rej[rej["stage"] == target.stage]
    got = {r.row_id: (r.reason, json.loads(r.detail)["survivor"]) for r in rej.itertuples()}
    return set(out[target.id_column]), got


def check_conserved(kept, rejected, n_rows):
    assert not kept & set(rejected), f"both kept and rejected: {kept & set(rejected)}"
    assert len(kept) + len(rejected) == n_rows


def record_checkpoints(monkeypatch) -> list[str]:
    """The paths `Checkpoints.save` writes, each checked to exist when written."""
    import os

    from webscale_rl import components

    written = []
    save = components.Checkpoints.save

    def recording_save(self, df):
        out = save(self, df)
        written.append(self._paths[-1])
        assert os.path.isdir(written[-1])
        return out

    monkeypatch.setattr(components.Checkpoints, "save", recording_save)
    return written


def test_questions_second_run_keeps_earlier_decisions(spark, cfg, monkeypatch):
    import os

    written = record_checkpoints(monkeypatch)
    params = cfg.qa_dedup
    a, c, b = bridged(WORDS)
    clusters = reference_clusters(["a", "b", "c"], [a, b, c], params)
    assert len(set(clusters.values())) == 1  # b links a and c ...
    assert len(set(reference_clusters(["a", "c"], [a, c], params).values())) == 2  # ... apart
    other = "How many locks does the canal between the two northern lakes have today?"
    first = [
        {"qa_id": "q_a", "doc_id": "d1", "question": a + "?"},
        {"qa_id": "q_c", "doc_id": "d2", "question": c + "?"},
        {"qa_id": "q_e", "doc_id": "d3", "question": other},
    ]
    append_rows(spark, cfg, "qa_verified", schemas.QA_VERIFIED, first)
    dedup.run(spark, cfg, target=dedup.QUESTIONS)
    kept, rejected = outcome(spark, cfg, dedup.QUESTIONS)
    assert kept == {"q_a", "q_c", "q_e"} and rejected == {}

    # Second run: b (longer) bridges a and c; f is a longer near copy of e; g an exact copy of
    # a with more punctuation (longer too). Under keep=longest each would win a fresh run.
    second = [
        {"qa_id": "q_0b", "doc_id": "d4", "question": b + "?"},
        {"qa_id": "q_0f", "doc_id": "d5", "question": other.replace("today", "today, roughly")},
        {"qa_id": "q_0g", "doc_id": "d6", "question": "¿" + a.upper() + "?!"},
    ]
    append_rows(spark, cfg, "qa_verified", schemas.QA_VERIFIED, second)
    result = dedup.run(spark, cfg, target=dedup.QUESTIONS)
    kept, rejected = outcome(spark, cfg, dedup.QUESTIONS)

    check_conserved(kept, rejected, len(first) + len(second))
    assert kept == {"q_a", "q_c", "q_e"}
    assert rejected["q_0b"][0] == "near_duplicate" and rejected["q_0b"][1] in {"q_a", "q_c"}
    assert rejected["q_0f"] == ("near_duplicate", "q_e")
    assert rejected["q_0g"] == ("exact_duplicate", "q_a")
    assert (result.rows_in, result.rows_out, result.rejected, result.skipped) == (6, 0, 3, 3)

    # Connected components kept their rounds as files under `_staging` (reliable storage, not
    # executor-local blocks that a lost executor takes with it) and deleted them at the end.
    assert len(written) >= 3  # the edges, the undirected graph, at least one round of labels
    assert all(p.startswith(tables.staging_root(cfg)) for p in written)
    assert not any(os.path.exists(p) for p in written)


def test_documents_second_run_keeps_earlier_decisions_and_noop_hashes_nothing(
    spark, cfg, monkeypatch
):
    words = (WORDS * 8)[: len(WORDS) * 8 - 3]
    # Letters, not digits (digits normalise to 0): every word distinct, so shingles are too.
    words = [w + chr(ord("a") + i // len(WORDS)) for i, w in enumerate(words)]
    a, c, b = bridged(words)
    ids = ["d_a", "d_0b", "d_c"]
    assert len(set(reference_clusters(ids, [a, b, c], cfg.dedup).values())) == 1
    assert len(set(reference_clusters(["d_a", "d_c"], [a, c], cfg.dedup).values())) == 2

    append_rows(
        spark,
        cfg,
        "filtered",
        schemas.FILTERED,
        [{"doc_id": "d_a", "text": a}, {"doc_id": "d_c", "text": c}],
    )
    dedup.run(spark, cfg)
    append_rows(spark, cfg, "filtered", schemas.FILTERED, [{"doc_id": "d_0b", "text": b}])
    dedup.run(spark, cfg)
    kept, rejected = outcome(spark, cfg, dedup.DOCUMENTS)
    check_conserved(kept, rejected, 3)
    assert kept == {"d_a", "d_c"} and set(rejected) == {"d_0b"}

    # Nothing new: no row is hashed, nothing is committed anywhere.
    hashed = []
    monkeypatch.setattr(dedup, "_text_hash_udf", lambda *a: hashed.append(a))
    sig = dedup.signatures_ref(cfg, dedup.DOCUMENTS, cfg.dedup)
    versions = [tables.version(spark, r) for r in (sig, tables.table_ref(cfg, "deduped"))]
    again = dedup.run(spark, cfg)
    assert hashed == []
    assert (again.rows_in, again.rows_out, again.rejected, again.skipped) == (0, 0, 0, 0)
    assert [tables.version(spark, r) for r in (sig, tables.table_ref(cfg, "deduped"))] == versions


def test_lost_signature_table_is_rebuilt_from_decided_rows(spark, cfg):
    """A lakehouse deduped before the side table existed (or with other hashing parameters):
    the decided rows are hashed once and still win over new duplicates."""
    params = cfg.qa_dedup
    a, c, b = bridged(WORDS)
    append_rows(
        spark,
        cfg,
        "qa_verified",
        schemas.QA_VERIFIED,
        [
            {"qa_id": "q_a", "doc_id": "d1", "question": a},
            {"qa_id": "q_c", "doc_id": "d2", "question": c},
        ],
    )
    dedup.run(spark, cfg, target=dedup.QUESTIONS)
    tables.drop_path(spark, dedup.signatures_ref(cfg, dedup.QUESTIONS, params))
    append_rows(
        spark,
        cfg,
        "qa_verified",
        schemas.QA_VERIFIED,
        [{"qa_id": "q_0b", "doc_id": "d3", "question": b}],
    )
    dedup.run(spark, cfg, target=dedup.QUESTIONS)
    kept, rejected = outcome(spark, cfg, dedup.QUESTIONS)
    check_conserved(kept, rejected, 3)
    assert kept == {"q_a", "q_c"} and set(rejected) == {"q_0b"}


@pytest.mark.slow  # three crash-then-rerun runs of dedup (~70 s): make test-slow
@pytest.mark.parametrize("point", ["staged", "rejects", "output"])
def test_crash_in_commit_then_rerun_gives_the_uninterrupted_tables(
    spark, make_cfg, tmp_path, point
):
    """A run that dies at a commit point, rerun on the same input, leaves the tables an
    uninterrupted run leaves (rejects naming a survivor not yet in the output count)."""
    rows = [
        {"qa_id": "q_a", "doc_id": "d1", "question": bridged(WORDS)[0]},
        {"qa_id": "q_b", "doc_id": "d2", "question": bridged(WORDS)[2]},
        {"qa_id": "q_c", "doc_id": "d3", "question": bridged(WORDS)[1]},
        {"qa_id": "q_d", "doc_id": "d4", "question": bridged(WORDS)[2].upper()},
    ]

    def snapshot(cfg):
        out = tables.read(spark, tables.table_ref(cfg, "qa_deduped")).toPandas()
        rej = tables.read(spark, tables.table_ref(cfg, "rejects")).toPandas()
        return (
            sorted(out[["qa_id", "cluster_id", "cluster_size"]].itertuples(index=False)),
            sorted(rej[["row_id", "reason", "detail"]].itertuples(index=False)),
        )

    clean = make_cfg(lakehouse=str(tmp_path / "clean"))
    append_rows(spark, clean, "qa_verified", schemas.QA_VERIFIED, rows)
    dedup.run(spark, clean, target=dedup.QUESTIONS)

    crashed = make_cfg(lakehouse=str(tmp_path / "crashed"))
    append_rows(spark, crashed, "qa_verified", schemas.QA_VERIFIED, rows)

    class Crash(BaseException):
        pass

    def hook(stage, at):
        if at == point:
            raise Crash(at)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tables, "_crash_point", hook)
        with pytest.raises(Crash):
            dedup.run(spark, crashed, target=dedup.QUESTIONS)
    dedup.run(spark, crashed, target=dedup.QUESTIONS)
    assert snapshot(crashed) == snapshot(clean)


def test_a_new_row_in_a_big_old_bucket_costs_edges_for_new_rows_only(spark):
    """A new row whose id is the smallest of a bucket of many earlier rows (shared boilerplate)
    gets one edge to the bucket's smallest old row, not one from every old row."""
    schema = "id string, band long, h long"
    new = spark.createDataFrame([("n0", 3, 7), ("n1", 3, 7), ("n2", -1, 9)], schema)
    old = spark.createDataFrame([(f"o{i:03d}", 3, 7) for i in range(50)] + [("o9", -1, 9)], schema)
    edges = {tuple(r) for r in dedup.candidate_edges(new, old).collect()}
    assert edges == {
        ("n1", "n0", True, True, False),  # new rows among themselves: the star
        ("n0", "o000", True, False, False),  # each new row to the smallest old row
        ("n1", "o000", True, False, False),
        ("n2", "o9", True, False, True),  # a shared text hash: exact, no verification
    }


def test_first_run_edges_are_the_star_of_each_bucket(spark):
    schema = "id string, band long, h long"
    new = spark.createDataFrame([("b", 0, 1), ("a", 0, 1), ("c", 0, 1), ("c", 1, 2)], schema)
    empty = spark.createDataFrame([], schema)
    edges = {tuple(r) for r in dedup.candidate_edges(new, empty).collect()}
    assert edges == {("b", "a", True, True, False), ("c", "a", True, True, False)}
