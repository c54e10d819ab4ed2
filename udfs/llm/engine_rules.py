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
from collections.abc import Sequence
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field

from webscale_rl.udfs.llm import qa_checks
from webscale_rl.udfs.llm.interface import LLMRequest, LLMResponse
from webscale_rl.udfs.llm.prompts import resource_dir
from webscale_rl.udfs.llm.rule_questions import NoCandidate, find_spans, generate_qa, qa_candidates
from webscale_rl.udfs.llm.rule_text import content_words, looks_like_instruction, split_sentences

# find_spans and qa_candidates are read from here by tests, fakes and benchmarks.
__all__ = [
    "RuleEngine",
    "RuleEngineParams",
    "domain_scores",
    "find_spans",
    "generate_qa",
    "identify_page",
    "judge_page",
    "qa_candidates",
    "split_sentences",
    "verify_qa",
]


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
    # has_context: the rule engine's questions are its page's own sentence with the answer taken
    # out, so they carry the sentence's background; judging more needs a model.
    verdict = {
        "correct": True,
        "leaks_answer": False,
        "self_contained": True,
        "has_context": True,
        "reason": "ok",
    }
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
