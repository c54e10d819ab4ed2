import json
import threading

import pytest
from pydantic import ValidationError

from webscale_rl.reward import (
    RewardParams,
    compute_score,
    extract_answer,
    infer_answer_type,
    make_trl_reward,
    parse_date,
    parse_number,
    trl_reward,
)

# (ground truth, model response, answer type or None to infer, expected score)
CASES = [
    # numbers: formats that must match
    ("42", r"The answer is \boxed{42}", "number", 1.0),
    ("42", "Answer: 42", None, 1.0),
    ("1,234,567", r"\boxed{1234567}", "number", 1.0),
    ("1234567", "Answer: 1,234,567", "number", 1.0),
    ("$1.2 million", "Answer: 1,200,000 dollars", "number", 1.0),
    ("$1.2 million", "Answer: $1,200,000", "number", 1.0),
    ("€3bn", "Answer: 3 billion euros", "number", 1.0),
    ("45%", r"\boxed{45\%}", "number", 1.0),
    ("45%", "Answer: 45 percent", "number", 1.0),
    ("45%", "Answer: 0.45", "number", 1.0),
    ("5 km", "Answer: 5000 m", "number", 1.0),
    ("5 km", "Answer: 5 kilometres", "number", 1.0),
    ("5 km", "Answer: 5", "number", 1.0),
    ("2.5 kg", "Answer: 2500 grams", "number", 1.0),
    ("324 metres", "The tower is 324 m tall.", "number", 1.0),
    ("42 years", "Answer: 42", "number", 1.0),
    ("-17.5", r"\boxed{-17.50}", "number", 1.0),
    ("0.5", r"\boxed{1/2}", "number", 1.0),
    ("1/2", r"\boxed{\frac{1}{2}}", "number", 1.0),
    ("6.02e23", r"\boxed{6.02 \times 10^{23}}", "number", 1.0),
    ("2.7183", r"\boxed{2.71828}", "number", 1.0),  # within the default 1e-4 tolerance
    ("about 300", "Answer: roughly 300", "number", 1.0),
    # numbers: near misses that must score 0
    ("1,234,567", r"\boxed{1234568}", "number", 0.0),
    ("42", r"\boxed{43}", "number", 0.0),
    ("2.75", r"\boxed{2.76}", "number", 0.0),
    ("$1.2 million", "Answer: $1.2 billion", "number", 0.0),
    ("3 million", "Answer: 3 thousand", "number", 0.0),
    ("5 km", "Answer: 5 m", "number", 0.0),
    ("5 km", "Answer: 5 kg", "number", 0.0),
    ("€3bn", "Answer: $3 billion", "number", 0.0),
    ("45%", "Answer: 46%", "number", 0.0),
    ("42 years", "Answer: 42 months", "number", 0.0),
    ("42", "It is either 42 or 43", "number", 0.0),
    ("42", r"\boxed{forty-two}", "number", 0.0),
    # dates
    ("March 5, 2021", "Answer: 2021-03-05", "date", 1.0),
    ("March 5, 2021", "Answer: 5 March 2021", "date", 1.0),
    ("March 5, 2021", "Answer: Mar. 5th, 2021", "date", 1.0),
    ("2021-03-05", r"\boxed{March 5, 2021}", None, 1.0),
    ("July 20, 1969", "Answer: Sunday, 20th of July 1969", None, 1.0),
    ("March 13, 2021", "Answer: 13/03/2021", "date", 1.0),  # 13 cannot be a month
    ("03/05/2021", "Answer: 03/05/2021", "date", 1.0),  # same ambiguity on both sides
    ("2021", "Answer: March 5, 2021", "date", 1.0),  # more precise than asked is fine
    ("March 2021", "Answer: 2021-03", "date", 1.0),
    ("1969", r"\boxed{1969}", None, 1.0),
    ("March 5, 2021", "Answer: March 6, 2021", "date", 0.0),
    ("March 5, 2021", "Answer: March 5, 2020", "date", 0.0),
    ("March 5, 2021", "Answer: 03/05/2021", "date", 0.0),  # could be 3 May: no credit
    ("March 5, 2021", "Answer: 2021", "date", 0.0),  # less precise than the gold
    ("March 5, 2021", "Answer: March 5, 2021 or March 6, 2021", "date", 0.0),
    ("1969", r"\boxed{1968}", None, 0.0),
    # names
    ("Marie Curie", r"\boxed{marie curie}", "name", 1.0),
    ("Marie Curie", r"\boxed{Dr. Marie Curie}", "name", 1.0),
    ("Zoë Saldaña", "Answer: Zoe Saldana", "name", 1.0),
    ("Ada Lovelace", '**Answer:** "Ada Lovelace".', "name", 1.0),
    ("Lake Baikal", r"The final answer is: $\text{Lake Baikal}$.", "name", 1.0),
    ("Marie Curie", r"\boxed{Pierre Curie}", "name", 0.0),
    ("Marie Curie", r"\boxed{Curie}", "name", 0.0),
    ("Lake Baikal", "Answer: Lake Tanganyika", "name", 0.0),
    # phrases
    ("the Eiffel Tower", "Answer: Eiffel Tower.", "phrase", 1.0),
    ("Research & Development", "Answer: research and development", "phrase", 1.0),
    ("photosynthesis", "Answer: Photosynthesis!", None, 1.0),
    ("photosynthesis in plants", "Answer: photosynthesis", "phrase", 0.0),
    ("increase in demand", "Answer: decrease in demand", "phrase", 0.0),
    # expressions
    ("x^2+2x+1", r"\boxed{(x+1)^2}", "expression", 1.0),
    (r"\frac{\sqrt{2}}{2}", r"\boxed{\sqrt{2}/2}", None, 1.0),
    (r"\frac{\pi}{2}", r"\boxed{\pi/2}", "expression", 1.0),
    ("(1,2)", r"\boxed{(1, 2)}", None, 1.0),
    ("x^2+2x+1", r"\boxed{(x-1)^2}", "expression", 0.0),
    ("2x", r"\boxed{2y}", "expression", 0.0),
    ("(6,31,-1)", r"\boxed{(6,31,1)}", None, 0.0),
    # answer-type aliases and unknown types fall back sensibly
    ("42", "Answer: 42", "numeric", 1.0),
    ("42", "Answer: 42", "not-a-type", 1.0),
]


@pytest.mark.parametrize(("gold", "response", "answer_type", "expected"), CASES)
def test_compute_score_table(gold, response, answer_type, expected):
    extra_info = {"answer_type": answer_type} if answer_type else None
    assert compute_score("webscale_rl", response, gold, extra_info) == expected


def test_table_is_large_and_has_near_misses():
    assert len(CASES) >= 60
    assert sum(1 for case in CASES if case[3] == 0.0) >= 20


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (r"so \boxed{\frac{a}{b+\{c\}}} hence", r"\frac{a}{b+\{c\}}"),
        (r"first \boxed{1}, then \boxed{2}", "2"),
        ("Reasoning...\nAnswer: Paris", "Paris"),
        ("Reasoning...\nFinal answer:\n**Paris**", "Paris"),
        ("The answer is: 12 km.", "12 km"),
        ("line one\n\nlast line here\n\n", "last line here"),
        (r"<think>maybe \boxed{1}</think>Answer: 2", "2"),
        (r"\boxed{\text{Lake Baikal}}", "Lake Baikal"),
        ("", ""),
    ],
)
def test_extract_answer(response, expected):
    assert extract_answer(response) == expected


@pytest.mark.parametrize(
    "garbage",
    [None, 42, b"\\boxed{42}", ["42"], "", "   ", "\\boxed{" * 500, "\x00\x01", "9" * 5000],
)
def test_garbage_never_raises(garbage):
    assert compute_score("webscale_rl", garbage, "42", {"answer_type": "number"}) == 0.0
    assert compute_score("webscale_rl", "Answer: 42", garbage, None) in (0.0, 1.0)


def test_odd_extra_info_is_tolerated_but_bad_settings_are_loud():
    assert compute_score("x", "Answer: 42", "42", "not a dict") == 1.0
    assert compute_score("x", "Answer: 42", "42", {"answer_type": None}) == 1.0
    # Unknown keyword arguments (verl may pass its own) are ignored...
    assert compute_score("x", "Answer: 42", "42", None, sandbox_url="http://x") == 1.0
    # ...but a wrong value for a known setting must not silently zero every reward.
    with pytest.raises(ValidationError):
        compute_score("x", "Answer: 42", "42", None, rel_tol="bad")


def test_rel_tol_is_configurable():
    assert compute_score("x", r"\boxed{3.14158}", "3.14159", None) == 1.0
    assert compute_score("x", r"\boxed{3.14158}", "3.14159", None, rel_tol=1e-7) == 0.0


def test_f1_fallback_and_partial_credit():
    gold, response = "photosynthesis in green plants", "Answer: photosynthesis in plants"
    assert compute_score("x", response, gold, {"answer_type": "phrase"}) == 0.0
    assert compute_score("x", response, gold, {"answer_type": "phrase"}, f1_threshold=0.8) == 1.0
    partial = compute_score("x", response, gold, {"answer_type": "phrase"}, partial_credit=True)
    assert 0.0 < partial < 1.0
    # Partial credit never applies to numbers: a wrong number is simply wrong.
    assert compute_score("x", "Answer: 41", "42", None, partial_credit=True) == 0.0


@pytest.mark.parametrize(
    ("gold", "expected"),
    [
        ("42", "number"),
        ("$5 million", "number"),
        ("12 km", "number"),
        ("March 5, 2021", "date"),
        ("2021-03-05", "date"),
        ("Marie Curie", "phrase"),
        ("the 1990s", "phrase"),
        ("x^2 + 1", "expression"),
        (r"\frac{1}{2}", "expression"),
        ("(1, 2)", "expression"),
    ],
)
def test_infer_answer_type(gold, expected):
    assert infer_answer_type(gold) == expected


def test_parse_number_units_and_scale():
    assert parse_number("$1.2 million").value == pytest.approx(1.2e6)
    assert parse_number("$1.2 million").dimension == "usd"
    assert parse_number("3 km").value == pytest.approx(3000)
    assert parse_number("45%").percent
    assert parse_number("3 m").dimension == "length"  # 'm' is metres unless it follows money
    assert parse_number("$3m").value == pytest.approx(3e6)
    assert parse_number("one two three") is None


def test_parse_date_ambiguity_is_kept():
    assert parse_date("03/05/2021") == {(2021, 3, 5), (2021, 5, 3)}
    assert parse_date("05/05/2021") == {(2021, 5, 5)}
    assert parse_date("no date here") is None


def test_trl_reward_strings_and_conversations():
    completions = [
        r"\boxed{42}",
        [{"role": "assistant", "content": "Answer: Paris"}],
        [{"role": "assistant", "content": "Answer: Lyon"}],
        None,
    ]
    rewards = trl_reward(
        completions,
        ground_truth=["42", "Paris", "Paris", "1"],
        answer_type=["number", "name", "name", None],
        prompts=["p"] * 4,
        completion_ids=[[1]] * 4,
        qa_id=["a", "b", "c", "d"],
    )
    assert rewards == [1.0, 1.0, 0.0, 0.0]


def test_trl_reward_length_mismatch_is_a_wiring_error():
    with pytest.raises(ValueError, match="ground_truth"):
        trl_reward(["Answer: 1", "Answer: 2"], ground_truth=["1"])


def test_make_trl_reward_binds_params():
    lenient = make_trl_reward(RewardParams(f1_threshold=0.6))
    strict = make_trl_reward(RewardParams())
    args = (["Answer: photosynthesis in plants"], ["photosynthesis in green plants"], ["phrase"])
    assert lenient(*args) == [1.0]
    assert strict(*args) == [0.0]
    assert lenient.__name__ == "webscale_rl_reward"


def test_expression_scoring_works_off_the_main_thread():
    # math_verify's signal-based timeout only works in the main thread; TRL/Spark use others.
    results = []
    args = ("x", r"\boxed{(x+1)^2}", "x^2+2x+1", {"answer_type": "expression"})
    worker = threading.Thread(target=lambda: results.append(compute_score(*args)))
    worker.start()
    worker.join()
    assert results == [1.0]


def test_real_benchmark_answers_match_themselves_and_reject_off_by_one(shared_data):
    math_rows = [
        json.loads(line)
        for line in (shared_data / "benchmarks/math500/test.jsonl").read_text().splitlines()[:150]
    ]
    for row in math_rows:
        assert compute_score("math", rf"So \boxed{{{row['answer']}}}", row["answer"]) == 1.0, row
    gsm_rows = (shared_data / "benchmarks/gsm8k/test.jsonl").read_text().splitlines()[:200]
    for line in gsm_rows:
        gold = json.loads(line)["answer"].split("####")[-1].strip()
        wrong = int(gold.replace(",", "")) + 1
        assert compute_score("gsm8k", f"Answer: {gold}", gold) == 1.0
        assert compute_score("gsm8k", f"Answer: {wrong}", gold) == 0.0


def test_loads_from_a_file_path_like_verl_does():
    # verl's custom_reward_function.path imports the file by location, outside any package.
    import importlib.util

    import webscale_rl.reward as module

    spec = importlib.util.spec_from_file_location("custom_reward", module.__file__)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    assert (
        loaded.compute_score(
            data_source="webscale_rl",
            solution_str=r"\boxed{7}",
            ground_truth="7",
            extra_info={"answer_type": "number"},
        )
        == 1.0
    )
