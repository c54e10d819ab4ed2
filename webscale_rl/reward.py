"""Rule-based reward for Webscale-RL QA pairs, usable from verl and TRL.

verl calls `compute_score(data_source, solution_str, ground_truth, extra_info)` once per
response (set `custom_reward_function.path` to this file, `.name=compute_score`; keys under
`custom_reward_function.reward_kwargs` arrive as keyword arguments). TRL's GRPOTrainer calls a
function with `completions` plus every dataset column as keyword arguments: `trl_reward`.

Scoring: extract the final answer (last `\\boxed{}`, else an "Answer:" line, else the last
non-empty line), then compare it with the ground truth by answer type. Anything unexpected
scores 0.0: a reward function must never crash a training step.
"""

# No `from __future__ import annotations`: verl may load this file by path without registering
# it in sys.modules, and dataclasses then cannot resolve string annotations.
import math
import re
import string
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from pydantic import BaseModel, ConfigDict, Field

ANSWER_TYPES = ("number", "date", "name", "phrase", "expression")

# Generators and humans spell types differently; map the common variants.
_TYPE_ALIASES = {
    "numeric": "number",
    "numerical": "number",
    "integer": "number",
    "float": "number",
    "quantity": "number",
    "time": "date",
    "year": "date",
    "entity": "name",
    "person": "name",
    "place": "name",
    "location": "name",
    "organization": "name",
    "text": "phrase",
    "short_text": "phrase",
    "string": "phrase",
    "math": "expression",
    "formula": "expression",
    "latex": "expression",
    "equation": "expression",
}

# Longer than any sensible short answer; caps the work sympy and the regexes can be asked to do.
MAX_ANSWER_CHARS = 1000


class RewardParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rel_tol: float = Field(
        1e-4, ge=0.0, description="Relative tolerance for numeric answers (|a-b| <= tol*max|.|)."
    )
    f1_threshold: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="For name/phrase answers: also accept a token F1 >= this. None = exact only.",
    )
    partial_credit: bool = Field(
        False,
        description="For name/phrase answers that do not match: return the token F1 instead of 0.",
    )
    math_timeout_seconds: int = Field(
        5, ge=1, description="Timeout for math_verify parsing/verification (main thread only)."
    )


# ---------------------------------------------------------------------------- extraction


def _last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), honouring nested braces."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i]
        # Unbalanced: try an earlier box.
    return None


_ANSWER_LINE = re.compile(r"\banswer\s*(?:is)?\s*[:：]\s*(.*)$", re.IGNORECASE)


def extract_answer(text: str) -> str:
    """The final answer in a model response; '' when there is nothing."""
    if not isinstance(text, str):
        return ""
    # Reasoning models think first; only what follows the last </think> is the answer.
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    boxed = _last_boxed(text)
    if boxed is not None:
        return _clean(boxed)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i in range(len(lines) - 1, -1, -1):
        match = _ANSWER_LINE.search(lines[i].replace("*", ""))
        if match:
            # 'Answer:' alone on its line: the answer is on the next one.
            found = match.group(1) or (lines[i + 1] if i + 1 < len(lines) else "")
            return _clean(found)
    return _clean(lines[-1]) if lines else ""


def _clean(answer: str) -> str:
    """Strip wrappers models put around an answer: $..$, \\text{..}, markdown, quotes, final dot."""
    answer = answer.strip()
    answer = re.sub(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}", r"\1", answer)
    answer = answer.replace("\\%", "%").replace("\\$", "$").replace("\\!", "")
    # LaTeX spacing ('\\,' and '\\ '), but not a '\\\\' row break followed by a space.
    answer = re.sub(r"(?<!\\)\\[, ]", " ", answer)
    answer = answer.strip().rstrip(".").strip("*_`").strip()
    if len(answer) >= 2 and answer[0] == answer[-1] == "$":
        answer = answer[1:-1].strip()
    if len(answer) >= 2 and answer[0] in "\"'“‘" and answer[-1] in "\"'”’":
        answer = answer[1:-1].strip()
    return answer.rstrip(".").strip()


# ---------------------------------------------------------------------------- numbers

_CURRENCY_SYMBOLS = {"$": "usd", "€": "eur", "£": "gbp", "¥": "jpy", "₹": "inr"}
_SCALE_WORDS = {
    "thousand": 1e3,
    "k": 1e3,
    "million": 1e6,
    "mn": 1e6,
    "m": 1e6,  # only after a currency amount, see _split_unit
    "billion": 1e9,
    "bn": 1e9,
    "b": 1e9,  # only after a currency amount
    "trillion": 1e12,
    "tn": 1e12,
}
# unit spelling -> (dimension, factor to the dimension's base unit)
_UNITS = {
    "usd": ("usd", 1.0),
    "dollar": ("usd", 1.0),
    "us dollar": ("usd", 1.0),
    "eur": ("eur", 1.0),
    "euro": ("eur", 1.0),
    "gbp": ("gbp", 1.0),
    "pound sterling": ("gbp", 1.0),
    "jpy": ("jpy", 1.0),
    "yen": ("jpy", 1.0),
    "inr": ("inr", 1.0),
    "rupee": ("inr", 1.0),
    "mm": ("length", 1e-3),
    "millimetre": ("length", 1e-3),
    "millimeter": ("length", 1e-3),
    "cm": ("length", 1e-2),
    "centimetre": ("length", 1e-2),
    "centimeter": ("length", 1e-2),
    "m": ("length", 1.0),
    "metre": ("length", 1.0),
    "meter": ("length", 1.0),
    "km": ("length", 1e3),
    "kilometre": ("length", 1e3),
    "kilometer": ("length", 1e3),
    "mi": ("length", 1609.344),
    "mile": ("length", 1609.344),
    "ft": ("length", 0.3048),
    "foot": ("length", 0.3048),
    "feet": ("length", 0.3048),
    "inch": ("length", 0.0254),
    "mg": ("mass", 1e-3),
    "milligram": ("mass", 1e-3),
    "g": ("mass", 1.0),
    "gram": ("mass", 1.0),
    "kg": ("mass", 1e3),
    "kilogram": ("mass", 1e3),
    "t": ("mass", 1e6),
    "tonne": ("mass", 1e6),
    "lb": ("mass", 453.59237),
    "ms": ("time", 1e-3),
    "millisecond": ("time", 1e-3),
    "s": ("time", 1.0),
    "sec": ("time", 1.0),
    "second": ("time", 1.0),
    "min": ("time", 60.0),
    "minute": ("time", 60.0),
    "h": ("time", 3600.0),
    "hr": ("time", 3600.0),
    "hour": ("time", 3600.0),
    "day": ("time", 86400.0),
    "week": ("time", 604800.0),
    "month": ("time", 2629800.0),  # 30.4375 days
    "year": ("time", 31557600.0),  # 365.25 days
    "yr": ("time", 31557600.0),
    "ml": ("volume", 1e-3),
    "millilitre": ("volume", 1e-3),
    "milliliter": ("volume", 1e-3),
    "l": ("volume", 1.0),
    "litre": ("volume", 1.0),
    "liter": ("volume", 1.0),
    "kb": ("bytes", 1e3),
    "mb": ("bytes", 1e6),
    "gb": ("bytes", 1e9),
    "tb": ("bytes", 1e12),
    "kw": ("power", 1e3),
    "mw": ("power", 1e6),
    "gw": ("power", 1e9),
    "w": ("power", 1.0),
    "watt": ("power", 1.0),
    "kilowatt": ("power", 1e3),
    "megawatt": ("power", 1e6),
}

_NUMBER = r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+−]?\.\d+"
_NUMBER_RE = re.compile(_NUMBER)
_FRACTION_RE = re.compile(r"^([-+−]?\d+)\s*/\s*(\d+)$")
_TIMES_TEN_RE = re.compile(
    r"^(.*?)\s*(?:×|x|\*|\\times|\\cdot)\s*10\s*\^\s*\{?\s*([-+−]?\d+)\s*\}?$"
)


@dataclass(frozen=True)
class Quantity:
    """A parsed numeric answer.

    `written` is the number as stated (scale words applied: '1.2 million' -> 1.2e6); `value` is
    converted to the dimension's base unit ('5 km' -> 5000 m) so '5 km' equals '5000 m'.
    """

    written: float
    value: float
    dimension: str | None = None  # known unit family: length, mass, usd, ...
    unit: str | None = None  # unrecognised unit text ('apple', 'per month'), compared as text
    percent: bool = False
    integer: bool = False  # written as a plain integer: compared exactly, not with rel_tol


def _unit_key(word: str) -> str:
    """Singular lower-case spelling: 'Metres' -> 'metre', 'inches' -> 'inch'."""
    word = word.lower().strip().rstrip(".")
    if word in _UNITS or len(word) <= 2:
        return word
    if word.endswith("es") and word[:-2] in _UNITS:
        return word[:-2]
    return word[:-1] if word.endswith("s") else word


_CURRENCY_PREFIX = re.compile(r"^(us\$|usd|eur|gbp|jpy|inr|[$€£¥₹])\s*")
_HEDGES = re.compile(
    r"^(?:about|approximately|approx\.?|around|roughly|nearly|almost|over|under)\s+"
)
_PERCENT = re.compile(r"^(?:%|percent\b|per cent\b)")
_SCALE = re.compile(r"^(thousand|million|billion|trillion|mn|bn|tn|k|m|b)\b")


def parse_number(text: str) -> Quantity | None:
    """'$1.2 million' -> 1.2e6 usd; '45%' -> 45 percent; '3 km' -> 3000 length. None if not."""
    if not isinstance(text, str):
        return None
    s = unicodedata.normalize("NFKC", text).lower().replace("−", "-").replace("~", "")
    s = _HEDGES.sub("", s.strip()).rstrip(".").strip()
    currency = None
    negative = s.startswith("-") and _CURRENCY_PREFIX.match(s[1:]) is not None
    if negative:
        s = s[1:]
    prefix = _CURRENCY_PREFIX.match(s)
    if prefix:
        token = prefix.group(1)
        currency = "usd" if token == "us$" else _CURRENCY_SYMBOLS.get(token, token)
        s = ("-" if negative else "") + s[prefix.end() :]
    value, rest = _leading_value(s.strip())
    if value is None:
        return None
    integer = re.match(r"^[-+]?[\d,]+(?![\d,./eE])", s.strip()) is not None
    rest = rest.strip()
    percent = _PERCENT.match(rest) is not None
    rest = _PERCENT.sub("", rest).strip()
    scale = _SCALE.match(rest)
    # 'm'/'b' mean million/billion only after money ('$3m'); otherwise 'm' is metres.
    if scale and (scale.group(1) not in ("m", "b") or currency is not None):
        value *= _SCALE_WORDS[scale.group(1)]
        rest = rest[scale.end() :].strip()
        integer = False  # '1.2 million' is a rounded figure
    if not percent and _PERCENT.match(rest):  # '79.6 billion percent'
        percent = True
        rest = _PERCENT.sub("", rest).strip()
    quantity = _with_unit(value, rest, currency, percent)
    return replace(quantity, integer=integer) if quantity else None


def _leading_value(s: str) -> tuple[float | None, str]:
    """The number at the start of s (plain, fraction or a×10^n) and what follows it."""
    fraction = _FRACTION_RE.match(s)
    if fraction:
        denominator = int(fraction.group(2))
        if denominator == 0:
            return None, s
        return int(fraction.group(1)) / denominator, ""
    times_ten = _TIMES_TEN_RE.match(s)
    if times_ten and _NUMBER_RE.fullmatch(times_ten.group(1).strip()):
        exponent = int(times_ten.group(2).replace("−", "-"))
        return _to_float(times_ten.group(1).strip()) * 10.0**exponent, ""
    match = _NUMBER_RE.match(s)
    if not match:
        return None, s
    return _to_float(match.group(0)), s[match.end() :]


def _to_float(token: str) -> float:
    return float(token.replace(",", "").replace("−", "-"))


def _with_unit(value: float, rest: str, currency: str | None, percent: bool) -> Quantity | None:
    rest = re.sub(r"\s+", " ", rest.strip(" .,;:()"))
    if any(ch.isdigit() for ch in rest) or len(rest.split()) > 3:
        return None  # a second number or a sentence, not a unit
    unit = _UNITS.get(_unit_key(rest)) if rest else None
    if currency is not None:
        # '$5', '$5 USD' and '$5 dollars' are all dollars; '$5 per month' keeps its qualifier.
        same_currency = unit is not None and unit[0] == currency
        qualifier = None if not rest or same_currency else _unit_key(rest)
        return Quantity(
            written=value, value=value, dimension=currency, unit=qualifier, percent=percent
        )
    if unit is not None:
        return Quantity(written=value, value=value * unit[1], dimension=unit[0], percent=percent)
    return Quantity(written=value, value=value, unit=_unit_key(rest) or None, percent=percent)


def _close(a: float, b: float, rel_tol: float) -> bool:
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-12)


def _units_compatible(gold: Quantity, pred: Quantity) -> bool:
    """Stated units must agree; a side without a unit is read in the other side's unit."""
    gold_kind, pred_kind = gold.dimension or gold.unit, pred.dimension or pred.unit
    if gold_kind and pred_kind and gold_kind != pred_kind:
        return False
    return not (gold.unit and pred.unit and gold.unit != pred.unit)


def numbers_match(gold: Quantity, pred: Quantity, rel_tol: float) -> bool:
    if not _units_compatible(gold, pred):
        return False
    # Same known unit family: compare converted values ('5 km' == '5000 m'); otherwise one side
    # has no unit and the numbers are compared as written ('5 km' vs '5').
    converted = gold.dimension is not None and gold.dimension == pred.dimension
    g, p = (gold.value, pred.value) if converted else (gold.written, pred.written)
    if gold.integer and pred.integer:
        # Counts and years are exact: 1,234,567 vs 1,234,568 is a wrong answer, not rounding.
        rel_tol = 1e-12
    if gold.percent == pred.percent:
        return _close(g, p, rel_tol)
    # '45%' answered as '0.45' or as '45': both readings are right.
    scaled = p * 100 if gold.percent else p / 100
    return _close(g, p, rel_tol) or _close(g, scaled, rel_tol)


def _find_single_number(text: str) -> Quantity | None:
    """For answers like 'It is 324 metres tall': the one number in it, with its unit."""
    matches = list(_NUMBER_RE.finditer(text))
    if len(matches) != 1:
        return None  # several numbers: ambiguous, and rewarding any would invite spamming
    start = matches[0].start()
    while start > 0 and text[start - 1] in "$€£¥₹-":
        start -= 1
    words = text[start:].split()
    # The number with up to two following words; prefer a reading with a known unit
    # ('324 m tall' -> 324 m), else the longest ('42 oranges' keeps its unit to be compared).
    readings = [parse_number(" ".join(words[:n])) for n in (3, 2, 1) if n <= len(words)]
    readings = [q for q in readings if q is not None]
    known = [q for q in readings if q.unit is None and (q.dimension or q.percent)]
    return known[0] if known else (readings[0] if readings else None)


def score_number(gold: str, pred: str, params: RewardParams) -> float:
    gold_q = parse_number(gold)
    if gold_q is None:
        return score_expression(gold, pred, params)
    pred_q = parse_number(pred) or _find_single_number(pred)
    if pred_q is not None:
        return float(numbers_match(gold_q, pred_q, params.rel_tol))
    if "\\" in pred or "^" in pred:
        # LaTeX like \frac{1}{2} or 2^{10}: let math_verify decide.
        return score_expression(gold, pred, params)
    return 0.0


# ---------------------------------------------------------------------------- dates

_MONTHS = {
    name: i
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_MONTH = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + ")"
_WEEKDAYS = r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b"
# (regex, group order) on a normalised string; order: y=year, m=month, d=day, M=month name.
_DATE_PATTERNS = [
    (re.compile(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)"), "ymd"),
    (re.compile(rf"\b{_MONTH} (\d{{1,2}}) (\d{{3,4}})\b"), "Mdy"),
    (re.compile(rf"\b(\d{{1,2}}) {_MONTH} (\d{{3,4}})\b"), "dMy"),
    (re.compile(r"\b(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})\b"), "numeric"),
    (re.compile(r"\b(\d{4})[-/](\d{1,2})\b(?![-/])"), "ym"),
    (re.compile(rf"\b{_MONTH} (\d{{3,4}})\b"), "My"),
    (re.compile(r"\b(\d{3,4})\b"), "y"),
]

Date = tuple[int, int | None, int | None]


def _normalise_date_text(text: str) -> str:
    s = unicodedata.normalize("NFKC", text).lower()
    s = re.sub(_WEEKDAYS, " ", s)
    s = re.sub(r"(\d)(?:st|nd|rd|th)\b", r"\1", s)
    s = re.sub(r"\bof\b", " ", s)
    s = re.sub(r"(?<=[a-z])\.", " ", s)  # 'Mar. 5' -> 'mar 5'
    s = s.replace(",", " ")
    return re.sub(r"\s+", " ", s).strip()


def _valid(date: Date) -> bool:
    year, month, day = date
    if month is not None and not 1 <= month <= 12:
        return False
    if day is not None:
        days = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        return 1 <= day <= days
    return 1 <= year <= 9999


def _readings(match: re.Match, order: str) -> set[Date]:
    g = match.groups()
    if order == "ymd":
        found = {(int(g[0]), int(g[1]), int(g[2]))}
    elif order == "Mdy":
        found = {(int(g[2]), _MONTHS[g[0]], int(g[1]))}
    elif order == "dMy":
        found = {(int(g[2]), _MONTHS[g[1]], int(g[0]))}
    elif order == "numeric":
        # 03/05/2021 is March 5 in the US and 3 May elsewhere: keep both readings.
        found = {(int(g[2]), int(g[0]), int(g[1])), (int(g[2]), int(g[1]), int(g[0]))}
    elif order == "ym":
        found = {(int(g[0]), int(g[1]), None)}
    elif order == "My":
        found = {(int(g[1]), _MONTHS[g[0]], None)}
    else:
        found = {(int(g[0]), None, None)}
    return {d for d in found if _valid(d)}


def parse_date(text: str) -> set[Date] | None:
    """All readings of the one date in text as (year, month|None, day|None); None if no date.

    Two different dates in one answer are ambiguous: None.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    s = _normalise_date_text(text)
    era_bc = re.search(r"\b(?:bc|bce)\b", s) is not None
    for pattern, order in _DATE_PATTERNS:
        matches = list(pattern.finditer(s))
        if not matches:
            continue
        readings = [_readings(m, order) for m in matches]
        readings = [r for r in readings if r]
        if not readings or any(r != readings[0] for r in readings):
            return None
        if era_bc:
            return {(-y, m, d) for y, m, d in readings[0]}
        return readings[0]
    return None


def dates_match(gold: set[Date], pred: set[Date]) -> bool:
    """Conservative: an ambiguous side only matches the identical set of readings.

    A single-reading prediction may be more precise than the gold ('March 5, 2021' for a gold
    of '2021') but never less precise.
    """
    if gold == pred:
        return True
    if len(gold) != 1 or len(pred) != 1:
        return False
    (g_year, g_month, g_day), (p_year, p_month, p_day) = next(iter(gold)), next(iter(pred))
    if g_year != p_year:
        return False
    if g_month is not None and g_month != p_month:
        return False
    return g_day is None or g_day == p_day


def score_date(gold: str, pred: str, params: RewardParams) -> float:
    gold_dates = parse_date(gold)
    if gold_dates is None:
        return score_phrase(gold, pred, params)
    pred_dates = parse_date(pred)
    return float(pred_dates is not None and dates_match(gold_dates, pred_dates))


# ---------------------------------------------------------------------------- names and phrases

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_HONORIFICS = re.compile(r"\b(?:dr|mr|mrs|ms|prof|sir|dame|st|saint)\b")
_PUNCT = str.maketrans({ch: " " for ch in string.punctuation + "‘’“”–—…·"})


def normalise_text(text: str, drop_honorifics: bool = False) -> str:
    """SQuAD-style: lower case, no accents, no punctuation, no articles, single spaces."""
    s = unicodedata.normalize("NFKD", text)
    s = "".join(ch for ch in s if not unicodedata.combining(ch)).lower()
    s = s.replace("&", " and ").translate(_PUNCT)
    s = _ARTICLES.sub(" ", s)
    if drop_honorifics:
        s = _HONORIFICS.sub(" ", s)
    return " ".join(s.split())


def token_f1(gold: str, pred: str) -> float:
    gold_tokens, pred_tokens = gold.split(), pred.split()
    common = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _score_text(gold: str, pred: str, params: RewardParams, drop_honorifics: bool) -> float:
    gold_n = normalise_text(gold, drop_honorifics)
    pred_n = normalise_text(pred, drop_honorifics)
    if not gold_n or not pred_n:
        return 0.0
    if gold_n == pred_n:
        return 1.0
    f1 = token_f1(gold_n, pred_n)
    if params.f1_threshold is not None and f1 >= params.f1_threshold:
        return 1.0
    return f1 if params.partial_credit else 0.0


def score_name(gold: str, pred: str, params: RewardParams) -> float:
    return _score_text(gold, pred, params, drop_honorifics=True)


def score_phrase(gold: str, pred: str, params: RewardParams) -> float:
    return _score_text(gold, pred, params, drop_honorifics=False)


# ---------------------------------------------------------------------------- expressions


def _as_math(text: str) -> str:
    # math_verify finds LaTeX inside $...$ or \boxed{}; bare text like '2x' would be read as '2'.
    return text if "$" in text or "\\boxed" in text else f"${text}$"


def score_expression(gold: str, pred: str, params: RewardParams) -> float:
    from math_verify import parse, verify

    # math_verify's timeout uses signal.alarm, which only works in the main thread (TRL and
    # Spark may call us from worker threads); elsewhere run without it, inputs are capped.
    in_main = threading.current_thread() is threading.main_thread()
    timeout = params.math_timeout_seconds if in_main else None
    gold_parsed = parse(_as_math(gold), parsing_timeout=timeout)
    pred_parsed = parse(_as_math(pred), parsing_timeout=timeout)
    if gold_parsed and pred_parsed:
        return float(verify(gold_parsed, pred_parsed, timeout_seconds=timeout))
    # Not parseable as math: fall back to a plain normalised comparison.
    squash = re.compile(r"[\s{}$]")
    return float(bool(gold.strip()) and squash.sub("", gold) == squash.sub("", pred))


# ---------------------------------------------------------------------------- dispatch

_SCORERS: dict[str, Callable[[str, str, RewardParams], float]] = {
    "number": score_number,
    "date": score_date,
    "name": score_name,
    "phrase": score_phrase,
    "expression": score_expression,
}

# LaTeX commands, powers, subscripts, algebra ('2x', 'p - q'), tuples and lists of numbers.
_MATHY = re.compile(
    r"\\[a-zA-Z]+|\^|_\{|_\d|[a-zA-Z]\s*[+\-*/=]|[+\-*/=]\s*[a-zA-Z]|\d[a-rt-zA-Z]\b"
    r"|^[\[(].*,.*[\])]$|^-?\d+(?:\s*,\s*-?\d+)+$"
)


def normalise_answer_type(answer_type: object) -> str | None:
    if not isinstance(answer_type, str):
        return None
    key = answer_type.strip().lower()
    key = _TYPE_ALIASES.get(key, key)
    return key if key in ANSWER_TYPES else None


def infer_answer_type(ground_truth: str) -> str:
    """Guess the type from the gold answer alone (used when extra_info carries none)."""
    text = ground_truth.strip()
    if parse_number(text) is not None:
        return "number"  # a bare year like '1969' compares fine as a number
    if _MATHY.search(text):
        return "expression"
    # A date needs a month name or a numeric y-m-d form; a lone 3-4 digit run is not enough.
    looks_dated = re.search(rf"(?i)\b{_MONTH}\b", text) or re.search(r"\d[-/.]\d", text)
    if looks_dated and len(text.split()) <= 6 and parse_date(text) is not None:
        return "date"
    return "phrase"


def _params_from(kwargs: dict) -> RewardParams:
    known = {k: v for k, v in kwargs.items() if k in RewardParams.model_fields}
    params = kwargs.get("params")
    if isinstance(params, RewardParams):
        return params.model_copy(update=known)
    return RewardParams(**known)


def score_answer(
    pred: str, ground_truth: str, answer_type: str | None, params: RewardParams
) -> float:
    """Compare an already-extracted answer with the gold answer."""
    if not pred or not ground_truth.strip():
        return 0.0
    kind = normalise_answer_type(answer_type) or infer_answer_type(ground_truth)
    return float(_SCORERS[kind](ground_truth.strip(), pred, params))


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> float:
    """verl custom reward: 1.0 if the response's final answer matches, else 0.0.

    `extra_info["answer_type"]` picks the comparison; without it the type is inferred from the
    gold. Keyword arguments named like RewardParams fields (rel_tol, f1_threshold,
    partial_credit) tune it. Never raises on bad responses or gold answers; invalid settings
    raise pydantic's ValidationError, since a silent all-zero reward would waste a whole run.
    """
    params = _params_from(kwargs)
    try:
        if not isinstance(solution_str, str) or not isinstance(ground_truth, str | int | float):
            return 0.0
        answer_type = extra_info.get("answer_type") if isinstance(extra_info, dict) else None
        pred = extract_answer(solution_str)[:MAX_ANSWER_CHARS]
        gold = _clean(str(ground_truth)[:MAX_ANSWER_CHARS])
        return score_answer(pred, gold, answer_type, params)
    except Exception:  # noqa: BLE001 - a reward must never kill a training step
        return 0.0


def _completion_text(completion: object) -> str:
    """TRL completions are strings, or (conversational) lists of chat messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion:
        last = completion[-1]
        if isinstance(last, dict) and isinstance(last.get("content"), str):
            return last["content"]
    if isinstance(completion, dict) and isinstance(completion.get("content"), str):
        return completion["content"]
    return ""


def _per_row(values: object, n: int, name: str) -> list:
    if values is None or isinstance(values, str):
        return [values] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries but there are {n} completions")
    return values


def trl_reward(completions, ground_truth, answer_type=None, **kwargs) -> list[float]:
    """TRL GRPOTrainer reward: the dataset's `ground_truth`/`answer_type` columns arrive as lists.

    Extra TRL arguments (prompts, completion_ids, trainer_state, other columns) are ignored.
    Mismatched list lengths are a wiring bug and raise ValueError; bad rows score 0.0.
    """
    completions = list(completions)
    golds = _per_row(ground_truth, len(completions), "ground_truth")
    types = _per_row(answer_type, len(completions), "answer_type")
    params = _params_from(kwargs)
    return [
        compute_score("webscale_rl", _completion_text(c), g, {"answer_type": t}, params=params)
        for c, g, t in zip(completions, golds, types, strict=True)
    ]


def make_trl_reward(params: RewardParams) -> Callable[..., list[float]]:
    """A TRL reward function with fixed parameters (TRL logs it under its __name__)."""

    def webscale_rl_reward(completions, ground_truth, answer_type=None, **kwargs):
        return trl_reward(completions, ground_truth, answer_type, params=params)

    return webscale_rl_reward
