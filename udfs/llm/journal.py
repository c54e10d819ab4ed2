"""A response journal, so a Spark task retry or a re-run of a crashed job never pays twice for a
request that already finished.

Storage: a folder of small JSONL files, one per engine batch, each written to a hidden temp
name and renamed into place, so readers never see half a batch and any number of processes
can write at once (each writes its own files; nothing is ever rewritten). The index by
request id is built in memory from the folder listing; each process reads a file only once
and afterwards only reads files that appeared since. A file that does not parse (a rename
that is not atomic on some FUSE mounts, caught mid-copy) is skipped and read again later.

Only usable answers are journaled: an error row (timeout, prompt_too_long, ...) is sent again
next time. Keep a folder small by scoping it: `journaled()` can put each Spark partition in its
own subfolder (`spark_partition_scope`), which is stable across task retries and across
re-runs over the same input.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from webscale_rl.udfs.llm.interface import Engine, LLMRequest, LLMResponse

log = logging.getLogger(__name__)

_SUFFIX = ".jsonl"


class ResponseJournal:
    def __init__(self, root_dir: str | os.PathLike):
        self.root = Path(root_dir)
        self._index: dict[str, LLMResponse] = {}
        self._read_files: set[str] = set()
        self._lock = threading.Lock()

    def scoped(self, *parts: str) -> ResponseJournal:
        """A journal in a subfolder (e.g. model, then partition); names are made path-safe."""
        return ResponseJournal(self.root.joinpath(*(safe_name(p) for p in parts)))

    def get_many(self, request_ids: Iterable[str]) -> dict[str, LLMResponse]:
        """Journaled responses for those ids that have one."""
        with self._lock:
            self._refresh()
            return {rid: self._index[rid] for rid in request_ids if rid in self._index}

    def put_many(self, responses: Sequence[LLMResponse]) -> int:
        """Journal the usable responses as one file; returns how many were written."""
        done = [r for r in responses if r.error is None and r.text is not None]
        if not done:
            return 0
        lines = "".join(json.dumps(dataclasses.asdict(r), ensure_ascii=False) + "\n" for r in done)
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:12]}{_SUFFIX}"
        with self._lock:
            _write_atomically(self.root, name, lines.encode("utf-8"))
            self._read_files.add(name)
            self._index.update((r.request_id, r) for r in done)
        return len(done)

    def _refresh(self) -> None:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return
        for name in sorted(names):
            if name.startswith(".") or not name.endswith(_SUFFIX) or name in self._read_files:
                continue
            responses = _read_file(self.root / name)
            if responses is None:
                continue  # incomplete; try again on the next refresh
            self._read_files.add(name)
            self._index.update((r.request_id, r) for r in responses)


def prune(root_dir: str | os.PathLike, older_than_hours: float) -> int:
    """Delete journal files not written for `older_than_hours`; returns how many.

    A journaled answer only matters until its row is committed to Delta (after that the stage's
    anti-join skips the row), so old files are dead weight. Pruning one whose row never got
    committed costs a single repeated request on the next run, never a wrong or lost row.
    """
    root = Path(root_dir)
    if not root.is_dir():
        return 0
    cutoff = time.time() - older_than_hours * 3600
    removed = 0
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if name.endswith(_SUFFIX) and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def _write_atomically(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{name}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        try:
            os.fsync(f.fileno())
        except OSError:
            pass  # some FUSE mounts (/dbfs) do not support fsync; close() still uploads
    os.replace(tmp, folder / name)


def _read_file(path: Path) -> list[LLMResponse] | None:
    try:
        text = path.read_text(encoding="utf-8")
        return [LLMResponse(**json.loads(line)) for line in text.splitlines() if line]
    except (OSError, ValueError, TypeError) as e:
        log.warning("journal file %s not readable yet (%s); will retry", path, type(e).__name__)
        return None


def safe_name(part: str) -> str:
    """A single path component from any string (model ids contain '/')."""
    cleaned = re.sub(r"[^A-Za-z0-9._=-]", "_", part).strip(".")
    return cleaned or "_"


def spark_partition_scope() -> str | None:
    """'partition-00042' inside a Spark task, None outside Spark."""
    try:
        from pyspark import TaskContext
    except ImportError:
        return None
    ctx = TaskContext.get()
    return None if ctx is None else f"partition-{ctx.partitionId():05d}"


class JournaledEngine:
    """An engine that answers finished requests from a journal and sends only the rest."""

    def __init__(
        self,
        engine: Engine,
        journal: ResponseJournal,
        *,
        batch_size: int | None = None,
        scope: Callable[[], str | None] | None = None,
    ):
        if batch_size is not None and batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.name = engine.name
        self.model = engine.model
        self.engine = engine
        self._journal = journal
        self._batch_size = batch_size
        self._scope = scope
        self._scoped: tuple[str | None, ResponseJournal] | None = None
        self.served_from_journal = 0
        self.sent = 0

    def generate(self, requests: Sequence[LLMRequest]) -> list[LLMResponse]:
        journal = self._current_journal()
        found = journal.get_many(r.request_id for r in requests)
        pending = [r for r in requests if r.request_id not in found]
        self.served_from_journal += len(requests) - len(pending)
        step = self._batch_size or max(1, len(pending))
        for start in range(0, len(pending), step):
            chunk = pending[start : start + step]
            out = self.engine.generate(chunk)
            self.sent += len(chunk)
            # Written before the next chunk is sent: a crash later keeps this chunk paid for.
            journal.put_many(out)
            found.update((r.request_id, o) for r, o in zip(chunk, out, strict=True))
        return [found[r.request_id] for r in requests]

    def _current_journal(self) -> ResponseJournal:
        # Keep only the current scope's index in memory: a reused Python worker moves on to
        # other partitions and must not grow without bound.
        scope = self._scope() if self._scope else None
        if self._scoped is None or self._scoped[0] != scope:
            journal = self._journal.scoped(scope) if scope else self._journal
            self._scoped = (scope, journal)
        return self._scoped[1]


def journaled(
    engine: Engine,
    journal: ResponseJournal,
    *,
    batch_size: int | None = None,
    scope: Callable[[], str | None] | None = None,
) -> JournaledEngine:
    """Wrap `engine` so requests already in `journal` are not sent again.

    batch_size: send the remaining requests in chunks of this many, journaling each chunk as it
    completes. scope: called per generate() to pick a subfolder (e.g. `spark_partition_scope`).
    """
    return JournaledEngine(engine, journal, batch_size=batch_size, scope=scope)
