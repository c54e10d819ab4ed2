"""What a run leaves behind for people: charts, a QA sample, and one self-contained HTML report.

`log_run_artifacts` runs at the end of a pipeline run inside its MLflow run and logs the
resolved config (secrets redacted), the prompt files, a funnel chart (rows kept per stage, with
the top reject reasons), a domain chart and a sample of QA pairs. `render_report` rebuilds the
same views for any earlier run from its MLflow metrics and the Delta table versions it wrote,
into one HTML file with the images inlined, so it can be mailed or opened offline.

Web text is untrusted: every value is HTML-escaped, and only http(s) URLs become links.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field

from webscale_rl import tables
from webscale_rl.config import Config, to_yaml

# Tables that hold QA pairs with a `domain`, most final first: charts use the first that exists.
QA_TABLES = ("qa", "qa_clean", "qa_deduped", "qa_verified")
SAMPLE_SIZE = 50
SAMPLE_COLUMNS = ("question", "answer", "answer_type", "domain", "url")


@dataclass
class FunnelStep:
    stage: str
    rows_in: int
    kept: int  # rows that passed the stage (new or already done by an earlier run)
    rejects: dict[str, int] = field(default_factory=dict)


def funnel_from_results(results) -> list[FunnelStep]:
    """One step per StageResult: kept = rows in minus rows rejected."""
    return [
        FunnelStep(r.stage, int(r.rows_in), int(r.rows_in - r.rejected), dict(r.rejects))
        for r in results
    ]


def funnel_from_metrics(stage: str, metrics: dict[str, float]) -> FunnelStep:
    """A step from a stage run's MLflow metrics (as `tracking.log_stage_result` logs them)."""
    rejects = {k[len("rejects.") :]: int(v) for k, v in metrics.items() if k.startswith("rejects.")}
    rows_in = int(metrics.get("rows_in", 0))
    rejected = int(metrics.get("rows_rejected", sum(rejects.values())))
    return FunnelStep(stage, rows_in, rows_in - rejected, rejects)


def _figure(width: float, height: float):
    # The object API with the Agg canvas: no pyplot state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def top_reasons(rejects: dict[str, int], n: int = 3) -> str:
    items = sorted(rejects.items(), key=lambda x: (-x[1], x[0]))
    text = ", ".join(f"{r} {c}" for r, c in items[:n])
    return text + (f", +{len(items) - n} more" if len(items) > n else "")


def funnel_png(steps: list[FunnelStep]) -> bytes:
    """Horizontal bars, first stage on top: kept part in colour, rejected part grey."""
    fig = _figure(10, 0.7 * max(len(steps), 1) + 1.2)
    ax = fig.add_subplot(1, 1, 1)
    names = [s.stage for s in steps]
    kept = [s.kept for s in steps]
    rejected = [s.rows_in - s.kept for s in steps]
    y = list(range(len(steps)))[::-1]
    ax.barh(y, kept, color="#2b7bb9", label="kept")
    ax.barh(y, rejected, left=kept, color="#c8c8c8", label="rejected")
    top = max([s.rows_in for s in steps] + [1])
    for yi, s in zip(y, steps, strict=True):
        label = f"{s.kept} of {s.rows_in}"
        if s.rejects:
            label += f"  ({top_reasons(s.rejects)})"
        ax.text(s.rows_in + top * 0.01, yi, label, va="center", fontsize=8)
    ax.set_yticks(y, names)
    ax.set_xlim(0, top * 2.2)  # room for the labels right of the bars
    ax.set_xlabel("rows")
    ax.set_title("Funnel: rows kept per stage, with top reject reasons")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8, frameon=False)
    return _png(fig)


def domains_png(counts: list[tuple[str, int]], source: str) -> bytes:
    fig = _figure(8, 0.35 * max(len(counts), 1) + 1.2)
    ax = fig.add_subplot(1, 1, 1)
    labels = [d or "(none)" for d, _ in counts][::-1]
    ax.barh(range(len(counts)), [n for _, n in counts][::-1], color="#6a9f3a")
    ax.set_yticks(range(len(counts)), labels)
    ax.set_xlabel("QA pairs")
    ax.set_title(f"Domains ({source})")
    return _png(fig)


def qa_source(spark, cfg: Config, versions: dict[str, int | None] | None = None):
    """(logical name, DataFrame) of the most final QA table, at the run's version when known."""
    for logical in QA_TABLES:
        ref = tables.table_ref(cfg, logical)
        if not tables.exists(spark, ref):
            continue
        version = (versions or {}).get(ref)
        try:
            return logical, tables.read(spark, ref, version)
        except Exception:  # the version was vacuumed away: the current table is the best left
            return logical, tables.read(spark, ref)
    return None, None


def domain_counts(df) -> list[tuple[str, int]]:
    from pyspark.sql import functions as F

    rows = df.groupBy("domain").count().orderBy(F.desc("count"), "domain").collect()
    return [(r["domain"], int(r["count"])) for r in rows]


def qa_sample(df, seed: int, n: int = SAMPLE_SIZE) -> list[dict]:
    """A reproducible sample: the rows with the smallest seeded hash of their id."""
    from pyspark.sql import functions as F

    cols = [c for c in SAMPLE_COLUMNS if c in df.columns]
    picked = df.orderBy(F.xxhash64(F.col("qa_id"), F.lit(seed))).limit(n).select(*cols)
    return [r.asDict() for r in picked.collect()]


def _cell(column: str, value) -> str:
    text = "" if value is None else str(value)
    if column == "url" and re.match(r"^https?://", text, re.IGNORECASE):
        href = html.escape(text, quote=True)
        return (
            f'<td><a href="{href}" rel="noopener noreferrer nofollow">{html.escape(text)}</a></td>'
        )
    return f"<td>{html.escape(text)}</td>"


def qa_table_html(rows: list[dict], table_id: str = "qa-sample") -> str:
    if not rows:
        return '<p class="empty">No QA table in this lakehouse yet.</p>'
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "\n".join("<tr>" + "".join(_cell(c, r.get(c)) for c in cols) + "</tr>" for r in rows)
    return (
        f'<table id="{table_id}"><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>'
    )


STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1200px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td { max-width: 420px; overflow-wrap: anywhere; }
img { max-width: 100%; }
.meta td:first-child { font-weight: bold; }
"""


def page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
        f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def funnel_table_html(steps: list[FunnelStep]) -> str:
    head = "<tr><th>stage</th><th>in</th><th>kept</th><th>rejected</th><th>reject reasons</th></tr>"
    rows = "".join(
        f"<tr><td>{html.escape(s.stage)}</td><td>{s.rows_in}</td><td>{s.kept}</td>"
        f"<td>{s.rows_in - s.kept}</td><td>{html.escape(top_reasons(s.rejects, 10))}</td></tr>"
        for s in steps
    )
    return f'<table id="funnel-table">{head}{rows}</table>'


def _img(png: bytes, element_id: str, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img id="{element_id}" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


@dataclass
class RunViews:
    """Everything a report shows, computed once for both MLflow artifacts and the HTML file."""

    steps: list[FunnelStep]
    funnel_png: bytes
    qa_table: str | None
    domains: list[tuple[str, int]]
    domains_png: bytes | None
    sample: list[dict]


def build_views(spark, cfg: Config, steps: list[FunnelStep], versions=None) -> RunViews:
    logical, df = qa_source(spark, cfg, versions)
    domains, dpng, sample = [], None, []
    if df is not None:
        domains = domain_counts(df)
        dpng = domains_png(domains, tables.table_name(cfg, logical)) if domains else None
        sample = qa_sample(df, cfg.seed)
    return RunViews(steps, funnel_png(steps), logical, domains, dpng, sample)


def prompt_files() -> dict[str, str]:
    """name -> text of every packaged prompt (works from a zipped wheel too)."""
    from importlib.resources import files

    folder = files("webscale_rl") / "resources" / "prompts"
    if not folder.is_dir():
        return {}
    return {p.name: p.read_text(encoding="utf-8") for p in folder.iterdir() if p.is_file()}


def output_versions(results) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for r in results:
        out.update(r.outputs)
    return out


def log_run_artifacts(spark, cfg: Config, results) -> None:
    """Log config, prompts, charts and a QA sample to the active MLflow run (no-op without one)."""
    if not cfg.mlflow.enabled:
        return
    import mlflow

    if mlflow.active_run() is None:
        return
    views = build_views(spark, cfg, funnel_from_results(results), output_versions(results))
    mlflow.log_text(to_yaml(cfg), "config/config.yaml")
    for name, text in prompt_files().items():
        mlflow.log_text(text, f"prompts/{name}")
    mlflow.log_text(json.dumps([asdict(s) for s in views.steps], indent=1), "report/funnel.json")
    _log_bytes(mlflow, views.funnel_png, "report/funnel.png")
    if views.domains_png:
        _log_bytes(mlflow, views.domains_png, "report/domains.png")
    sample_page = page(
        f"QA sample ({len(views.sample)} pairs)", qa_table_html(views.sample, "qa-sample")
    )
    mlflow.log_text(sample_page, "report/qa_sample.html")


def _log_bytes(mlflow, data: bytes, artifact_path: str) -> None:
    import tempfile

    folder, name = os.path.split(artifact_path)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        mlflow.log_artifact(path, folder)


# ---------------------------------------------------------------------------- the report command


def find_run(client, cfg: Config, run_id: str | None):
    """The given run, or the latest top-level run of the configured experiment."""
    from webscale_rl.errors import WebscaleError

    if run_id:
        try:
            return client.get_run(run_id)
        except Exception:
            raise WebscaleError(f"MLflow run {run_id!r} not found") from None
    exp = client.get_experiment_by_name(cfg.mlflow.experiment)
    if exp is None:
        raise WebscaleError(f"MLflow experiment {cfg.mlflow.experiment!r} has no runs yet")
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string="attributes.status != 'RUNNING'",
        order_by=["attributes.start_time DESC"],
        max_results=50,
    )
    top = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    if not top:
        raise WebscaleError(f"MLflow experiment {cfg.mlflow.experiment!r} has no finished runs")
    return top[0]


def stage_runs(client, run) -> list:
    """The run's per-stage child runs in pipeline order."""
    from webscale_rl.jobs.pipeline import STAGES

    children = client.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'",
        max_results=1000,
    )
    order = {name: i for i, name in enumerate(STAGES)}

    def key(r):
        return (order.get(r.data.tags.get("webscale_rl.stage"), 99), r.info.start_time)

    return sorted(children, key=key)


def versions_from_tags(children) -> dict[str, int]:
    """Table ref -> version each stage wrote (tags `output.<table>` = `ref@vN`)."""
    out = {}
    for child in children:
        for k, v in child.data.tags.items():
            m = re.match(r"^(.*)@v(\d+)$", v or "")
            if k.startswith("output.") and m:
                out[m.group(1)] = int(m.group(2))
    return out


def render_report(spark, cfg: Config, run_id: str | None = None, out: str | None = None) -> str:
    """Write one self-contained HTML report for a run; returns its path."""
    from mlflow import MlflowClient

    from webscale_rl import tracking

    client = MlflowClient(tracking_uri=tracking.tracking_uri(cfg))
    run = find_run(client, cfg, run_id)
    children = stage_runs(client, run)
    steps = [
        funnel_from_metrics(c.data.tags.get("webscale_rl.stage", c.info.run_name), c.data.metrics)
        for c in children
    ]
    views = build_views(spark, cfg, steps, versions_from_tags(children))
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.info.start_time / 1000))
    meta = [
        ("run id", run.info.run_id),
        ("run name", run.info.run_name or ""),
        ("status", run.info.status),
        ("started", started),
        ("lakehouse", run.data.tags.get("webscale_rl.lakehouse", cfg.lakehouse)),
        ("QA table", views.qa_table or "none yet"),
    ]
    parts = [
        '<table class="meta">'
        + "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in meta)
        + "</table>",
        "<h2>Funnel</h2>",
        _img(views.funnel_png, "funnel", "funnel chart") if steps else "<p>No stage runs.</p>",
        funnel_table_html(steps),
        "<h2>Domains</h2>",
        _img(views.domains_png, "domains", "domain distribution")
        if views.domains_png
        else '<p class="empty">No QA pairs yet.</p>',
        f"<h2>Sample of {len(views.sample)} QA pairs</h2>",
        qa_table_html(views.sample),
    ]
    path = out or os.path.join("reports", f"webscale_rl_run_{run.info.run_id}.html")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page(f"webscale-rl run {run.info.run_name or run.info.run_id}", "\n".join(parts)))
    return os.path.abspath(path)
