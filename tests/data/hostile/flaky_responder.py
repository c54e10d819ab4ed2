"""`llm.simulated_responder` that kills its Python worker once, for the task-retry test.

The first request any worker sees (no marker file yet) creates the marker and ends the worker
process with `os._exit`, which no exception handler can swallow: Spark sees a lost task and
retries it (local[N,F] master). Every other request gets the rule engine's answer, exactly as
the simulated engine's default responder gives it.
"""

from __future__ import annotations

import os

MARKER_ENV = "WEBSCALE_RL_FLAKY_MARKER"
_RULES = None


def respond(request):
    global _RULES
    marker = os.environ[MARKER_ENV]
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        pass
    else:
        os.close(fd)
        os._exit(1)
    if _RULES is None:
        from webscale_rl.udfs.llm.engine import LLMParams
        from webscale_rl.udfs.llm.engine_rules import RuleEngine

        _RULES = RuleEngine(LLMParams())
    return _RULES.generate([request])[0].text
