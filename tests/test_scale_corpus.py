"""Smoke test of the scale benchmark's corpus generator (bench/scale.py): no Spark."""

from conftest import load_bench


def test_corpus_has_the_planned_kinds_and_is_deterministic(shared_data):
    scale = load_bench("scale")
    docs = scale.make_docs(50)
    assert len(docs) == 50
    assert len({d["id"] for d in docs}) == 50
    kinds = {d["kind"] for d in docs}
    assert {"original", "non_en"} <= kinds
    assert all(d["text"] for d in docs)
    assert [d["text"] for d in scale.make_docs(5, start=20)] == [d["text"] for d in docs[20:25]]
    exact = [d for d in docs if d["kind"] == "exact_dup"]
    originals = {d["text"] for d in docs} | {
        scale._original(j, 0, scale.pools()[0]) for j in range(50)
    }
    assert all(d["text"] in originals for d in exact)
