"""The LLM stages: tasks, prompts, JSON schemas, engines (vLLM, OpenAI-compatible, rules, simulated),
the response journal and the stage runner shared by annotate, generate and verify."""
