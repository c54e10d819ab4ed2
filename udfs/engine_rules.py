"""`RuleEngine`: the four tasks answered by rules, without any model.

It implements the `Engine` interface so the pipeline runs end to end on a laptop or in CI. It
reads `request.payload` (never the prompt text) and returns JSON that follows the task's schema,
so its replies go through the very same parser as a model's:

- llm_filter: enough sentences and content words, not mostly short list/navigation lines;
  self-contained unless it starts mid-sentence or is mostly links/thread chatter.
- identify: domain by a weighted keyword lexicon (`resources/lexicon/domains.json`, "Other"
  without a clear signal); personas from `resources/lexicon/personas.json`, up to
  `max_personas`, chosen by a hash of the document id.
- generate: extractive. Sentences holding a date, year, amount, percentage, count or a
  capitalised name are ranked; persona k gets the k-th best sentence; the span is the answer
  and the question quotes the sentence with the span blanked ("What year completes this
  statement about X: "..."?"). Sentences whose only context is a pronoun are skipped.
- verify: `qa_checks.run_checks` plus lexical support (question words found around the answer).
Sentences that read like instructions to a model ("ignore the above", planted JSON) are never
asked about nor accepted as support.

Token counts are estimates (whitespace words x `tokens_per_word`), not tokenizer counts.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field

from webscale_rl.udfs import qa_checks
from webscale_rl.udfs.llm_types import LLMRequest, LLMResponse
from webscale_rl.udfs.prompts import resource_dir


class RuleEngineParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter_min_sentences: int = Field(
        3, ge=1, description="Sentences (5+ words) to be informative."
    )
    filter_min_content_words: int = Field(40, ge=1, description="Non-stopwords to be informative.")
    filter_max_short_line_frac: float = Field(
        0.6, ge=0.0, le=1.0, description="Above this share of short/list lines a page is a menu."
    )
    identify_min_score: float = Field(
        4.0, ge=0.0, description="Lexicon score a domain needs to beat 'Other'."
    )
    generate_min_context_words: int = Field(
        4, ge=1, description="Content words the blanked sentence must keep."
    )
    generate_max_sentence_words: int = Field(45, ge=5, description="Longer sentences are skipped.")
    verify_min_support: float = Field(
        0.34, ge=0.0, le=1.0, description="Share of question words found near the answer."
    )
    tokens_per_word: float = Field(1.3, gt=0.0, description="Token estimate per whitespace word.")


STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    out over own same she should so some such than that the their theirs them then there these
    they this those through to too under until up very was we were what when where which while
    who whom why will with would you your yours yourself yourselves us may might must shall one
    many much every get got make made like well even still yet via per i'm it's don't""".split()
)
PRONOUN_STARTS = frozenset(
    "it this that these those they he she we i you there here his her their its our my them "
    "such another".split()
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’\-]*")


def content_words(text: str) -> list[str]:
    """Lowercased non-stopwords of 3+ letters, with a crude plural/verb 's' stripped."""
    out = []
    for word in _WORD.findall(text.lower()):
        word = word.strip("'’-")
        if len(word) < 3 or word in STOPWORDS:
            continue
        out.append(word[:-1] if len(word) > 3 and word.endswith("s") else word)
    return out


# --- sentence splitting ----------------------------------------------------------------------

_ABBREV = frozenset(
    "st mr mrs ms dr jr sr prof vs etc e.g i.e no mt ft inc ltd co corp dept approx fig jan feb "
    "mar apr jun jul aug sep sept oct nov dec u.s u.k".split()
)
# An initial or dotted initials ('J', 'K.K', 'U.S', 'a.m') with the final dot stripped.
_INITIALS = re.compile(r"(?:[a-z]\.)*[a-z]")
_BOUNDARY = re.compile(r"[.!?][\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Sentences of a page: line breaks always split; '.!?' + capital splits unless after an
    abbreviation or initials ('St. Moritz', 'J. Smith', 'Showa Denko K.K. Tokyo')."""
    sentences = []
    for line in (text or "").splitlines():
        start = 0
        for match in _BOUNDARY.finditer(line):
            before = line[start : match.start()].split()
            last = before[-1].lower().rstrip(".") if before else ""
            if last in _ABBREV or _INITIALS.fullmatch(last):
                continue
            sentences.append(line[start : match.end()].strip())
            start = match.end()
        if line[start:].strip():
            sentences.append(line[start:].strip())
    return sentences


# --- llm_filter --------------------------------------------------------------------------------

_LIST_LINE = re.compile(r"^\s*([-*•·|>#]|\d+[.)]\s|(home|menu|login|sign in|search)\b)", re.I)
_THREAD_CUES = re.compile(
    r"\b(click here|read more|continue reading|reply|permalink|log in to post|posted by|"
    r"previous post|next post|see below|see above|share this)\b",
    re.IGNORECASE,
)


def judge_page(text: str, params: RuleEngineParams) -> dict:
    lines = [ln for ln in (text or "").splitlines() if ln.strip()]
    sentences = [s for s in split_sentences(text) if len(s.split()) >= 5]
    n_content = len(content_words(text))
    short = sum(1 for ln in lines if len(ln.split()) < 4 or _LIST_LINE.match(ln))
    short_frac = short / len(lines) if lines else 1.0
    informative = (
        len(sentences) >= params.filter_min_sentences
        and n_content >= params.filter_min_content_words
        and short_frac <= params.filter_max_short_line_frac
    )
    first_alpha = next((ch for ch in text if ch.isalpha()), "")
    starts_mid_sentence = first_alpha.islower()
    n_cues = len(_THREAD_CUES.findall(text))
    self_contained = not starts_mid_sentence and n_cues <= max(2, len(sentences) // 5)
    reason = (
        f"{len(sentences)} sentences, {n_content} content words, {short_frac:.0%} short lines"
        + ("; starts mid-sentence" if starts_mid_sentence else "")
        + (f"; {n_cues} link/thread cues" if n_cues else "")
    )
    return {"informative": informative, "self_contained": self_contained, "reason": reason}


# --- identify ----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def load_lexicon() -> tuple[dict, dict]:
    """(domain -> {keyword: weight}, domain -> [persona, ...]) from the package resources."""
    lexicon_dir = resource_dir("lexicon")
    domains = json.loads((lexicon_dir / "domains.json").read_text(encoding="utf-8"))
    personas = json.loads((lexicon_dir / "personas.json").read_text(encoding="utf-8"))
    return domains, personas


def domain_scores(text: str, domains: list[str]) -> dict[str, float]:
    """Lexicon score per allowed domain: weight x occurrences (capped at 3 per keyword)."""
    lexicon, _ = load_lexicon()
    padded = " " + " ".join(re.findall(r"[a-z0-9+#]+", (text or "").lower())) + " "
    scores = {}
    for domain in domains:
        keywords = lexicon.get(domain, {})
        scores[domain] = sum(
            weight * min(3, padded.count(f" {keyword} ")) for keyword, weight in keywords.items()
        )
    return scores


def _stable_int(*parts: object) -> int:
    data = "\0".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def identify_page(payload: dict, params: RuleEngineParams) -> dict:
    domains = list(payload.get("domains") or [])
    if not domains:
        raise ValueError("identify payload has no 'domains'")
    scores = domain_scores(payload["document"], domains)
    best = max(domains, key=lambda d: (scores[d], -domains.index(d)))
    if scores[best] < params.identify_min_score:
        best = "Other" if "Other" in domains else best
    _, persona_lists = load_lexicon()
    pool = persona_lists.get(best) or persona_lists.get("Other") or ["a curious general reader"]
    k = min(int(payload.get("max_personas") or 3), len(pool))
    start = _stable_int(payload.get("doc_id"), payload["document"][:2000]) % len(pool)
    personas = [pool[(start + i) % len(pool)] for i in range(k)]
    return {"domain": best, "personas": personas}


# --- generate ----------------------------------------------------------------------------------

_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
    r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?"
)
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
# No apostrophes inside a name word, so a possessive ends the name ("Theatre's play").
# Latin-1 letters too, so 'Paraná' or 'Müller' is not cut at the accent.
_UP, _LOW, _ANY = "A-ZÀ-ÖØ-Þ", "a-zß-öø-ÿ", "A-Za-zÀ-ÖØ-öø-ÿ"
_NAME_WORD = (
    rf"(?:O'[{_UP}][{_LOW}]+|[{_UP}][{_LOW}][{_ANY}\-]*|[{_UP}]{{2,}}[{_LOW}]*|(?:[{_UP}]\.)+)"
)
_NAME_LINK = r"(?:of|de|la|du|van|von|der|the|and|&|for)"
_NOT_NAMES = frozenset(
    "the a an in on at for to of and but or if when while after before this that these those it "
    "he she they we you i our my his her their its there here what which who how why monday "
    "tuesday wednesday thursday friday saturday sunday".split()
)
_UNIT_SKIP = frozenset(STOPWORDS | {"percent", "per", "cent", "years", "year", "th", "st", "nd"})

# (kind, pattern, answer_type, question lead, priority: lower is better)
SPAN_KINDS = [
    (
        "date",
        re.compile(
            rf"\b{_MONTH}\s+{_DAY},?\s+\d{{4}}\b|\b{_DAY}\s+(?:of\s+)?{_MONTH}\s+\d{{4}}\b"
            rf"|\b{_MONTH}\s+\d{{4}}\b"
        ),
        "date",
        "What date",
        0,
    ),
    (
        "money",
        re.compile(rf"[$€£¥]\s?(?:{_NUM})(?:\s?(?:million|billion|thousand|bn)\b)?"),
        "number",
        "What amount",
        1,
    ),
    (
        "percent",
        re.compile(rf"(?<![\w.,])(?:{_NUM})\s?(?:%|percent\b|per cent\b)"),
        "number",
        "What percentage",
        1,
    ),
    (
        "year",
        re.compile(r"(?<![\w$€£¥.,/:\-])(?:1[5-9]\d\d|20\d\d)(?:'?s)?(?![\w%]|[.,:/\-]\d)"),
        "date",
        "What year",
        0,
    ),
    (
        "count",
        re.compile(rf"(?<![\w$€£¥.,/:\-])(?:{_NUM})(?=\s+[a-z][a-z\-]{{2,}})"),
        "number",
        "What number",
        2,
    ),
    (
        "name",
        # not inside a word: 'iOS and Windows' must not give 'OS and Windows'
        re.compile(
            rf"(?<![\w'’]){_NAME_WORD}(?:\s+(?:{_NAME_LINK}\s+)?{_NAME_WORD}){{1,4}}(?![\w])"
        ),
        "name",
        "What name",
        1,
    ),
]


def _name_spans(sentence: str) -> list[tuple[int, int, str]]:
    """Capitalised multiword spans, not at the sentence start and not starting with a
    function word or month ('In March', 'The')."""
    spans = []
    for match in SPAN_KINDS[-1][1].finditer(sentence):
        words = match.group(0).split()
        if match.start() == 0 or words[0].lower().strip(".") in _NOT_NAMES:
            continue
        if re.fullmatch(_MONTH, words[0]):
            continue
        spans.append((match.start(), match.end(), match.group(0)))
    return spans


def _count_ok(sentence: str, start: int, end: int) -> bool:
    """A count is only a count if the next word is a noun-ish unit ('12 km', '4 fans')."""
    following = sentence[end:].split()
    return bool(following) and following[0].lower().strip(".,;:") not in _UNIT_SKIP


def find_spans(sentence: str) -> list[tuple[int, str, str, str, int]]:
    """Every answerable span of the sentence as (start, text, answer_type, lead, priority)."""
    spans, taken = [], []
    for kind, pattern, answer_type, lead, priority in SPAN_KINDS:
        found = (
            _name_spans(sentence)
            if kind == "name"
            else [(m.start(), m.end(), m.group(0)) for m in pattern.finditer(sentence)]
        )
        for start, end, text in found:
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue  # part of a span already found by an earlier kind ('May 2020' > '2020')
            if kind == "count" and not _count_ok(sentence, start, end):
                continue
            taken.append((start, end))
            spans.append((start, text.strip(), answer_type, lead, priority))
    return spans


# Sentences that talk to the model rather than about the world (prompt injection, planted JSON).
# The rules neither ask about them nor accept them as support; a few honest sentences
# ("answer every question in the exam") are lost too, which is the safe side.
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget)\b.{0,40}\b(?:above|previous|prior|earlier|instructions?|rules?)\b"
    r"|\b(?:system|developer)\s*(?:prompt|message|mode)\b|\byou are now\b|\b(?:assistant|system)\s*:"
    r"|[\"'](?:question|answer|answer_type|domain|personas|informative|correct|reason)[\"']\s*:"
    r"|\b(?:output|write|reply|respond|answer|mark|choose|print)\b[^.]{0,60}\b(?:json|question|"
    r"answer|personas?|domain|correct|uninformative|informative)\b",
    re.IGNORECASE,
)


def looks_like_instruction(sentence: str) -> bool:
    return _INSTRUCTION.search(sentence) is not None


# Site furniture, not knowledge: a question about it teaches nothing ("©2019 Capitol Hill ...").
_BOILERPLATE = re.compile(
    r"©|\bcopyright\b|\ball rights reserved\b|\bcookies?\b|\bprivacy policy\b"
    r"|\bterms (?:of (?:use|service)|and conditions)\b|\bsubscribe\b|\bnewsletter\b",
    re.IGNORECASE,
)


def _usable_sentence(sentence: str, params: RuleEngineParams) -> bool:
    n_words = len(sentence.split())
    return (
        6 <= n_words <= params.generate_max_sentence_words
        and not sentence.rstrip().endswith("?")
        and re.match(r"[\"'“‘(]?[A-Za-z0-9]", sentence) is not None
        and "http" not in sentence
        and "@" not in sentence
        and qa_checks.refers_to_document(sentence) is None
        and not looks_like_instruction(sentence)
        and not _BOILERPLATE.search(sentence)
    )


def _has_own_context(blanked: str, params: RuleEngineParams) -> bool:
    """Enough content words, and a pronoun start only when a name anchors the sentence."""
    if len(content_words(blanked.replace("____", " "))) < params.generate_min_context_words:
        return False
    first = re.sub(r"[^a-z]", "", (blanked.split() or [""])[0].lower())
    return first not in PRONOUN_STARTS or bool(_name_spans(blanked))


def document_topic(sentences: list[str], min_mentions: int = 3) -> str | None:
    """The most repeated capitalised name of the page, to anchor a statement that names
    nothing itself; None when no name is repeated `min_mentions` times."""
    counts = Counter(span for s in sentences for _, _, span in _name_spans(s))
    repeated = [(n, name) for name, n in counts.items() if n >= min_mentions]
    return max(repeated)[1] if repeated else None


def _question(lead: str, blanked: str, topic: str | None) -> str:
    about = f" about {topic}" if topic else ""
    quoted = blanked.replace('"', "'").replace("“", "'").replace("”", "'").rstrip()
    return f'{lead} completes this statement{about}: "{quoted}"?'


def qa_candidates(document: str, params: RuleEngineParams) -> list[dict]:
    """Ranked extractive QA pairs, at most one per sentence, best first."""
    sentences = split_sentences(document)
    topic = document_topic(sentences)
    checks = qa_checks.QACheckParams()
    ranked = []
    for position, sentence in enumerate(sentences):
        if not _usable_sentence(sentence, params):
            continue
        for start, answer, answer_type, lead, priority in sorted(
            find_spans(sentence), key=lambda s: (s[4], s[0])
        ):
            blanked = sentence[:start] + "____" + sentence[start + len(answer) :]
            if not _has_own_context(blanked, params):
                continue
            named = bool(_name_spans(blanked))
            # A topic only helps a statement that names nothing; elsewhere it misleads.
            anchor = topic if topic and not named and answer.lower() not in topic.lower() else None
            if answer_type == "date" and answer.endswith("s"):
                lead = "What decade"
            question = _question(lead, blanked, anchor)
            if qa_checks.answer_in_question(question, answer, checks):
                continue  # the same value occurs twice in the sentence
            score = priority - (0.5 if named else 0.0) + (0.5 if len(sentence.split()) > 35 else 0)
            ranked.append((score, position, question, answer, answer_type))
            break
    ranked.sort(key=lambda r: (r[0], r[1]))
    return [{"question": q, "answer": a, "answer_type": t} for _, _, q, a, t in ranked]


class NoCandidate(Exception):
    """The page offers no (further) sentence to ask about."""


def generate_qa(payload: dict, params: RuleEngineParams) -> dict:
    candidates = qa_candidates(payload["document"], params)
    k = int(payload.get("persona_idx") or 0)
    if k >= len(candidates):
        raise NoCandidate(f"no_candidate: {len(candidates)} usable sentences, persona {k}")
    return candidates[k]


# --- verify ------------------------------------------------------------------------------------


def lexical_support(question: str, answer: str, document: str) -> float:
    """Best share of the question's content words found in a window of 3 sentences around a
    sentence that contains the answer (0.0 when none does, instruction-like ones not counted)."""
    q_words = set(content_words(question)) - set(content_words(answer))
    sentences = split_sentences(document)
    answer_norm = qa_checks.normalize(answer)
    best = 0.0
    for i, sentence in enumerate(sentences):
        if looks_like_instruction(sentence):
            continue
        if not qa_checks.contains_phrase(qa_checks.normalize(sentence), answer_norm):
            continue
        if not q_words:
            return 1.0
        window = set(content_words(" ".join(sentences[max(0, i - 1) : i + 2])))
        best = max(best, len(q_words & window) / len(q_words))
    return best


def verify_qa(payload: dict, params: RuleEngineParams) -> dict:
    question, answer, document = payload["question"], payload["answer"], payload["document"]
    checks = qa_checks.QACheckParams(**payload.get("checks", {}))
    ok, reason, detail = qa_checks.run_checks(
        question, answer, payload.get("answer_type") or "phrase", document, checks
    )
    verdict = {"correct": True, "leaks_answer": False, "self_contained": True, "reason": "ok"}
    if not ok:
        key = {"answer_leaked": "leaks_answer", "refers_to_document": "self_contained"}.get(
            reason, "correct"
        )
        verdict[key] = key == "leaks_answer"
        verdict["reason"] = f"{reason}: {detail}"
        return verdict
    support = lexical_support(question, answer, document)
    if support < params.verify_min_support:
        verdict["correct"] = False
        verdict["reason"] = f"weak lexical support {support:.2f}"
    elif len(content_words(question)) < 3:
        verdict["self_contained"] = False
        verdict["reason"] = "question names too little to stand alone"
    else:
        verdict["reason"] = f"answer found, lexical support {support:.2f}"
    return verdict


# --- the engine --------------------------------------------------------------------------------


def _rule_params(params: RuleEngineParams | BaseModel | dict | None) -> RuleEngineParams:
    """Accept our own params, a dict of them, or the factory's engine config (`LLMParams`),
    whose optional `rules` field holds ours; anything else means the defaults."""
    if isinstance(params, RuleEngineParams):
        return params
    if isinstance(params, dict):
        return RuleEngineParams(**params)
    nested = getattr(params, "rules", None)
    if isinstance(nested, RuleEngineParams | dict):
        return _rule_params(nested)
    return RuleEngineParams()


class RuleEngine:
    """Engine without a model. `generate` never raises for a per-row problem."""

    name = "none"
    model = "rules-v1"

    def __init__(self, params: RuleEngineParams | BaseModel | dict | None = None):
        self.params = _rule_params(params)
        self._handlers = {
            "llm_filter": lambda p: judge_page(p["document"], self.params),
            "identify": lambda p: identify_page(p, self.params),
            "generate": lambda p: generate_qa(p, self.params),
            "verify": lambda p: verify_qa(p, self.params),
        }

    def _estimate_tokens(self, text: str) -> int:
        return math.ceil(len(text.split()) * self.params.tokens_per_word)

    def _answer(self, request: LLMRequest) -> LLMResponse:
        prompt_tokens = sum(self._estimate_tokens(m.get("content", "")) for m in request.messages)
        handler = self._handlers.get(request.task)
        if handler is None:
            return LLMResponse(request.request_id, None, prompt_tokens, 0, None, "unknown task")
        try:
            text = json.dumps(handler(request.payload), ensure_ascii=False)
        except (NoCandidate, KeyError, ValueError, TypeError) as err:
            detail = str(err) if isinstance(err, NoCandidate) else f"rules: {err!r}"
            return LLMResponse(request.request_id, None, prompt_tokens, 0, None, detail)
        completion_tokens = self._estimate_tokens(text)
        if completion_tokens > request.max_tokens:
            # Behave like a model that ran out of budget: cut the reply and say so.
            keep = int(len(text) * request.max_tokens / completion_tokens)
            return LLMResponse(
                request.request_id, text[:keep], prompt_tokens, request.max_tokens, "length"
            )
        return LLMResponse(request.request_id, text, prompt_tokens, completion_tokens, "stop")

    def generate(self, requests: Sequence[LLMRequest]) -> list[LLMResponse]:
        return [self._answer(request) for request in requests]
