"""The pipeline as users run it: the built wheel, `deploy/submit.sh`, a Spark standalone cluster.

The driver and executors run a Python that can import `webscale_rl` only from the wheel on
--py-files: the base interpreter with the venv's site-packages on PYTHONPATH (PYTHONPATH entries
do not run .pth files, so the editable install is invisible) and a working directory outside the
repo. A missing module in the wheel, a resource read that needs a real file, or a path that only
exists on the driver fails here and nowhere else.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SUBMIT = REPO / "deploy" / "submit.sh"
SMALL_WARC = "web/web_pages_small.warc.gz"

pytestmark = pytest.mark.slow


def base_python() -> str:
    return getattr(sys, "_base_executable", None) or sys.executable


def wheel_only_env(wheel: Path | None = None) -> dict[str, str]:
    """Environment under which Python sees the venv's dependencies but not the editable install."""
    site = sysconfig.get_paths()["purelib"]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env.update(
        PYSPARK_PYTHON=base_python(),
        PYSPARK_DRIVER_PYTHON=base_python(),
        PYTHONPATH=site,
        SPARK_LOCAL_IP="127.0.0.1",
        PYTHON=sys.executable,  # submit.sh builds with the venv, the jobs run without it
    )
    if wheel is not None:
        env["WHEEL"] = str(wheel)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel once through submit.sh; check the trick above really hides the repo."""
    probe = subprocess.run(
        [base_python(), "-c", "import webscale_rl"],
        env=wheel_only_env(),
        cwd="/",
        capture_output=True,
        text=True,
    )
    assert probe.returncode != 0, (
        "webscale_rl is importable without the wheel (not an editable install?): "
        "this test could not tell the wheel from the source tree"
    )
    dist = tmp_path_factory.mktemp("dist")
    out = subprocess.run(
        [str(SUBMIT), "--build-only"],
        env={**wheel_only_env(), "DIST_DIR": str(dist)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    path = Path(out.stdout.strip().splitlines()[-1])
    assert path.is_file() and path.suffix == ".whl", out.stdout
    return path


def submit(args: list[str], wheel: Path, cwd: Path, timeout: int = 600):
    out = subprocess.run(
        [str(SUBMIT), *args],
        env=wheel_only_env(wheel),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    (cwd / "submit.log").write_text(out.stdout + "\n---- stderr ----\n" + out.stderr)
    assert out.returncode == 0, (
        f"submit failed (log {cwd / 'submit.log'}):\n{out.stdout[-1500:]}\n{out.stderr[-3000:]}"
    )
    return out


def lakehouse_cfg(make_cfg, root: Path):
    return make_cfg(lakehouse=str(root))


def test_spark_submit_one_job_file_local_mode(wheel, tmp_path, shared_data, spark, make_cfg):
    """`spark-submit jobs/ingest.py --lakehouse ... --input ...` with the wheel on --py-files."""
    from webscale_rl import tables

    work = tmp_path / "work"
    work.mkdir()
    lakehouse = tmp_path / "lh"
    submit(
        [
            "--master",
            "local[2]",
            "--conf",
            "spark.ui.enabled=false",
            "stage",
            "ingest",
            "--lakehouse",
            str(lakehouse),
            "--input",
            str(shared_data / SMALL_WARC),
            # every run checks the benchmark files up front, as a cluster task would
            "--set",
            f"decontam.data_root={shared_data / 'benchmarks'}",
        ],
        wheel,
        work,
    )
    cfg = lakehouse_cfg(make_cfg, lakehouse)
    docs = tables.table_ref(cfg, "documents")
    assert tables.exists(spark, docs)
    assert tables.read(spark, docs).count() > 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
    raise AssertionError(f"{log.name}: {text!r} not seen (exit={proc.poll()}):\n{tail}")


def stop(procs: list[subprocess.Popen]) -> None:
    """Each daemon leads its own process group (its executors and Python workers too)."""
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout=10)


@pytest.fixture()
def standalone_cluster(tmp_path):
    """A master and two 1-core workers on 127.0.0.1, started with pyspark's own spark-class."""
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    spark_class = spark_home / "bin" / "spark-class"
    env = {**wheel_only_env(), "SPARK_HOME": str(spark_home)}
    logs = tmp_path / "cluster"
    logs.mkdir()
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []

    def start(name: str, args: list[str]) -> tuple[subprocess.Popen, Path]:
        log = logs / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(spark_class), *args],
                env=env,
                cwd=logs,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        procs.append(proc)
        return proc, log

    try:
        master, log = start(
            "master",
            [
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--webui-port",
                str(free_port()),
            ],
        )
        wait_for(log, "I have been elected leader", master)
        workers = []
        for i in (1, 2):
            work_dir = logs / f"worker{i}"
            worker, wlog = start(
                f"worker{i}",
                [
                    "org.apache.spark.deploy.worker.Worker",
                    url,
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    "1",
                    "--memory",
                    "1g",
                    "--webui-port",
                    str(free_port()),
                    "--work-dir",
                    str(work_dir),
                ],
            )
            workers.append((worker, wlog, work_dir))
        for worker, wlog, _ in workers:
            wait_for(wlog, "Successfully registered with master", worker)
        yield url, [w[2] for w in workers]
    finally:
        stop(procs)


def test_pipeline_on_standalone_cluster(
    standalone_cluster, wheel, tmp_path, shared_data, spark, make_cfg
):
    from webscale_rl import tables
    from webscale_rl.jobs.base import load_stage
    from webscale_rl.jobs.pipeline import STAGES

    url, work_dirs = standalone_cluster
    work = tmp_path / "job"
    work.mkdir()
    # The lakehouse is the default ./lakehouse of the job's working directory (absolute paths
    # are resolved on the driver, so the executors on this machine write to the same folder).
    submit(
        [
            "--master",
            url,
            "--conf",
            "spark.executor.memory=768m",
            "--conf",
            f"spark.executorEnv.PYTHONPATH={sysconfig.get_paths()['purelib']}",
            "--conf",
            "spark.ui.enabled=false",
            "--conf",
            "spark.sql.shuffle.partitions=4",
            "run",
            "--input",
            str(shared_data / SMALL_WARC),
            # the job runs outside the checkout: name the benchmarks folder explicitly
            "--set",
            f"decontam.data_root={shared_data / 'benchmarks'}",
        ],
        wheel,
        work,
        timeout=900,
    )
    cfg = lakehouse_cfg(make_cfg, work / "lakehouse")
    docs = tables.table_ref(cfg, "documents")
    assert tables.read(spark, docs).count() > 0
    missing = [
        s for s in STAGES if not tables.exists(spark, tables.table_ref(cfg, load_stage(s).OUTPUT))
    ]
    assert not missing, f"stages without an output table after the cluster run: {missing}"
    # The work really ran on the cluster: each worker launched an executor for the app.
    for work_dir in work_dirs:
        apps = list(work_dir.glob("app-*")) if work_dir.exists() else []
        assert apps, f"worker {work_dir.name} ran no executor"
