import gzip
import json
import math
import random
from collections import Counter
from itertools import islice, product
from string import ascii_lowercase

import pytest
from pydantic import ValidationError

from webscale_rl.udfs.text.quality import (
    QualityParams,
    c4_quality,
    check_quality,
    fineweb_quality,
    gopher_quality,
    gopher_repetition,
)

# Thresholds of each family that accept None (disabled); used to test one rule at a time.
FAMILY_FIELDS = {
    "gopher_quality": [
        "gopher_min_words",
        "gopher_max_words",
        "gopher_min_mean_word_length",
        "gopher_max_mean_word_length",
        "gopher_max_symbol_word_ratio",
        "gopher_max_bullet_lines_ratio",
        "gopher_max_ellipsis_lines_ratio",
        "gopher_min_alpha_words_ratio",
        "gopher_min_stop_words",
    ],
    "gopher_repetition": [
        "gopher_max_dup_line_frac",
        "gopher_max_dup_para_frac",
        "gopher_max_dup_line_char_frac",
        "gopher_max_dup_para_char_frac",
    ],
    "fineweb": [
        "fineweb_min_line_punct_ratio",
        "fineweb_max_short_line_ratio",
        "fineweb_max_char_dup_ratio",
        "fineweb_max_list_ratio",
    ],
}
NGRAM_FIELDS = ("gopher_top_ngram_max_char_frac", "gopher_dup_ngram_max_char_frac")


def only(family: str, **on) -> QualityParams:
    """Params running one family with every threshold off except those given in `on`."""
    values = {name: None for name in FAMILY_FIELDS.get(family, [])}
    if family == "gopher_repetition":
        values.update({name: {} for name in NGRAM_FIELDS})
    values.update(on)
    return QualityParams(enabled_rules=[family], **values)


def filler(n: int, length: int = 5) -> list[str]:
    """n distinct lowercase words of one length (no stop words for length 5)."""
    return ["".join(p) for p in islice(product(ascii_lowercase, repeat=length), n)]


def verdict(text: str, params: QualityParams) -> tuple[bool, str | None]:
    result = check_quality(text, params)
    return result.keep, result.reason


GQ = QualityParams(enabled_rules=["gopher_quality"])


# ---------------------------------------------------------------- Gopher quality


def words_doc(n: int) -> str:
    return " ".join(["the", "and", *filler(n - 2)]) + "."


@pytest.mark.parametrize("n, keep", [(49, False), (50, True), (51, True)])
def test_min_word_count(n, keep):
    result = check_quality(words_doc(n), GQ)
    assert result.stats["word_count"] == n
    assert result.keep is keep
    if not keep:
        assert result.reason == "gopher_quality:word_count"
        assert result.detail == "word_count=49 < 50"


@pytest.mark.parametrize("n, keep", [(59, True), (60, True), (61, False)])
def test_max_word_count(n, keep):
    params = GQ.model_copy(update={"gopher_max_words": 60})
    assert verdict(words_doc(n), params) == (keep, None if keep else "gopher_quality:word_count")


@pytest.mark.parametrize("last_len, keep", [(2, False), (3, True), (4, True)])
def test_min_mean_word_length(last_len, keep):
    words = ["the", "and", *filler(97, length=3), "b" * last_len]
    result = check_quality(" ".join(words), GQ)
    assert result.stats["mean_word_length"] == pytest.approx((297 + last_len) / 100)
    assert result.keep is keep
    assert result.reason == (None if keep else "gopher_quality:mean_word_length")


@pytest.mark.parametrize("last_len, keep", [(23, True), (24, True), (25, False)])
def test_max_mean_word_length(last_len, keep):
    long_words = ["".join(p) + "a" * 8 for p in islice(product(ascii_lowercase, repeat=2), 97)]
    words = ["the", "and", *long_words, "c" * last_len]  # 6 + 970 + last_len characters
    result = check_quality(" ".join(words), GQ)
    assert result.stats["mean_word_length"] == pytest.approx((976 + last_len) / 100)
    assert result.keep is keep
    assert result.reason == (None if keep else "gopher_quality:mean_word_length")


@pytest.mark.parametrize("symbol, rule", [("#", "hash_word_ratio"), ("…", "ellipsis_word_ratio")])
@pytest.mark.parametrize("k, keep", [(9, True), (10, True), (11, False)])
def test_symbol_word_ratio(symbol, rule, k, keep):
    words = ["the", "and", *filler(88)]
    # symbols mid-line so that no line ends with an ellipsis; ratio = k / (90 words + k symbols)
    text = " ".join(words[:45] + [symbol] * k + words[45:])
    result = check_quality(text, GQ)
    assert result.stats[rule] == pytest.approx(k / (90 + k))
    assert result.keep is keep
    assert result.reason == (None if keep else f"gopher_quality:{rule}")


def test_three_dot_ellipsis_counts_like_unicode_one():
    words = ["the", "and", *filler(88)]
    dots = check_quality(" ".join(words[:45] + ["..."] * 11 + words[45:]), GQ)
    assert dots.reason == "gopher_quality:ellipsis_word_ratio"


def lines_doc(n_lines: int, prefix: str = "", suffix: str = ".", k: int = 0) -> str:
    """n_lines lines of 12 words; the first k get `prefix`/`suffix`, the others end with '.'."""
    words = ["the", "and", *filler(12 * n_lines - 2)]
    lines = []
    for i in range(n_lines):
        line = " ".join(words[12 * i : 12 * i + 12])
        lines.append(prefix + line + suffix if i < k else line + ".")
    return "\n".join(lines)


@pytest.mark.parametrize("bullet", ["- ", "• "])
@pytest.mark.parametrize("k, keep", [(8, True), (9, True), (10, False)])
def test_bullet_lines_ratio(bullet, k, keep):
    result = check_quality(lines_doc(10, prefix=bullet, k=k), GQ)
    assert result.stats["bullet_lines_ratio"] == pytest.approx(k / 10)
    assert result.keep is keep
    assert result.reason == (None if keep else "gopher_quality:bullet_lines_ratio")


@pytest.mark.parametrize("k, keep", [(2, True), (3, True), (4, False)])
def test_ellipsis_lines_ratio(k, keep):
    result = check_quality(lines_doc(10, suffix="...", k=k), GQ)
    assert result.stats["ellipsis_lines_ratio"] == pytest.approx(k / 10)
    assert result.keep is keep
    assert result.reason == (None if keep else "gopher_quality:ellipsis_lines_ratio")


@pytest.mark.parametrize("k, keep", [(19, True), (20, True), (21, False)])
def test_alpha_words_ratio(k, keep):
    text = " ".join(["the", "and", *filler(78), *["123"] * k])
    result = check_quality(text, GQ)
    assert result.stats["alpha_words_ratio"] == pytest.approx(80 / (80 + k))
    assert result.keep is keep
    assert result.reason == (None if keep else "gopher_quality:alpha_words_ratio")


@pytest.mark.parametrize(
    "stop, keep", [(["the", "the"], False), (["the", "and"], True), (["the", "and", "of"], True)]
)
def test_min_stop_words(stop, keep):
    result = check_quality(" ".join([*filler(60), *stop]), GQ)
    assert result.stats["stop_word_count"] == len(set(stop))
    assert result.keep is keep
    assert result.reason == (None if keep else "gopher_quality:stop_word_count")


def test_stop_words_are_case_sensitive_like_datatrove():
    assert gopher_quality(" ".join([*filler(60), "The", "And"])) == (
        False,
        "gopher_quality:stop_word_count",
    )


# ---------------------------------------------------------------- Gopher repetition


def unique_lines(n: int) -> list[str]:
    return [f"line {w} here" for w in filler(n)]


@pytest.mark.parametrize("sep, rule", [("\n", "dup_line_frac"), ("\n\n", "dup_para_frac")])
@pytest.mark.parametrize("dups, keep", [(2, True), (3, True), (4, False)])
def test_duplicate_line_and_paragraph_fraction(sep, rule, dups, keep):
    parts = unique_lines(10 - dups) + ["line aaaaa here"] * dups  # repeats the first part
    params = only("gopher_repetition", **{f"gopher_max_{rule}": 0.3})
    result = check_quality(sep.join(parts), params)
    assert result.stats[rule] == pytest.approx(dups / 10)
    assert (result.keep, result.reason) == (keep, None if keep else f"gopher_repetition:{rule}")


@pytest.mark.parametrize(
    "sep, rule", [("\n", "dup_line_char_frac"), ("\n\n", "dup_para_char_frac")]
)
@pytest.mark.parametrize("dup_len, keep", [(19, True), (20, True), (21, False)])
def test_duplicate_line_and_paragraph_char_fraction(sep, rule, dup_len, keep):
    # document of exactly 100 characters: U, D, D with D repeated once
    dup = "d" * dup_len
    unique = "u" * (100 - 2 * dup_len - 2 * len(sep))
    text = sep.join([unique, dup, dup])
    assert len(text) == 100
    result = check_quality(text, only("gopher_repetition", **{f"gopher_max_{rule}": 0.2}))
    assert result.stats[rule] == pytest.approx(dup_len / 100)
    assert (result.keep, result.reason) == (keep, None if keep else f"gopher_repetition:{rule}")


@pytest.mark.parametrize("tail_len, keep", [(75, False), (76, True), (77, True)])
def test_top_2_gram_char_fraction(tail_len, keep):
    # "xx yy" occurs 4 times: 20 characters of a 100-character document at tail_len=76
    text = " ".join(["xx", "yy"] * 4) + " " + "z" * tail_len
    params = only("gopher_repetition", gopher_top_ngram_max_char_frac={2: 0.2})
    result = check_quality(text, params)
    assert result.stats["top_2_gram_char_frac"] == pytest.approx(20 / (24 + tail_len))
    assert (result.keep, result.reason) == (
        keep,
        None if keep else "gopher_repetition:top_2_gram_char_frac",
    )


@pytest.mark.parametrize("tail_len, keep", [(59, False), (60, True), (61, True)])
def test_duplicated_5_gram_char_fraction(tail_len, keep):
    # the 5-gram "aaa bbb ccc ddd eee" repeats once: 15 characters (joined without spaces)
    gram = "aaa bbb ccc ddd eee"
    text = f"{gram} {gram} " + "z" * tail_len
    params = only("gopher_repetition", gopher_dup_ngram_max_char_frac={5: 0.15})
    result = check_quality(text, params)
    assert result.stats["dup_5_gram_char_frac"] == pytest.approx(15 / (40 + tail_len))
    assert (result.keep, result.reason) == (
        keep,
        None if keep else "gopher_repetition:dup_5_gram_char_frac",
    )


def reference_top_chars(words: list[str], n: int) -> int:
    """datatrove's find_top_duplicate over space-joined n-grams, written plainly."""
    grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0
    gram, count = Counter(grams).most_common(1)[0]
    return len(gram) * count


def reference_dup_chars(words: list[str], n: int) -> int:
    """datatrove's find_all_duplicate, written plainly."""
    seen, chars, idx = set(), 0, 0
    while idx < len(words) - n + 1:
        gram = "".join(words[idx : idx + n])
        if gram in seen:
            chars += len(gram)
            idx += n
        else:
            seen.add(gram)
            idx += 1
    return chars


@pytest.mark.parametrize("seed", range(30))
def test_ngram_statistics_match_reference_on_random_texts(seed):
    rng = random.Random(seed)
    vocab = filler(rng.randint(2, 8), length=rng.randint(1, 3))
    words = [rng.choice(vocab) for _ in range(rng.randint(0, 300))]
    if rng.random() < 0.5:  # long exact repeats as well as chance ones
        words += words[: rng.randint(0, len(words))]
    text = " ".join(words) or "x"
    words = text.split()
    stats = check_quality(text, QualityParams(enabled_rules=["gopher_repetition"])).stats
    for n in (2, 3, 4):
        expected = reference_top_chars(words, n) / len(text)
        assert stats[f"top_{n}_gram_char_frac"] == pytest.approx(expected), n
    for n in range(5, 11):
        expected = reference_dup_chars(words, n) / len(text)
        assert stats[f"dup_{n}_gram_char_frac"] == pytest.approx(expected), n


def test_ngram_thresholds_with_gaps_still_match_reference():
    words = ("a b c d e f g " * 5 + "h i j").split()
    text = " ".join(words)
    params = QualityParams(
        enabled_rules=["gopher_repetition"],
        gopher_top_ngram_max_char_frac={3: 1.0},
        gopher_dup_ngram_max_char_frac={7: 1.0, 9: 1.0},
    )
    stats = check_quality(text, params).stats
    assert stats["top_3_gram_char_frac"] == pytest.approx(reference_top_chars(words, 3) / len(text))
    for n in (7, 9):
        expected = reference_dup_chars(words, n) / len(text)
        assert stats[f"dup_{n}_gram_char_frac"] == pytest.approx(expected)
    assert "dup_5_gram_char_frac" not in stats


# ---------------------------------------------------------------- C4

C4 = QualityParams(enabled_rules=["c4"])
GOOD = [f"This is good sentence number {w} here." for w in filler(5)]


def test_c4_line_cleaning():
    text = "\n".join(
        [
            "Menu Home About",  # no terminal punctuation
            GOOD[0],
            "Too short.",  # fewer than 3 words
            "Please enable JavaScript to view this page.",
            GOOD[1],
            "This site uses cookies to improve your experience.",
            "Read our Privacy Policy for more details.",
            "  " + GOOD[2] + "[1]  ",  # citation removed, whitespace stripped
            "Something trails off...",
            GOOD[3],
            GOOD[4],
        ]
    )
    result = check_quality(text, C4)
    assert result.keep, result.detail
    assert result.text == "\n".join(GOOD)
    assert result.stats["c4_lines"] == 11
    assert result.stats["c4_kept_lines"] == 5


def test_c4_can_return_original_text():
    text = "Header\n" + "\n".join(GOOD)
    result = check_quality(text, C4.model_copy(update={"c4_output_cleaned_text": False}))
    assert result.keep and result.text == text


@pytest.mark.parametrize(
    "lines, keep",
    [
        (GOOD[:4], False),
        (GOOD[:5], True),
        (GOOD[:4] + ["Two sentences here. And another one!"], True),
        (GOOD[:3] + ["First one.Second one glued here."], True),
    ],
)
def test_c4_min_sentences(lines, keep):
    result = check_quality("\n".join(lines), C4)
    assert result.keep is keep
    if not keep:
        assert result.reason == "c4:too_few_sentences"
        assert result.detail == "c4_sentences=4 < 5"


@pytest.mark.parametrize(
    "bad_line, rule",
    [
        ("Lorem ipsum dolor sit amet, consectetur.", "c4:lorem_ipsum"),
        ("Call function() { return this value }.", "c4:curly_bracket"),
    ],
)
def test_c4_document_rules(bad_line, rule):
    assert c4_quality("\n".join([*GOOD, bad_line])) == (False, rule)
    # like C4, they only count in lines that survive the line filters (here: no punctuation)
    assert c4_quality("\n".join([*GOOD, bad_line.rstrip(".")])) == (True, None)


# ---------------------------------------------------------------- FineWeb


@pytest.mark.parametrize("k, keep", [(2, False), (3, True), (4, True)])
def test_fineweb_line_punct_ratio(k, keep):
    lines = [f"line {w} without end" for w in filler(25)]
    lines = [line + "." for line in lines[:k]] + lines[k:]
    text = "\n\n \n".join(lines)  # blank lines do not count
    params = only("fineweb", fineweb_min_line_punct_ratio=0.12)
    result = check_quality(text, params)
    assert result.stats["line_punct_ratio"] == pytest.approx(k / 25)
    assert (result.keep, result.reason) == (keep, None if keep else "fineweb:line_punct_ratio")


@pytest.mark.parametrize("short, keep", [(66, True), (67, True), (68, False)])
def test_fineweb_short_line_ratio(short, keep):
    lines = [f"short {w}" for w in filler(short)] + [
        f"a long line of more than thirty characters {w}" for w in filler(100 - short)
    ]
    result = check_quality("\n".join(lines), only("fineweb", fineweb_max_short_line_ratio=0.67))
    assert result.stats["short_line_ratio"] == pytest.approx(short / 100)
    assert (result.keep, result.reason) == (keep, None if keep else "fineweb:short_line_ratio")


@pytest.mark.parametrize("dup_len, keep", [(9, True), (10, True), (11, False)])
def test_fineweb_char_dup_ratio(dup_len, keep):
    dup = "d" * dup_len
    text = "\n".join(["u" * (1000 - 2 * dup_len), dup, dup])  # 1000 non-newline characters
    result = check_quality(text, only("fineweb", fineweb_max_char_dup_ratio=0.01))
    assert result.stats["char_dup_ratio"] == pytest.approx(dup_len / 1000)
    assert (result.keep, result.reason) == (keep, None if keep else "fineweb:char_dup_ratio")


@pytest.mark.parametrize(
    "words_per_line, tail, keep",
    [(4, "", True), (3, "", True), (3, "\n", False)],  # 9/40, 9/30 = 0.3, 10/30 newlines/words
)
def test_fineweb_list_ratio(words_per_line, tail, keep):
    words = filler(10 * words_per_line)
    lines = [" ".join(words[i : i + words_per_line]) for i in range(0, len(words), words_per_line)]
    text = "\n".join(lines) + tail
    result = check_quality(text, only("fineweb", fineweb_max_list_ratio=0.3))
    newlines = 9 + len(tail)
    assert result.stats["list_ratio"] == pytest.approx(newlines / (10 * words_per_line))
    assert (result.keep, result.reason) == (keep, None if keep else "fineweb:list_ratio")


# ---------------------------------------------------------------- whole pipeline, edge cases


@pytest.mark.parametrize("text", ["", " ", "\n\n\t  \n"])
def test_empty_and_whitespace_only(text):
    result = check_quality(text, QualityParams())
    assert (result.keep, result.reason) == (False, "empty")


def test_first_failing_rule_follows_enabled_order():
    text = "short text {"
    first = check_quality(text, QualityParams(enabled_rules=["c4", "gopher_quality"]))
    assert first.reason == "c4:too_few_sentences"
    second = check_quality(text, QualityParams(enabled_rules=["gopher_quality", "c4"]))
    assert second.reason == "gopher_quality:word_count"
    # statistics of every enabled family are present either way
    assert {"word_count", "c4_sentences"} <= set(first.stats) & set(second.stats)


def test_family_functions_return_keep_and_reason():
    assert gopher_repetition("a\na\na\na") == (False, "gopher_repetition:dup_line_frac")
    assert fineweb_quality("no punctuation at all here") == (False, "fineweb:line_punct_ratio")


@pytest.mark.parametrize(
    "text",
    [
        "我们是中国人，你好。今天的天气很好，我们去公园散步吧。北京是中国的首都。",
        "اللغة العربية هي إحدى أكثر اللغات انتشارا في العالم. يتحدث بها أكثر من مليون شخص.",
        "Москва — столица России. Это крупнейший город страны и важный культурный центр.",
    ],
)
def test_non_latin_scripts_do_not_crash(text):
    result = check_quality(text * 5, QualityParams())
    assert not result.keep
    assert result.reason.startswith("gopher_quality:")
    assert all(math.isfinite(v) for v in result.stats.values())


def test_cjk_sentence_counts_as_one_word_up_to_punctuation():
    result = check_quality("我们是中国人，你好。", GQ)
    assert result.stats["word_count"] == 2
    assert result.reason == "gopher_quality:word_count"


def test_zero_width_characters_are_not_words():
    text = words_doc(60)
    spiked = text.replace(" ", "\u200b \ufeff")
    plain, odd = check_quality(text, GQ), check_quality(spiked, GQ)
    assert odd.stats["word_count"] == plain.stats["word_count"] == 60
    assert odd.stats["alpha_words_ratio"] == plain.stats["alpha_words_ratio"]
    assert odd.keep


def test_control_and_invisible_only_text_is_rejected_not_crashing():
    for text in ["\u200b\u200b\ufeff", "\x00\x01\x07\x1b", "a\x00b\x00c\x00" * 100]:
        result = check_quality(text, QualityParams())
        assert not result.keep
        assert result.reason is not None


def test_ten_megabyte_document_is_truncated():
    text = "The cat sat on the mat and looked at the dog with some care. " * 170_000
    assert len(text) > 10_000_000
    result = check_quality(text, QualityParams())
    assert result.stats["truncated"] == 1.0
    assert result.stats["n_chars"] == len(text)
    assert len(result.text) <= 200_000
    assert result.reason.startswith("gopher_repetition:")


def test_ten_megabyte_single_token_document():
    result = check_quality("x" * 10_000_000, QualityParams())
    assert not result.keep and result.stats["truncated"] == 1.0


def test_long_document_rejected_when_truncation_is_off():
    params = QualityParams(max_chars=1000, truncate_long=False)
    result = check_quality(words_doc(400), params)
    assert (result.keep, result.reason) == (False, "too_long")
    assert result.detail.startswith("n_chars=")


def test_params_validation():
    with pytest.raises(ValidationError, match="unknown rule families"):
        QualityParams(enabled_rules=["gopher"])
    with pytest.raises(ValidationError, match="duplicates"):
        QualityParams(enabled_rules=["c4", "c4"])
    with pytest.raises(ValidationError, match="is above"):
        QualityParams(gopher_min_words=10, gopher_max_words=5)
    with pytest.raises(ValidationError):
        QualityParams(not_a_threshold=1)
    with pytest.raises(ValidationError):
        QualityParams(gopher_max_dup_line_frac=1.5)
    with pytest.raises(TypeError):
        check_quality(b"bytes", QualityParams())


def test_real_ccnet_documents(shared_data):
    with gzip.open(shared_data / "text" / "cc_en_head-0091.jsonl.gz", "rt") as f:
        texts = [json.loads(line)["text"] for line in f]
    results = [check_quality(t, QualityParams()) for t in texts]
    keys = set(results[0].stats)
    for text, result in zip(texts, results, strict=True):
        assert result.keep == (result.reason is None) == (result.detail is None)
        assert set(result.stats) == keys
        original_lines = {line.strip() for line in text.splitlines()}
        assert all(line in original_lines for line in result.text.splitlines() if line)
    # CCNet "head" documents are good English pages: the heuristics must not reject them all.
    assert any(r.keep for r in results)


def test_fineweb_terminal_punctuation_is_unicode_aware():
    lines = ["Is this a question?", "What a line!", "这是一个句子。", "no end here"]
    result = check_quality("\n".join(lines), only("fineweb"))
    assert result.stats["line_punct_ratio"] == pytest.approx(3 / 4)
