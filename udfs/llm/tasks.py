"""The paper's four LLM tasks: request building, JSON schemas, response parsing.

A Spark stage does, per partition:

    requests = [build_request(task, row, params, sampling) for row in rows]
    responses = engine.generate(requests)
    results = [parse_response(task, resp, row, params) for resp, row in zip(responses, rows)]

and writes `result.fields` for `result.ok` rows, `(reject_reason, reject_detail)` for the others.

Row fields read (names as in `webscale_rl.schemas.tables`):
- every task: `doc_id` (or `id`), `text`
- generate: `domain`, `persona`, and `persona_idx` (int, 0..max_personas-1; default 0)
- verify: `question`, `answer`, `answer_type`, and `qa_id` (optional, else doc_id#persona_idx)

Fields returned on success:
- llm_filter: informative, self_contained, filter_reason
- identify: domain (canonical spelling from the list), personas (1..max_personas strings)
- generate: question, answer, answer_type (already passed `qa_checks.run_checks`)
- verify: verify_correct, verify_leaks_answer, verify_self_contained, verify_reason (a reply
  with has_context=false, a question whose answer only the page holds, is `checker_no_context`)

Too many personas: a reply with more than `max_personas` is rejected (`too_many_personas`),
not cut. The schema sent to the engine caps the list, so a longer one means the model ignored
its output contract, and the first three of such a reply are no more trustworthy than the rest.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from webscale_rl.udfs.llm import prompts
from webscale_rl.udfs.llm.answer_choices import answer_choices, choice_type
from webscale_rl.udfs.llm.engine_rules import lexical_support
from webscale_rl.udfs.llm.interface import TASKS, LLMRequest, LLMResponse
from webscale_rl.udfs.llm.json_reply import extract_json  # noqa: F401 - part of this module's API
from webscale_rl.udfs.llm.qa_checks import (
    ANSWER_TYPES,
    QACheckParams,
    contains_phrase,
    normalize,
    run_checks,
)
from webscale_rl.udfs.llm.rule_text import content_words, split_sentences
from webscale_rl.udfs.llm.schemas import task_schema

DEFAULT_DOMAINS = [
    "Math",
    "Technology & Engineering",
    "Coding",
    "Social Science",
    "Natural Science",
    "Travel & Lifestyle",
    "Commerce & Economics",
    "Medicine & Health",
    "Education",
    "Other",
]

# Completion budgets per task when the sampling settings give none: JSON replies are short.
DEFAULT_MAX_TOKENS = {"llm_filter": 160, "identify": 256, "generate": 320, "verify": 200}


class TaskParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domains: list[str] = Field(
        default_factory=lambda: list(DEFAULT_DOMAINS),
        description="Domains `identify` may choose from; 'Other' is the usual catch-all.",
    )
    max_personas: int = Field(3, ge=1, le=10, description="Most personas kept per document.")
    n_fewshot: int = Field(2, ge=0, le=8, description="Demonstrations per generate prompt.")
    seed: int = Field(0, description="Seed for few-shot sampling and for the engines' sampler.")
    max_doc_chars: int = Field(
        12000, ge=200, description="Documents are cut to this many characters in prompts."
    )
    checks: QACheckParams = Field(
        default_factory=QACheckParams, description="Answer length bounds and matching tolerances."
    )
    answer_choices: int = Field(
        0,
        ge=0,
        le=40,
        description="For a small generator: > 0 lists up to this many spans of the page "
        "(numbers, dates, names) in the generate prompt and makes the answer one of them "
        "(udfs/llm/answer_choices.py). 0 = the model finds its own answer (a strong model).",
    )
    focus_fact: bool = Field(
        False,
        description="For a small generator, with answer_choices > 0: each persona gets one of "
        "those spans, spread over the page, and the prompt shows the sentences around it "
        "instead of the page; the answer is that span and the model writes the question. The "
        "checks still read the whole page.",
    )

    @model_validator(mode="after")
    def _focus_needs_choices(self) -> TaskParams:
        if self.focus_fact and not self.answer_choices:
            raise ValueError(
                "tasks.focus_fact picks among answer choices: set tasks.answer_choices"
            )
        return self

    @field_validator("domains")
    @classmethod
    def _domains_ok(cls, domains: list[str]) -> list[str]:
        if not domains or any(not d.strip() for d in domains):
            raise ValueError("domains must be a non-empty list of non-empty names")
        if len({_domain_key(d) for d in domains}) != len(domains):
            raise ValueError(f"domains must be distinct: {domains}")
        return domains


@dataclass
class TaskResult:
    ok: bool
    fields: dict = field(default_factory=dict)
    reject_reason: str | None = None
    reject_detail: str | None = None


def _reject(reason: str, detail: str = "") -> TaskResult:
    return TaskResult(ok=False, reject_reason=reason, reject_detail=detail[:500])


# --- building requests ---------------------------------------------------------------------


def _required_str(row: Mapping, name: str, task: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{task}: row needs a non-empty string field {name!r}")
    return value


def _doc_id(row: Mapping, task: str) -> str:
    value = row.get("doc_id", row.get("id"))
    if value is None or str(value) == "":
        raise ValueError(f"{task}: row needs a 'doc_id' (or 'id')")
    return str(value)


def row_key(task: str, row: Mapping) -> str:
    """The row's id within its stage: doc_id, or doc_id#persona for the per-persona tasks."""
    doc_id = _doc_id(row, task)
    if task == "verify" and row.get("qa_id"):
        return str(row["qa_id"])
    if task in ("generate", "verify"):
        return f"{doc_id}#{int(row.get('persona_idx') or 0)}"
    return doc_id


def sample_fewshot(domain: str, doc_id: str, params: TaskParams) -> list[dict]:
    """`n_fewshot` demos of the domain, chosen by hash(doc_id, seed), kept in library order.

    Keyed on the document (not the persona), so all personas of a document share one prompt
    prefix; library order makes equal picks render identically across documents.
    """
    demos = prompts.load_demos(domain) or prompts.load_demos("Other")
    k = min(params.n_fewshot, len(demos))
    seed = int.from_bytes(hashlib.sha256(f"{doc_id}\0{params.seed}".encode()).digest()[:8], "big")
    picked = sorted(random.Random(seed).sample(range(len(demos)), k))
    return [demos[i] for i in picked]


def _sampling_value(llm_sampling: Any, name: str, default: Any) -> Any:
    if llm_sampling is None:
        return default
    if isinstance(llm_sampling, Mapping):
        value = llm_sampling.get(name)
    else:
        value = getattr(llm_sampling, name, None)
    return default if value is None else value


def _task_inputs(task: str, row: Mapping, params: TaskParams) -> tuple[dict, dict]:
    """(template values, payload) for one row. Untrusted text is neutralised in the values."""
    doc_id = _doc_id(row, task)
    document = prompts.truncate_document(_required_str(row, "text", task), params.max_doc_chars)
    values = {"document": prompts.neutralize(document)}
    payload = {"doc_id": doc_id, "document": document}
    if task == "identify":
        values |= {
            "domains": "\n".join(f"- {d}" for d in params.domains),
            "max_personas": str(params.max_personas),
        }
        payload |= {"domains": list(params.domains), "max_personas": params.max_personas}
    elif task == "generate":
        domain = _required_str(row, "domain", task)
        persona = _required_str(row, "persona", task)
        demos = sample_fewshot(domain, doc_id, params)
        values |= {
            "domain": domain,
            "persona": prompts.neutralize(persona),
            "fewshot": prompts.format_fewshot(demos),
            "answer_types": ", ".join(ANSWER_TYPES),
            "max_answer_words": str(params.checks.answer_max_words),
        }
        payload |= {
            "domain": domain,
            "persona": persona,
            "persona_idx": int(row.get("persona_idx") or 0),
            "checks": params.checks.model_dump(),
        }
        choices = answer_choices(document, params.answer_choices) if params.answer_choices else []
        if params.focus_fact and choices:
            fact = focus_fact(document, choices, payload["persona_idx"], params.max_personas)
            values["document"] = prompts.neutralize(fact["excerpt"])
            values["answer"] = json.dumps(prompts.neutralize(fact["answer"]), ensure_ascii=False)
            payload["excerpt"] = fact["excerpt"]
            payload["focus_type"] = fact["answer_type"]
            choices = [(fact["answer"], fact["answer_type"])]
        values["choices"] = _choices_line([text for text, _ in choices])
        if choices:
            payload["answer_choices"] = [text for text, _ in choices]
    elif task == "verify":
        question = _required_str(row, "question", task)
        answer = _required_str(row, "answer", task)
        values |= {"question": prompts.neutralize(question), "answer": prompts.neutralize(answer)}
        payload |= {
            "question": question,
            "answer": answer,
            "answer_type": str(row.get("answer_type") or "phrase"),
            "checks": params.checks.model_dump(),
        }
    return values, payload


def focus_fact(document: str, choices: list[tuple[str, str]], persona_idx: int, personas: int):
    """The fact persona `persona_idx` asks about: {answer, answer_type, excerpt}.

    A 135M model given a whole page writes about anything, or copies the examples; given the
    two or three sentences that hold one fact and that fact as the answer, its task is the one
    its examples show (an excerpt turned into a question). The personas of a page get spans
    spread over it, so they ask about different facts.
    """
    answer, answer_type = choices[(persona_idx * len(choices)) // max(personas, 1) % len(choices)]
    sentences = split_sentences(document)
    key = normalize(answer)
    at = next(
        (i for i, s in enumerate(sentences) if contains_phrase(normalize(s), key)), len(sentences)
    )
    # The sentence before gives the subject a pronoun in the answer's sentence refers to.
    excerpt = " ".join(sentences[max(0, at - 1) : at + 1]) or document
    return {"answer": answer, "answer_type": answer_type, "excerpt": excerpt}


def _choices_line(choices: list[str]) -> str:
    if len(choices) == 1:
        answer = json.dumps(prompts.neutralize(choices[0]), ensure_ascii=False)
        return f"- The answer must be exactly {answer}: ask the question whose answer it is."
    if not choices:
        return ""
    listed = json.dumps([prompts.neutralize(c) for c in choices], ensure_ascii=False)
    return f"- The answer must be exactly one of these phrases of the document: {listed}"


def build_request(
    task: str, row: Mapping, params: TaskParams | None = None, llm_sampling: Any = None
) -> LLMRequest:
    """One engine request for one row.

    `llm_sampling` is anything with `max_tokens`, `temperature`, `top_p`, `seed` (attributes or
    keys); missing values fall back to greedy decoding and the task's default budget.
    The request id is `task:row_key:prompt_version:digest`, where the digest covers the
    payload, schema and sampling: rerunning the same row under the same prompt gives the same
    id, while any change to what the model would see gives a new one.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    if not isinstance(row, Mapping):
        raise TypeError(f"{task}: row must be a mapping, got {type(row).__name__}")
    params = params or TaskParams()
    values, payload = _task_inputs(task, row, params)
    schema = task_schema(task, params, payload.get("answer_choices"), payload.get("focus_type"))
    sampling = {
        "max_tokens": int(_sampling_value(llm_sampling, "max_tokens", DEFAULT_MAX_TOKENS[task])),
        "temperature": float(_sampling_value(llm_sampling, "temperature", 0.0)),
        "top_p": float(_sampling_value(llm_sampling, "top_p", 1.0)),
        "seed": _sampling_value(llm_sampling, "seed", params.seed),
    }
    version = prompts.prompt_version(task)
    # Penalties and server-specific fields change answers too; only set ones join the digest,
    # so ids made before they existed stay the same.
    extras = {
        k: v
        for k in ("presence_penalty", "frequency_penalty", "extra_body")
        if (v := _sampling_value(llm_sampling, k, None))
    }
    fingerprint = json.dumps(
        [payload, schema, sampling, params.n_fewshot, *([extras] if extras else [])],
        sort_keys=True,
        ensure_ascii=False,
    )
    digest = hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()[:12]
    return LLMRequest(
        request_id=f"{task}:{row_key(task, row)}:{version}:{digest}",
        task=task,
        messages=_messages(task, row, values, payload, params),
        json_schema=schema,
        payload=payload,
        **sampling,
    )


def _messages(task: str, row: Mapping, values: dict, payload: dict, params: TaskParams):
    if "excerpt" not in payload:
        return prompts.build_messages(task, values)
    demos = sample_fewshot(payload["domain"], payload["doc_id"], params)
    return prompts.build_focus_messages(task, values, demos)


# --- parsing responses ---------------------------------------------------------------------


class _FieldError(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _get_str(obj: dict, name: str) -> str:
    value = obj.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _FieldError(f"missing_field:{name}", f"{name} is absent or empty")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _FieldError("malformed_json", f"{name}: expected a string, got {value!r}"[:200])
    return str(value).strip()


def _get_bool(obj: dict, name: str) -> bool:
    value = obj.get(name)
    if value is None:
        raise _FieldError(f"missing_field:{name}", f"{name} is absent")
    if isinstance(value, bool):
        return value
    # Some models quote booleans; accept the two unambiguous spellings only.
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _FieldError("malformed_json", f"{name}: expected a boolean, got {value!r}"[:200])


def _domain_key(name: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", name.lower().replace("&", " and ")))


def _parse_llm_filter(obj: dict, row: Mapping, params: TaskParams) -> TaskResult:
    informative = _get_bool(obj, "informative")
    self_contained = _get_bool(obj, "self_contained")
    reason = _get_str(obj, "reason").splitlines()[0][:300]
    if not informative:
        return _reject("not_informative", reason)
    if not self_contained:
        return _reject("not_self_contained", reason)
    fields = {"informative": True, "self_contained": True, "filter_reason": reason}
    return TaskResult(ok=True, fields=fields)


def _parse_identify(obj: dict, row: Mapping, params: TaskParams) -> TaskResult:
    raw_domain = _get_str(obj, "domain")
    by_key = {_domain_key(d): d for d in params.domains}
    domain = by_key.get(_domain_key(raw_domain))
    if domain is None:
        return _reject("domain_not_in_list", raw_domain[:200])
    personas = obj.get("personas")
    if personas is None:
        raise _FieldError("missing_field:personas", "personas is absent")
    if isinstance(personas, str):
        personas = [personas]
    if not isinstance(personas, list) or not all(isinstance(p, str) for p in personas):
        raise _FieldError("malformed_json", f"personas: expected a list of strings, {personas!r}")
    personas = list(dict.fromkeys(p.strip() for p in personas if p.strip()))
    if not personas:
        raise _FieldError("missing_field:personas", "no non-empty persona")
    if len(personas) > params.max_personas:
        return _reject("too_many_personas", f"{len(personas)} > {params.max_personas}")
    return TaskResult(ok=True, fields={"domain": domain, "personas": personas})


MIN_CHOICE_SUPPORT = 0.34  # as the rule engine's checker (RuleEngineParams.verify_min_support)


def _copied_example(question: str, row: Mapping, params: TaskParams) -> str | None:
    """The few-shot example question this one copies (most of its words), if any. Small models
    copy examples; a copy is about the example's page, not this one."""
    words = set(content_words(question))
    if len(words) < 3 or not row.get("domain"):
        return None
    for demo in sample_fewshot(str(row["domain"]), _doc_id(row, "generate"), params):
        shared = words & set(content_words(demo["question"]))
        if len(shared) >= 0.7 * len(words):
            return demo["question"][:200]
    return None


def _parse_generate(obj: dict, row: Mapping, params: TaskParams) -> TaskResult:
    question = _get_str(obj, "question")
    answer = _get_str(obj, "answer")
    answer_type = _get_str(obj, "answer_type").lower()
    document = prompts.truncate_document(row.get("text") or "", params.max_doc_chars)
    if not question.rstrip().endswith("?"):
        # A small model fills the field with a statement or a pasted paragraph.
        return _reject("not_a_question", question[:200])
    copied = _copied_example(question, row, params)
    if copied:
        return _reject("copied_example", copied)
    if params.answer_choices:
        # Repair a near miss: a listed span has a known type, whatever type the model named.
        answer_type = choice_type(answer, answer_choices(document, params.answer_choices)) or (
            answer_type
        )
        # An answer picked from a list may have nothing to do with the question asked about it:
        # the question's words must be found around the answer in the page.
        support = lexical_support(question, answer, document)
        if support < MIN_CHOICE_SUPPORT:
            return _reject("weak_support", f"{support:.2f} of the question's words near the answer")
    ok, reason, detail = run_checks(question, answer, answer_type, document, params.checks)
    if not ok:
        return _reject(reason, detail)
    fields = {"question": question, "answer": answer, "answer_type": answer_type}
    return TaskResult(ok=True, fields=fields)


def _parse_verify(obj: dict, row: Mapping, params: TaskParams) -> TaskResult:
    correct = _get_bool(obj, "correct")
    leaks = _get_bool(obj, "leaks_answer")
    self_contained = _get_bool(obj, "self_contained")
    reason = _get_str(obj, "reason").splitlines()[0][:300]
    if not correct:
        return _reject("checker_incorrect", reason)
    if leaks:
        return _reject("checker_leak", reason)
    if not self_contained:
        return _reject("checker_not_self_contained", reason)
    if not _get_bool(obj, "has_context"):
        # The RL policy never sees the page: a fact only the page holds is trivia to memorise.
        return _reject("checker_no_context", reason)
    fields = {
        "verify_correct": True,
        "verify_leaks_answer": False,
        "verify_self_contained": True,
        "verify_reason": reason,
    }
    return TaskResult(ok=True, fields=fields)


_PARSERS = {
    "llm_filter": _parse_llm_filter,
    "identify": _parse_identify,
    "generate": _parse_generate,
    "verify": _parse_verify,
}


def parse_response(
    task: str, response: LLMResponse, row: Mapping, params: TaskParams | None = None
) -> TaskResult:
    """Turn one engine reply into output fields or a reject reason. Never raises on bad text."""
    if task not in _PARSERS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    params = params or TaskParams()
    if response.error:
        return _reject("engine_error", str(response.error))
    if response.finish_reason == "length":
        return _reject("truncated", f"{response.completion_tokens} completion tokens")
    if not response.text or not response.text.strip():
        return _reject("empty_response", f"finish_reason={response.finish_reason}")
    obj = extract_json(response.text)
    if obj is None:
        return _reject("malformed_json", response.text.strip()[:200])
    try:
        return _PARSERS[task](obj, row, params)
    except _FieldError as err:
        return _reject(err.reason, err.detail)
