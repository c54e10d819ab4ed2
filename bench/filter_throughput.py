"""Benchmark (not a test): our check_quality vs datatrove's four heuristic filters, one core.

Loads the same documents for both sides (the extracted text in shared data text/*.json*.gz plus
text extracted from a WARC with Resiliparse), times each side over all documents, and prints
docs/s, the speed ratio, and keep/drop agreement (overall and per rule family).

datatrove runs each filter on a fresh copy of the text (our families also all see the input
text; datatrove's C4 would otherwise hand its cleaned text to the next filter).

    .venv/bin/python bench/filter_throughput.py                 # small WARC (60 pages)
    .venv/bin/python bench/filter_throughput.py --warc web/web_pages.warc.gz --repeat 1

Needs `pip install datatrove spacy` (datatrove tokenises English with a blank spaCy model).

`--stage`: the Spark filter stage instead, the old code path against the new one on the same
ingested documents, in one process and one local Spark session. Old: `jobs/filter.py` at
`--baseline` (the language verdict in pandas, every document's text sent to the UDF); new: the
working tree's (the verdict in Spark SQL, a language-rejected document reaches the UDF without
its text). The corpus is bench/scale.py's with `--non-english` of it non-English; each run
starts from an empty output, and the two paths' `documents_filtered` and filter rejects must be
equal row for row. Per run: the stage's wall and CPU seconds (driver JVM and Python workers), and
its UDF phase alone (mapInPandas into the no-op sink): wall, CPU, Python workers' seconds and
MB sent to Python (Spark's SQL metrics; the session runs with its UI on):

    .venv/bin/python bench/filter_throughput.py --stage --n 30000 --non-english 0.2 --repeat 5
    .venv/bin/python bench/filter_throughput.py --stage --n 30000 --non-english 0.55 --repeat 5
"""

from __future__ import annotations

import os

# One core: keep numeric libraries from spawning threads before they are imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from pathlib import Path  # noqa: E402

from webscale_rl.udfs.text.quality import FAMILIES, QualityParams, check_quality  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(os.environ.get("WEBSCALE_SHARED_DATA", REPO.parent / "shared" / "data"))
# The last commit whose filter decided the language in pandas (issue 13's "before").
BASELINE = "6236f6e0254e3bff69197917a504daca2afe087b"


def load_jsonl_texts(data: Path) -> list[str]:
    texts = []
    for path in sorted((data / "text").glob("*.json*.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            texts.extend(json.loads(line)["text"] for line in f if line.strip())
    return texts


def load_warc_texts(path: Path) -> list[str]:
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    texts = []
    with open(path, "rb") as f:
        for record in ArchiveIterator(f, record_types=WarcRecordType.response):
            body = record.reader.read()
            html = bytes_to_str(body, detect_encoding(body))
            text = extract_plain_text(html, main_content=True)
            if text.strip():
                texts.append(text)
    return texts


def datatrove_filters() -> dict[str, object]:
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    return {
        "gopher_quality": GopherQualityFilter(),
        "gopher_repetition": GopherRepetitionFilter(),
        "c4": C4QualityFilter(),
        "fineweb": FineWebQualityFilter(),
    }


def run_datatrove(filters: dict, texts: list[str]) -> list[dict[str, bool]]:
    from datatrove.data import Document

    out = []
    for i, text in enumerate(texts):
        verdicts = {}
        for family, flt in filters.items():
            verdict = flt.filter(Document(text=text, id=str(i)))
            verdicts[family] = verdict is True
        out.append(verdicts)
    return out


def per_family_ours(texts: list[str]) -> list[dict[str, bool]]:
    out = []
    for text in texts:
        verdicts = {}
        for family in FAMILIES:
            params = QualityParams(enabled_rules=[family])
            verdicts[family] = check_quality(text, params).keep
        out.append(verdicts)
    return out


def timed(fn, *args, repeat: int):
    best = float("inf")
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - start)
    return result, best


# ---------------------------------------------------------------- --stage: the Spark stage


def load_filter_at(rev: str):
    """jobs/filter.py as of git revision `rev`, as a module pickled by value (Spark's Python
    workers cannot import it by name); it runs on the working tree's row_stage and tables."""
    from pyspark import cloudpickle

    src = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{rev}:jobs/filter.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType("filter_at_baseline")
    sys.modules[module.__name__] = module
    exec(compile(src, f"{rev}:jobs/filter.py", "exec"), module.__dict__)
    cloudpickle.register_pickle_by_value(module)
    return module


def stage_corpus(n: int, non_english: float, path: Path) -> dict[str, int]:
    """bench/scale.py's corpus (near and exact copies, low quality) with `non_english` of it
    non-English: the originals' share gives way."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import scale

    rest = sum(v for k, v in scale.SHARES.items() if k != "non_en")
    if not 0 <= non_english <= 1 - rest:
        raise SystemExit(f"--non-english must be in [0, {1 - rest:.2f}]")
    scale.SHARES["non_en"] = non_english
    docs = scale.make_docs(n)
    scale.write_jsonl(docs, path)
    return {k: sum(d["kind"] == k for d in docs) for k in ("original", *scale.SHARES)}


def stage_outputs(spark, cfg) -> tuple[list, list]:
    """`documents_filtered` and the filter's rejects, sorted, without the reject timestamp."""
    from pyspark.sql import functions as F

    from webscale_rl import tables

    kept = tables.read(spark, tables.table_ref(cfg, "filtered")).orderBy("doc_id").collect()
    rejects = (
        tables.read(spark, tables.table_ref(cfg, "rejects"))
        .where(F.col("stage") == "filter")
        .select("row_id", "doc_id", "reason", "detail", "run_id")
        .orderBy("row_id")
        .collect()
    )
    return [r.asDict() for r in kept], [tuple(r) for r in rejects]


def process_tree_cpu(root: int) -> float:
    """CPU seconds (user + system, with reaped children's) of process `root` and every process
    below it: the driver JVM and its Python workers, so the figure holds on a loaded machine."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited meanwhile
            stats[int(entry)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += [p for p, (ppid, _) in stats.items() if ppid == pid and p not in tree]
    return sum(stats[p][1] for p in tree if p in stats) / os.sysconf("SC_CLK_TCK")


class Meter:
    """Wall and CPU seconds (the Spark JVM's process tree) of a block: `with meter: ...`."""

    def __init__(self, spark):
        self.pid = spark.sparkContext._gateway.proc.pid
        self.wall = self.cpu = 0.0

    def __enter__(self):
        self._wall, self._cpu = time.perf_counter(), process_tree_cpu(self.pid)
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._wall
        self.cpu = process_tree_cpu(self.pid) - self._cpu


_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def python_metrics(spark, since: int) -> tuple[int, dict[str, float]]:
    """(last SQL execution id, totals of the MapInPandas nodes of executions after `since`):
    MB sent to the Python workers and seconds they ran, from the status REST API (needs
    spark.ui.enabled)."""
    import urllib.request

    sc = spark.sparkContext
    sc._jsc.sc().listenerBus().waitUntilEmpty()  # the status store has every finished query
    url = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}/sql"
    with urllib.request.urlopen(f"{url}?details=true&planDescription=false&length=100000") as r:
        executions = json.load(r)
    wanted = {"data sent to Python workers": "MB to Python", "time to run Python workers": "s"}
    totals = dict.fromkeys(wanted.values(), 0.0)
    for execution in executions:
        if execution["id"] <= since:
            continue
        for node in execution["nodes"]:
            for metric in node.get("metrics", []) if node["nodeName"] == "MapInPandas" else []:
                if metric["name"] in wanted:
                    number, unit = metric["value"].split("\n")[-1].split()[:2]
                    value = float(number.replace(",", "")) * _UNITS[unit]
                    totals[wanted[metric["name"]]] += value / 1e6 if unit.endswith("B") else value
    return max((e["id"] for e in executions), default=since), totals


def udf_phase(spark, path, docs, settings, run_id: str) -> Meter:
    """Seconds of the stage's UDF phase alone: its input through `filter_batch` as row_stage
    maps it (mapInPandas), into Spark's no-op sink (no commit, no Delta)."""
    from webscale_rl.row_stage import result_schema
    from webscale_rl.schemas.tables import FILTERED

    if hasattr(path, "with_language_verdict"):  # the new path's input: verdict, no text
        docs = path.with_language_verdict(docs, settings.langid)
    batch = path.filter_batch

    def apply(batches):
        for pdf in batches:
            yield batch(pdf, settings, run_id)

    out = docs.mapInPandas(apply, result_schema(FILTERED))
    with Meter(spark) as meter:
        out.write.format("noop").mode("overwrite").save()
    return meter


def bench_stage(args) -> None:
    from pyspark.sql import functions as F

    from webscale_rl import tables
    from webscale_rl.config import load_config
    from webscale_rl.jobs import filter as new_filter
    from webscale_rl.jobs import ingest
    from webscale_rl.session import get_spark

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from stage_metrics import UI_CONF

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    kinds = stage_corpus(args.n, args.non_english, work / "input" / "part-0000.jsonl")
    sets = ["mlflow.enabled=false", f"ingest.input={work / 'input'}/*.jsonl"]

    def config(name: str):
        cfg = load_config(overrides=sets, lakehouse=str(work / name))
        cfg.run_id = "bench-filter"  # the same on both paths: rows compare equal
        return cfg

    base = config("base")
    base.spark.conf.update(UI_CONF)  # python_metrics reads the status REST API
    spark = get_spark(base)
    ingest.run(spark, base)
    docs_ref = tables.table_ref(base, "documents")
    docs = tables.read(spark, docs_ref)
    verdict = new_filter.with_language_verdict(
        docs.withColumn("chars", F.length("text")), base.filter.langid
    )
    size = verdict.groupBy(F.col(new_filter.LANG_REASON).isNull().alias("kept")).agg(
        F.count(F.lit(1)).alias("docs"), F.sum("chars").alias("chars")
    )
    by_kept = {r.kept: (r.docs, r.chars) for r in size.collect()}
    n_docs = sum(d for d, _ in by_kept.values())
    lang_rejected, rejected_chars = by_kept.get(False, (0, 0))
    total_chars = sum(c for _, c in by_kept.values())
    print(f"corpus: {args.n} documents {kinds}; ingested {n_docs}")
    print(
        f"language-rejected: {lang_rejected} documents ({lang_rejected / n_docs:.0%}), "
        f"{rejected_chars / 1e6:.1f} of {total_chars / 1e6:.1f} M text characters "
        f"({rejected_chars / max(total_chars, 1):.0%}) no longer sent to the UDF"
    )

    paths = {"old": load_filter_at(args.baseline), "new": new_filter}
    runs: dict[str, dict[str, list[float]]] = {name: {} for name in paths}
    outputs = {}
    for r in range(args.repeat):
        order = list(paths) if r % 2 == 0 else list(paths)[::-1]  # alternate who goes first
        for name in order:
            cfg = config(f"{name}-{r}")
            shutil.copytree(docs_ref, tables.table_ref(cfg, "documents"))
            last, _ = python_metrics(spark, -1)
            with Meter(spark) as stage:
                result = paths[name].run(spark, cfg)
            last, _ = python_metrics(spark, last)
            udf = udf_phase(spark, paths[name], docs, base.filter, "b")
            _, python = python_metrics(spark, last)
            measured = {
                "stage wall s": stage.wall,
                "stage CPU s": stage.cpu,
                "UDF phase wall s": udf.wall,
                "UDF phase CPU s": udf.cpu,
                "UDF phase Python workers s": python["s"],
                "MB sent to Python": python["MB to Python"],
            }
            for key, value in measured.items():
                runs[name].setdefault(key, []).append(value)
            print(
                f"  run {r + 1} {name}: "
                + ", ".join(f"{k} {v:.1f}" for k, v in measured.items())
                + f"\n    {result.summary()}"
            )
            if name not in outputs:
                outputs[name] = stage_outputs(spark, cfg)
            shutil.rmtree(work / f"{name}-{r}")
    same = outputs["old"] == outputs["new"]
    keys = list(runs["old"])
    print(f"\nmedian (best) of {args.repeat} runs; identical output and rejects: {same}")
    print("| path | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for name in paths:
        cells = [f"{statistics.median(runs[name][k]):.1f} ({min(runs[name][k]):.1f})" for k in keys]
        print(f"| {name} | " + " | ".join(cells) + " |")
    ratios = [
        f"{statistics.median(runs['old'][k]) / statistics.median(runs['new'][k]):.2f}x"
        for k in keys
    ]
    print("| old/new (medians) | " + " | ".join(ratios) + " |")
    if not same:
        raise SystemExit("the two paths wrote different rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--warc", default="web/web_pages_small.warc.gz")
    parser.add_argument("--repeat", type=int, default=3, help="timing runs; the best is kept")
    parser.add_argument("--limit", type=int, default=0, help="use at most this many documents")
    stage = parser.add_argument_group("--stage: the Spark filter stage, old path vs new")
    stage.add_argument("--stage", action="store_true", help="benchmark the Spark stage")
    stage.add_argument("--n", type=int, default=10_000, help="corpus documents")
    stage.add_argument("--non-english", type=float, default=0.2, help="non-English share")
    stage.add_argument("--baseline", default=BASELINE, help="git revision of the old path")
    stage.add_argument("--workdir", default="/tmp/filter_stage_bench")
    args = parser.parse_args()
    if args.stage:
        bench_stage(args)
        return

    texts = load_jsonl_texts(args.data) + load_warc_texts(args.data / args.warc)
    if args.limit:
        texts = texts[: args.limit]
    n_chars = sum(map(len, texts))
    print(f"documents: {len(texts)}  characters: {n_chars:,}  (jsonl text + {args.warc})")

    filters = datatrove_filters()
    run_datatrove(filters, texts[:2])  # warm up: spaCy loads lazily on first use
    params = QualityParams()
    [check_quality(t, params) for t in texts[:2]]
    ours_results, ours_s = timed(
        lambda: [check_quality(t, params) for t in texts], repeat=args.repeat
    )
    dt_verdicts, dt_s = timed(run_datatrove, filters, texts, repeat=args.repeat)

    ours_keep = [r.keep for r in ours_results]
    dt_keep = [all(v.values()) for v in dt_verdicts]
    print(f"ours      : {len(texts) / ours_s:9.1f} docs/s  ({ours_s:.3f} s)")
    print(f"datatrove : {len(texts) / dt_s:9.1f} docs/s  ({dt_s:.3f} s)")
    print(f"speed ratio ours/datatrove: {dt_s / ours_s:.1f}x")
    agree = sum(a == b for a, b in zip(ours_keep, dt_keep, strict=True)) / len(texts)
    print(f"kept: ours {sum(ours_keep)}/{len(texts)}, datatrove {sum(dt_keep)}/{len(texts)}")
    print(f"agreement (all four families): {agree:.3f}")

    ours_family = per_family_ours(texts)
    for family in FAMILIES:
        same = sum(o[family] == d[family] for o, d in zip(ours_family, dt_verdicts, strict=True))
        print(f"  agreement {family:18s}: {same / len(texts):.3f}")


if __name__ == "__main__":
    main()
