"""One typed config for the whole pipeline.

Read from YAML, overridden from the CLI with `--set section.key=value`. Every field has a
documented default; an unknown key is rejected with a message naming it. Stage parameters are
defined next to the code that uses them and composed here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from webscale_rl import stages
from webscale_rl.errors import ConfigError
from webscale_rl.udfs.decontam.ngrams import DecontamParams
from webscale_rl.udfs.llm.engine import LLMParams
from webscale_rl.udfs.llm.placement import LLM_STAGES, stage_llm
from webscale_rl.udfs.llm.stage import LLMStageParams
from webscale_rl.udfs.llm.tasks import TaskParams
from webscale_rl.udfs.publish.dataset_card import ExportSettings, PublishParams
from webscale_rl.udfs.read.warc import WarcParams
from webscale_rl.udfs.text.langid import LangIdParams
from webscale_rl.udfs.text.minhash import MinHashParams
from webscale_rl.udfs.text.quality import QualityParams

TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
CATALOG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
REPO_ROOT = Path(__file__).resolve().parent.parent
REASON = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SparkSettings(Section):
    master: str = Field(
        "local[*]", description="Spark master for local runs; ignored on a cluster."
    )
    app_name: str = Field("webscale-rl", description="Spark application name for local runs.")
    shuffle_partitions: int = Field(
        8,
        ge=1,
        description="spark.sql.shuffle.partitions for local runs (clusters keep their own).",
    )
    driver_memory: str = Field("4g", description="Driver memory for local runs.")
    conf: dict[str, str] = Field(
        default_factory=dict, description="Extra Spark settings applied to local sessions only."
    )


class MLflowSettings(Section):
    enabled: bool = Field(True, description="Track runs in MLflow.")
    tracking_uri: str | None = Field(
        None,
        description="Tracking URI; default: $MLFLOW_TRACKING_URI, else a SQLite store "
        "`mlflow.db` beside the lakehouse folder.",
    )
    experiment: str = Field("webscale-rl", description="MLflow experiment name.")


class _TableNameRules(Section):
    @field_validator("*")
    @classmethod
    def _safe(cls, v: str) -> str:
        if not TABLE_NAME.match(v):
            raise ValueError(
                f"table name {v!r} must match {TABLE_NAME.pattern} (letters, digits, _)"
            )
        return v


# One field per logical table, from the stage declarations (webscale_rl/stages.py): a stage's
# output table is declared once, with its default name and description.
TableNames = create_model(
    "TableNames",
    __base__=_TableNameRules,
    __module__=__name__,
    __doc__="Logical table names. Locally each is a Delta path under the lakehouse; with "
    "`catalog` set, a Unity Catalog table `catalog.schema.name`.",
    **{
        logical: (str, Field(default, description=description))
        for logical, default, description in stages.tables()
    },
)


class IngestSettings(Section):
    input: str | list[str] | None = Field(
        None,
        description="Input path, glob or list of them (local, s3://, dbfs:/, abfss://, ...). "
        "No default: a run that ingests needs `--input` or this key (`make demo` passes one).",
    )
    format: Literal["auto", "warc", "wet", "jsonl", "parquet", "delta"] = Field(
        "auto",
        description="Input format; `auto` infers it from file names (.warc.gz, .wet.gz, .jsonl, "
        ".json.gz, .parquet, a folder with _delta_log) and reads the first bytes only of files "
        "whose name does not tell.",
    )
    text_field: str = Field(
        "text", description="Text column/field for jsonl, parquet and delta input."
    )
    url_field: str = Field(
        "url", description="URL column/field for jsonl, parquet and delta input."
    )
    id_field: str = Field(
        "id", description="Source id column/field, used in reject rows when present."
    )
    max_text_chars: int = Field(
        1_000_000,
        ge=1000,
        description="Longer texts are cut to this length at ingest (kept, flagged).",
    )
    warc: WarcParams = Field(
        default_factory=WarcParams, description="WARC/WET reading and HTML extraction."
    )
    files_per_task: int = Field(1, ge=1, description="WARC/WET files parsed per Spark task.")


class FilterSettings(Section):
    langid: LangIdParams = Field(default_factory=LangIdParams, description="Language filter.")
    quality: QualityParams = Field(
        default_factory=QualityParams, description="Heuristic quality rules."
    )


class Config(Section):
    lakehouse: str = Field(
        "./lakehouse", description="Folder (or s3:// / dbfs:/ URI) holding Delta tables."
    )
    catalog: str | None = Field(
        None, description="Unity Catalog `catalog.schema`; when set, tables are catalog tables."
    )
    run_id: str = Field(
        "", description="Set by the runner to the MLflow run id; stored on every row."
    )
    seed: int = Field(0, description="Seed for every sampled choice, so runs are reproducible.")
    allow_skip: list[str] = Field(
        default_factory=list,
        description="Stages to skip (filter, dedup, qa_dedup, decontaminate): they do not run "
        "and the stage after one reads its input table instead. Recorded in the dataset card, "
        "the `qa` table's commit metadata and the MLflow run. CLI: --allow-skip.",
    )
    retry_rejects: list[str] = Field(
        default_factory=list,
        description="Final reject reasons to retry on this run, as retryable ones "
        "(engine_unavailable, engine_failed) always are. CLI: --retry-rejects.",
    )
    read_changes: bool = Field(
        True,
        description="Stages read only the input rows inserted since they last finished "
        "(Delta change data feed, on for every table the pipeline creates) instead of the whole "
        "input; false: every run anti-joins the whole input (webscale_rl/increments.py).",
    )
    spark: SparkSettings = Field(default_factory=SparkSettings)
    mlflow: MLflowSettings = Field(default_factory=MLflowSettings)
    tables: TableNames = Field(default_factory=TableNames)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    filter: FilterSettings = Field(default_factory=FilterSettings)
    dedup: MinHashParams = Field(
        default_factory=MinHashParams, description="Near-duplicate removal over documents."
    )
    qa_dedup: MinHashParams = Field(
        # Questions are short: word bigrams, a slightly lower bar.
        default_factory=lambda: MinHashParams(
            text_column="question", ngram=2, verify_threshold=0.7, keep_digits=True
        ),
        description="Near-duplicate removal over generated questions.",
    )
    llm: LLMParams = Field(default_factory=LLMParams, description="LLM engine for the LLM stages.")
    llm_stages: LLMStageParams = Field(
        default_factory=LLMStageParams, description="How the LLM stages are laid out on Spark."
    )
    tasks: TaskParams = Field(
        default_factory=TaskParams,
        description="The LLM tasks: domains, personas, few-shot, QA checks.",
    )
    decontam: DecontamParams = Field(
        default_factory=DecontamParams, description="Benchmark n-gram decontamination."
    )
    publish: PublishParams = Field(
        default_factory=PublishParams, description="The published `qa` table and its card."
    )
    export: ExportSettings = Field(
        default_factory=ExportSettings, description="Exports for RL trainers (hf, verl, trl)."
    )

    @field_validator("retry_rejects")
    @classmethod
    def _reasons(cls, v: list[str]) -> list[str]:
        # Reasons go into a Delta merge condition as literals.
        bad = [r for r in v if not REASON.match(r)]
        if bad:
            raise ValueError(f"reject reasons {bad} must match {REASON.pattern}")
        return v

    @field_validator("catalog")
    @classmethod
    def _catalog(cls, v: str | None) -> str | None:
        if v is not None and not CATALOG_NAME.match(v):
            raise ValueError(f"catalog {v!r} must look like `catalog.schema`")
        return v

    @model_validator(mode="after")
    def _stage_engines(self) -> Config:
        # Fail at load time, naming the key, rather than when the stage starts.
        for stage in LLM_STAGES:
            stage_llm(self.llm, self.llm_stages, stage)
        return self


def _set_path(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {k!r} is not a section")
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b=value` -> ("a.b", value), the value read as YAML so numbers, bools and lists work."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _explain(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown config key {where!r}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {msg}" if where else msg)
    return "invalid config: " + "; ".join(lines)


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    **top_level: Any,
) -> Config:
    """Defaults <- YAML file <- `--set` overrides <- explicit top-level values (e.g. lakehouse)."""
    data: dict = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        data = loaded
    for item in overrides or []:
        key, value = parse_override(item)
        _set_path(data, key, value)
    for key, value in top_level.items():
        if value is not None:
            _set_path(data, key, value)
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_explain(err)) from None


SECRET_PARTS = {"password", "passwd", "secret", "token", "credential", "credentials", "apikey"}


def is_secret_key(key: str) -> bool:
    """Keys that might hold a secret value (`fs.s3a.secret.key`, `api_key`, `hf_token`).

    `*_env` and `*_scope` keys name where a secret lives, not the secret, and `tokens_per_s`
    counts tokens: those stay visible.
    """
    k = key.lower()
    if k.endswith(("_env", "_scope", "_name")):
        return False
    parts = set(re.split(r"[._\-]", k))
    return bool(parts & SECRET_PARTS) or "api_key" in k or k.endswith("access_key")


def redacted(cfg: Config) -> dict:
    """The config as plain data with any secret-looking value replaced by `***`."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: ("***" if is_secret_key(str(k)) and v else walk(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(cfg.model_dump(mode="json"))


def flatten(cfg: Config) -> dict[str, str]:
    """Dotted key -> string value, secrets redacted: what goes to MLflow params."""
    out: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = str(node)

    walk("", redacted(cfg))
    return out


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(redacted(cfg), sort_keys=False)
