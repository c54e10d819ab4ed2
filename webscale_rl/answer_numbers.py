"""Numeric answers: parse '$1.2 million', '45%', '5 km', '6.02 \\times 10^{23}' into a quantity
in its dimension's base unit, and decide whether two quantities are the same answer."""

import math
import re
import unicodedata
from dataclasses import dataclass, replace

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


def find_single_number(text: str) -> Quantity | None:
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
