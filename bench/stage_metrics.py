"""Per-stage Spark metrics for the benchmarks: bytes shuffled and written (from Spark's status
REST API, by the `webscale-rl:<stage>` job group every stage sets) and peak driver memory
(Python RSS, JVM RSS and JVM heap in use, sampled while the stage runs; JVM heap retained after
a full GC at the stage's end).

    metrics = StageMetrics(spark)        # the session needs spark.ui.enabled=true (UI_CONF)
    with metrics.watch():                # wraps the pipeline's run_stage while inside
        pipeline.run(spark, cfg)
    metrics.per_stage()                  # stage -> {shuffle_mb, written_mb, py_rss_mb, ...}
"""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from contextlib import contextmanager

# The status store keeps 1,000 jobs/stages by default; a 100k-document run has more.
UI_CONF = {
    "spark.ui.enabled": "true",
    "spark.ui.port": "0",  # any free port: other Spark sessions may run on this machine
    "spark.ui.retainedJobs": "100000",
    "spark.ui.retainedStages": "100000",
}
_PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024


def _rss_bytes(pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except OSError:
        return 0


class StageMetrics:
    def __init__(self, spark, interval_s: float = 0.25):
        self._spark = spark
        self._sc = spark.sparkContext
        self._interval_s = interval_s
        self._jvm_pid = getattr(getattr(self._sc._gateway, "proc", None), "pid", None)
        self._runtime = self._sc._jvm.java.lang.Runtime.getRuntime()
        self._stage: str | None = None
        self._peaks: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    # --- memory -------------------------------------------------------------------------------

    def _sample(self) -> dict[str, float]:
        heap = self._runtime.totalMemory() - self._runtime.freeMemory()
        return {
            "py_rss_mb": _rss_bytes() / MB,
            "jvm_rss_mb": (_rss_bytes(self._jvm_pid) if self._jvm_pid else 0) / MB,
            "jvm_heap_mb": heap / MB,
        }

    def _record(self) -> None:
        with self._lock:
            if self._stage is None:
                return
            peak = self._peaks.setdefault(self._stage, {})
            for key, value in self._sample().items():
                peak[key] = max(peak.get(key, 0.0), value)

    @contextmanager
    def watch(self):
        """Sample memory while the pipeline runs; attribute samples to the running stage."""
        from webscale_rl.jobs import pipeline

        stop = threading.Event()

        def sampler():
            while not stop.wait(self._interval_s):
                self._record()

        original = pipeline.run_stage

        def run_stage(spark, cfg, module):
            with self._lock:
                self._stage = module.NAME
            self._runtime.gc()  # start each stage from a collected heap: its peak is its own
            try:
                return original(spark, cfg, module)
            finally:
                self._record()
                with self._lock:
                    # What the driver still holds after a full GC: flat across N if no stage
                    # keeps data in proportion to the rows on the driver.
                    self._runtime.gc()
                    heap = self._runtime.totalMemory() - self._runtime.freeMemory()
                    self._peaks.setdefault(module.NAME, {})["jvm_retained_mb"] = heap / MB
                    self._stage = None

        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        pipeline.run_stage = run_stage
        try:
            yield self
        finally:
            pipeline.run_stage = original
            stop.set()
            thread.join()

    # --- bytes ---------------------------------------------------------------------------------

    def _api(self, path: str):
        app = self._sc.applicationId
        url = f"{self._sc.uiWebUrl}/api/v1/applications/{app}/{path}"
        with urllib.request.urlopen(url, timeout=60) as resp:
            return json.load(resp)

    def bytes_by_stage(self) -> dict[str, dict[str, float]]:
        """Stage -> MB shuffled (written by map tasks) and written as output, over every Spark
        job of the app so far (callers diff two readings)."""
        if not self._sc.uiWebUrl:
            raise RuntimeError("Spark UI disabled: start the session with UI_CONF")
        stage_of = {}
        for job in self._api("jobs"):
            group = job.get("jobGroup") or ""
            if group.startswith("webscale-rl:"):
                for sid in job.get("stageIds", []):
                    stage_of[sid] = group.split(":", 1)[1]
        out: dict[str, dict[str, float]] = {}
        for st in self._api("stages"):
            name = stage_of.get(st["stageId"])
            if name is None or st.get("status") == "SKIPPED":
                continue
            acc = out.setdefault(name, {"shuffle_mb": 0.0, "written_mb": 0.0})
            acc["shuffle_mb"] += st.get("shuffleWriteBytes", 0) / MB
            acc["written_mb"] += st.get("outputBytes", 0) / MB
        return out

    def per_stage(self, before: dict | None = None) -> dict[str, dict[str, float]]:
        """Stage -> bytes since `before` (a `bytes_by_stage()` reading) and memory peaks."""
        now = self.bytes_by_stage()
        out = {}
        for name in set(now) | set(self._peaks):
            b = (before or {}).get(name, {})
            row = {k: v - b.get(k, 0.0) for k, v in now.get(name, {}).items()}
            row.update(self._peaks.get(name, {}))
            out[name] = row
        self._peaks = {}
        return out
