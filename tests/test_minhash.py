import random
import subprocess
import sys

import numpy as np
import pytest
from pydantic import ValidationError

from webscale_rl.config import load_config
from webscale_rl.udfs.text.minhash import (
    EMPTY,
    MinHashParams,
    band_hashes,
    band_hashes_batch,
    estimated_jaccard,
    jaccard,
    normalize_for_dedup,
    reference_clusters,
    shingle_set,
    shingles,
    signatures,
    text_hash,
)

VOCAB = [f"word{i}" for i in range(3000)]


def _text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choices(VOCAB, k=n_words))


def _replace_words(rng: random.Random, text: str, n: int) -> str:
    words = text.split()
    for i in rng.sample(range(len(words)), n):
        words[i] = f"new{rng.randrange(10**9)}"
    return " ".join(words)


def test_normalize_case_punctuation_digits_whitespace():
    assert normalize_for_dedup("Hello,   WORLD!\n It's 2024.") == "hello world its 0000"
    # NFKC folds the ligature and full-width digits; casefold maps ß to ss.
    assert normalize_for_dedup("ﬁne Straße ３") == "fine strasse 0"
    assert normalize_for_dedup("zero\u200bwidth") == "zerowidth"
    assert normalize_for_dedup("") == normalize_for_dedup(None) == ""


def test_identical_texts_have_identical_signatures_and_bands():
    text = _text(random.Random(1), 200)
    sigs = signatures([text, text])
    assert sigs.shape == (2, 112) and sigs.dtype == np.uint32
    assert np.array_equal(sigs[0], sigs[1])
    assert band_hashes(sigs[0]) == band_hashes(sigs[1])
    assert len(band_hashes(sigs[0])) == 14


def test_case_punctuation_and_digit_variants_map_together():
    base = "The 3 quick brown foxes jumped over 12 lazy dogs in 1999, said the report today."
    variant = (
        "the 7 QUICK brown foxes -- jumped over 45 lazy dogs in 2023; said the Report... today"
    )
    other = "A completely different sentence about cooking pasta with fresh tomatoes and basil."
    sigs = signatures([base, variant, other])
    assert np.array_equal(sigs[0], sigs[1])
    assert text_hash(base) == text_hash(variant) != text_hash(other)
    assert not np.array_equal(sigs[0], sigs[2])


def test_empty_text_has_no_bands_and_is_never_clustered():
    sigs = signatures(["", None, "   ...  "])
    assert np.all(sigs == EMPTY)
    assert band_hashes(sigs[0]) == []
    assert jaccard(shingle_set(""), shingle_set(None)) == 0.0
    clusters = reference_clusters(["a", "b", "c"], ["", "", "some words here"])
    assert clusters == {"a": "a", "b": "b", "c": "c"}


def test_short_text_is_one_shingle_and_word_order_matters():
    assert len(shingles("what is two plus two")) == 1
    assert len(shingles("two plus two")) == 1
    assert len(shingles("a b c d e f g")) == 3
    assert not np.array_equal(shingles("alpha beta gamma"), shingles("gamma beta alpha"))


def test_estimated_jaccard_tracks_true_jaccard():
    rng = random.Random(7)
    errors = []
    for n_replaced in range(0, 300, 15):
        a = _text(rng, 300)
        b = _replace_words(rng, a, n_replaced)
        true = jaccard(shingle_set(a), shingle_set(b))
        sig = signatures([a, b])
        errors.append(abs(estimated_jaccard(sig[0], sig[1]) - true))
    # 112 permutations: standard error <= sqrt(0.25 / 112) ~= 0.047.
    assert np.mean(errors) < 0.05
    assert max(errors) < 0.16


def test_batching_does_not_change_signatures():
    rng = random.Random(3)
    # The long text exceeds the block size, so it takes the running-minimum path.
    texts = [_text(rng, 50), _text(rng, 12000), "", _text(rng, 3), _text(rng, 400)]
    together = signatures(texts)
    alone = np.vstack([signatures([t]) for t in texts])
    assert np.array_equal(together, alone)


def test_signatures_are_stable_across_processes():
    text = _text(random.Random(5), 100)
    code = (
        "import sys; from webscale_rl.udfs.text.minhash import signatures, band_hashes;"
        "s = signatures([sys.argv[1]]); print(band_hashes(s[0]))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code, text],
            env={"PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert outputs == {f"{band_hashes(signatures([text])[0])}\n"}


def test_band_index_is_mixed_into_band_hash():
    sig = np.full((1, 112), 12345, dtype=np.uint32)
    assert len(set(band_hashes_batch(sig)[0].tolist())) == 14


def test_params_validation():
    assert MinHashParams().lsh_threshold == pytest.approx(0.719, abs=1e-3)
    with pytest.raises(ValidationError, match="bands \\* rows"):
        MinHashParams(num_perm=100, bands=14, rows=8)
    with pytest.raises(ValidationError):
        MinHashParams(unknown=1)
    with pytest.raises(ValueError, match="shape"):
        band_hashes_batch(np.zeros((2, 10), dtype=np.uint32))


def test_reference_clusters_groups_near_duplicates_only():
    rng = random.Random(11)
    a, b = _text(rng, 300), _text(rng, 300)
    ids = ["a", "a_near", "a_case", "b", "b_near"]
    texts = [a, _replace_words(rng, a, 3), a.upper(), b, _replace_words(rng, b, 2)]
    clusters = reference_clusters(ids, texts)
    assert clusters == {"a": "a", "a_near": "a", "a_case": "a", "b": "b", "b_near": "b"}


def test_verification_rejects_low_similarity_candidates():
    rng = random.Random(13)
    a = _text(rng, 300)
    far = _replace_words(rng, a, 20)  # ~0.5 shingle Jaccard
    assert 0.3 < jaccard(shingle_set(a), shingle_set(far)) < 0.7
    # One row per band makes any pair sharing one minimum a candidate.
    loose = {"num_perm": 112, "bands": 112, "rows": 1}
    unverified = reference_clusters(["x", "y"], [a, far], MinHashParams(**loose, verify=False))
    verified = reference_clusters(["x", "y"], [a, far], MinHashParams(**loose, verify=True))
    assert unverified == {"x": "x", "y": "x"}
    assert verified == {"x": "x", "y": "y"}


# Real question pairs that differ only in a number, a date or a unit: distinct questions with
# distinct answers, which digits -> 0 (or a high word overlap) would merge.
DISTINCT_QUESTIONS = [
    ("What is 15% of 80?", "What is 25% of 60?"),
    ("What is 3.5 multiplied by 4?", "What is 35 multiplied by 4?"),
    ("How many moles are in 18 grams of water?", "How many moles are in 36 grams of water?"),
    (
        "In which year did the Treaty of Westphalia end the Thirty Years' War, 1648 or 1658?",
        "In which year did the Treaty of Westphalia end the Thirty Years' War, 1648 or 1748?",
    ),
    (
        "On what date in March 1969 did the first Concorde prototype make its maiden flight?",
        "On what date in April 1969 did the first Concorde prototype make its maiden flight?",
    ),
    (
        "What is the boiling point of water at sea level in degrees Celsius?",
        "What is the boiling point of water at sea level in degrees Fahrenheit?",
    ),
    (
        "A car travels at 60 km per hour for 2.5 hours; how far does it travel?",
        "A car travels at 60 miles per hour for 2.5 hours; how far does it travel?",
    ),
    ("What is the value of -5 + 12?", "What is the value of 5 + 12?"),
]
QUESTION_PARAMS = MinHashParams(text_column="question", ngram=2, verify_threshold=0.7)


@pytest.mark.parametrize(("a", "b"), DISTINCT_QUESTIONS)
def test_questions_differing_in_numbers_dates_or_units_are_not_duplicates(a, b):
    keep = QUESTION_PARAMS.model_copy(update={"keep_digits": True})
    assert text_hash(a, keep_digits=True) != text_hash(b, keep_digits=True)
    clusters = reference_clusters(["a", "b"], [a, b], keep)
    assert clusters == {"a": "a", "b": "b"}, (a, b)


def test_keep_digits_still_merges_true_duplicates_and_documents_keep_todays_rule():
    keep = QUESTION_PARAMS.model_copy(update={"keep_digits": True})
    a = "What is 15% of 80?"
    b = "what is 15 % of 80"
    assert text_hash(a, keep_digits=True) == text_hash(b, keep_digits=True)
    assert normalize_for_dedup("It costs 1,000 or -3.5 units", keep_digits=True) == (
        "it costs 1000 or minus3point5 units"
    )
    long_a = (
        "According to the report, how many bridges cross the river in the old town of the city?"
    )
    long_b = "According to the report how many bridges cross the river in the old town of the city"
    assert reference_clusters(["a", "b"], [long_a, long_b], keep) == {"a": "a", "b": "a"}
    # Documents: digits still map to 0 unless a parameter says otherwise; qa_dedup says so.
    assert MinHashParams().keep_digits is False
    assert text_hash("Page 1 of 12") == text_hash("Page 3 of 45")
    assert load_config().qa_dedup.keep_digits is True
