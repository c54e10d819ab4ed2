"""Date answers: every reading of the one date in a text as (year, month|None, day|None), and
a conservative match between two sets of readings."""

import re
import unicodedata

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
MONTH_PATTERN = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + ")"
_WEEKDAYS = r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b"
# (regex, group order) on a normalised string; order: y=year, m=month, d=day, M=month name.
_DATE_PATTERNS = [
    (re.compile(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)"), "ymd"),
    (re.compile(rf"\b{MONTH_PATTERN} (\d{{1,2}}) (\d{{3,4}})\b"), "Mdy"),
    (re.compile(rf"\b(\d{{1,2}}) {MONTH_PATTERN} (\d{{3,4}})\b"), "dMy"),
    (re.compile(r"\b(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})\b"), "numeric"),
    (re.compile(r"\b(\d{4})[-/](\d{1,2})\b(?![-/])"), "ym"),
    (re.compile(rf"\b{MONTH_PATTERN} (\d{{3,4}})\b"), "My"),
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
