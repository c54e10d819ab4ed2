"""MLflow tracking: one run per pipeline invocation, a nested run per stage.

Params are the resolved config with secrets redacted; metrics are rows in/out and rejects by
reason; tags name each input/output Delta table and its version. The embedded default is a
SQLite store beside the lakehouse; MLFLOW_TRACKING_URI or `mlflow.tracking_uri` overrides it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator

from webscale_rl.config import Config, flatten

log = logging.getLogger(__name__)


def tracking_uri(cfg: Config) -> str:
    if cfg.mlflow.tracking_uri:
        return cfg.mlflow.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:/", cfg.lakehouse):
        return "databricks" if os.environ.get("DATABRICKS_RUNTIME_VERSION") else "file:./mlruns"
    parent = os.path.dirname(os.path.abspath(cfg.lakehouse))
    return f"sqlite:///{os.path.join(parent, 'mlflow.db')}"


def setup(cfg: Config):
    import mlflow

    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri(cfg))
    mlflow.set_experiment(cfg.mlflow.experiment)
    return mlflow


@contextlib.contextmanager
def pipeline_run(cfg: Config, name: str) -> Iterator[str]:
    """Start the parent run, log the config, and yield its run id (stored on every row)."""
    if not cfg.mlflow.enabled:
        yield cfg.run_id or "untracked"
        return
    mlflow = setup(cfg)
    with mlflow.start_run(run_name=name) as run:
        params = flatten(cfg)
        params.pop("run_id", None)
        # MLflow caps a param value at 6000 characters.
        mlflow.log_params({k: v[:6000] for k, v in params.items()})
        mlflow.set_tag("webscale_rl.lakehouse", cfg.lakehouse)
        yield run.info.run_id


@contextlib.contextmanager
def stage_run(cfg: Config, stage: str) -> Iterator[object]:
    if not cfg.mlflow.enabled:
        yield None
        return
    import mlflow

    with mlflow.start_run(run_name=stage, nested=True) as run:
        mlflow.set_tag("webscale_rl.stage", stage)
        yield run


def set_tags(cfg: Config, tags: dict[str, str]) -> None:
    """Tag the active run (the stage's inside a stage, else the pipeline's); no-op untracked."""
    if not cfg.mlflow.enabled:
        return
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.set_tags(tags)


def log_stage_result(result) -> None:
    """Log a StageResult to the active (stage) run."""
    import mlflow

    if mlflow.active_run() is None:
        return
    metrics = {
        "rows_in": result.rows_in,
        "rows_out": result.rows_out,
        "rows_rejected": result.rejected,
        "rows_skipped": result.skipped,
        "duration_s": result.seconds,
    }
    for reason, n in result.rejects.items():
        metrics[f"rejects.{_metric_key(reason)}"] = n
    metrics.update(result.metrics)
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
    tags = {}
    for kind, tables in (("input", result.inputs), ("output", result.outputs)):
        for ref, ver in tables.items():
            tags[f"{kind}.{_metric_key(os.path.basename(ref.rstrip('/')))}"] = f"{ref}@v{ver}"
    mlflow.set_tags(tags)
    _log_inputs(result)


def _log_inputs(result) -> None:
    """Record input tables as MLflow dataset inputs where the MLflow build supports it."""
    import mlflow

    try:
        from mlflow.data.delta_dataset_source import DeltaDatasetSource
        from mlflow.data.meta_dataset import MetaDataset
    except ImportError:
        return
    for ref, ver in result.inputs.items():
        try:
            if "/" in ref or ":" in ref:
                source = DeltaDatasetSource(path=ref, delta_table_version=ver)
            else:
                source = DeltaDatasetSource(delta_table_name=ref, delta_table_version=ver)
            ds = MetaDataset(source=source, name=os.path.basename(ref.rstrip("/")))
            mlflow.log_input(ds, context="input")
        except Exception as err:  # tracking must never fail a stage
            log.debug("could not log dataset input %s: %s", ref, err)


def _metric_key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", text)[:250]
