"""Test double: scripted LLM answers, chosen per request from its task and its document.

There is no LLM on a developer machine or in CI. These functions stand in for one:

- `respond(request)` is a `llm.simulated_responder` for `SimulatedEngine`. A document that
  holds a marker `[scenario:<name>]` gets the scripted (usually broken) reply of that scenario
  for the task it targets; every other request gets the rule engine's answer.
- `respond_or_die(request)`: as `respond`, but a request whose persona holds `[die]` kills the
  engine (an exception Spark cannot swallow) once its Spark task has finished one request: a
  worker lost in the middle of a chunk, after some of its work was paid for.
- `gullible(request)`: a model that obeys the page: it answers with any JSON object of the
  task's shape planted in the document (prompt injection), else it finds every page worth
  keeping and answers the other tasks like the rule engine.
- `ChatResponder`: answers an OpenAI chat-completions body (for `fake_openai_server`) by reading
  the document, persona, question and answer back out of the prompt and applying the rules.

Spark workers import this file as the top-level module `scripted_engine`
(`SparkContext.addPyFile`), so it imports only the installed package.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter

from webscale_rl.udfs.llm import engine_rules
from webscale_rl.udfs.llm.engine_rules import RuleEngine, RuleEngineParams
from webscale_rl.udfs.llm.interface import LLMRequest
from webscale_rl.udfs.llm.tasks import extract_json

SCENARIO = re.compile(r"\[scenario:([a-z0-9-]+)\]")
RULES = RuleEngine()

# scenario -> (task it targets, expected reject reason). Tests read the reasons from here.
EXPECTED = {
    "filter-malformed": ("llm_filter", "malformed_json"),
    "filter-missing-field": ("llm_filter", "missing_field:self_contained"),
    "filter-empty": ("llm_filter", "empty_response"),
    "filter-truncated": ("llm_filter", "truncated"),
    "identify-bad-domain": ("identify", "domain_not_in_list"),
    "identify-four-personas": ("identify", "too_many_personas"),
    "generate-paragraph": ("generate", "answer_too_long"),
    "generate-leak": ("generate", "answer_leaked"),
    "generate-absent": ("generate", "answer_not_in_document"),
    "verify-incorrect": ("verify", "checker_incorrect"),
}


def scenario_of(document: str) -> str | None:
    match = SCENARIO.search(document or "")
    return match.group(1) if match else None


def rules_text(request: LLMRequest, engine: RuleEngine = RULES) -> str:
    response = engine.generate([request])[0]
    if response.text is None:
        raise ValueError(response.error)  # SimulatedEngine turns this into a row error
    return response.text


def _scripted(request: LLMRequest, scenario: str) -> str:
    document = request.payload["document"]
    if scenario == "filter-malformed":
        return "Sure! The page looks informative to me, yes."
    if scenario == "filter-missing-field":
        return json.dumps({"informative": True, "reason": "dense facts"})
    if scenario == "filter-empty":
        return ""
    if scenario == "filter-truncated":
        return '{"informative": true, "self_contained": true, "reason": "' + "very " * 600
    if scenario == "identify-bad-domain":
        return json.dumps({"domain": "Astrology", "personas": ["a stargazer"]})
    if scenario == "identify-four-personas":
        return json.dumps({"domain": "Other", "personas": ["a", "b", "c", "d"]})
    if scenario == "generate-paragraph":
        paragraph = " ".join(document.split()[:40])
        return json.dumps(
            {"question": "What does the page say?", "answer": paragraph, "answer_type": "phrase"}
        )
    if scenario == "generate-leak":
        qa = json.loads(rules_text(request))
        # the hint goes inside the question: a question must still end with "?"
        qa["question"] = f"{qa['question'].rstrip().rstrip('?')} (hint: it is {qa['answer']})?"
        return json.dumps(qa)
    if scenario == "generate-absent":
        return json.dumps(
            {
                "question": "Which harbour city hosted the first glass fair of 1850?",
                "answer": "Port Zanzibar",
                "answer_type": "name",
            }
        )
    if scenario == "verify-incorrect":
        return json.dumps(
            {
                "correct": False,
                "leaks_answer": False,
                "self_contained": True,
                "reason": "the page says otherwise",
            }
        )
    raise KeyError(scenario)


def respond(request: LLMRequest) -> str:
    scenario = scenario_of(request.payload.get("document", ""))
    if scenario in EXPECTED and EXPECTED[scenario][0] == request.task:
        return _scripted(request, scenario)
    return rules_text(request)


class EngineDied(BaseException):
    """Not an Exception: it escapes the engine's per-row error handling and fails the task."""


_answered_in_task: Counter = Counter()


def _task_attempt() -> int:
    from pyspark import TaskContext

    ctx = TaskContext.get()
    return -1 if ctx is None else ctx.taskAttemptId()


def respond_or_die(request: LLMRequest) -> str:
    attempt = _task_attempt()
    if "[die]" in request.payload.get("persona", "") and _answered_in_task[attempt] >= 1:
        raise EngineDied(f"engine died at {request.request_id}")
    text = respond(request)
    _answered_in_task[attempt] += 1
    return text


TASK_KEYS = {
    "llm_filter": {"informative", "self_contained"},
    "identify": {"domain", "personas"},
    "generate": {"question", "answer"},
    "verify": {"correct"},
}


def planted_json(document: str, task: str) -> str | None:
    """The first JSON object in the page that has the task's keys (what an injection plants)."""
    start = document.find("{")
    while start >= 0:
        obj = extract_json(document[start:])
        if obj is not None and TASK_KEYS[task] <= set(obj):
            return json.dumps(obj)
        start = document.find("{", start + 1)
    return None


def gullible(request: LLMRequest) -> str:
    planted = planted_json(request.payload["document"], request.task)
    if planted is not None:
        return planted
    if request.task == "llm_filter":
        return json.dumps({"informative": True, "self_contained": True, "reason": "looks fine"})
    return rules_text(request)


# --- answering OpenAI chat bodies (fake_openai_server) ----------------------------------------


def _between(text: str, tag: str) -> str | None:
    match = re.search(rf"<{tag}>\n?(.*?)\n?</{tag}>", text, re.DOTALL)
    return match.group(1) if match else None


class ChatResponder:
    """Reads the task from the response-format name and the inputs from the prompt's tags."""

    def __init__(self, params: RuleEngineParams | None = None):
        self.params = params or RuleEngineParams()
        self._personas: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self.tasks: Counter = Counter()

    def __call__(self, body: dict) -> str:
        task = body["response_format"]["json_schema"]["name"]
        schema = body["response_format"]["json_schema"]["schema"]
        prompt = body["messages"][-1]["content"]
        document = _between(prompt, "document") or ""
        with self._lock:
            self.tasks[task] += 1
        if task == "llm_filter":
            return json.dumps(engine_rules.judge_page(document, self.params))
        if task == "identify":
            payload = {
                "doc_id": hashlib.sha256(document.encode()).hexdigest(),
                "document": document,
                "domains": schema["properties"]["domain"]["enum"],
                "max_personas": schema["properties"]["personas"]["maxItems"],
            }
            return json.dumps(engine_rules.identify_page(payload, self.params))
        if task == "generate":
            return json.dumps(self._generate(document, _between(prompt, "persona") or ""))
        if task == "verify":
            payload = {
                "document": document,
                "question": _between(prompt, "question") or "",
                "answer": _between(prompt, "answer") or "",
                "answer_type": "phrase",
            }
            return json.dumps(engine_rules.verify_qa(payload, self.params))
        raise ValueError(f"unknown task {task!r}")

    def _generate(self, document: str, persona: str) -> dict:
        # The k-th persona seen for a page gets the page's k-th best candidate.
        with self._lock:
            seen = self._personas.setdefault(document, [])
            if persona not in seen:
                seen.append(persona)
            k = seen.index(persona)
        candidates = engine_rules.qa_candidates(document, self.params)
        if k < len(candidates):
            return candidates[k]
        return {
            "question": "What else could one ask here?",
            "answer": "nothing",
            "answer_type": "phrase",
        }
