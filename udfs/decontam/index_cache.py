"""The built decontamination index, kept in a small Delta table `_decontam_index` in the lakehouse.

Building the index (891k n-grams, 33k near-match items over the default benchmarks) costs about
ten seconds on the driver, every run. A run with new QA rows reuses the index an earlier run
built from the same inputs: the key is a fingerprint of every benchmark file's bytes, the
settings that shape the index (`decontam.*` but the data root) and the source of the modules
that build it. A changed file, threshold or check gets a new fingerprint and a new build.

The pickled index is stored in parts (binary rows of PART_BYTES), appended in one Delta commit:
a crash leaves all parts or none, and two runs storing the same fingerprint at once are
harmless (the reader takes one writer's parts). Driver side only.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import pickle
import uuid

from webscale_rl import files, tables
from webscale_rl.config import Config

TABLE = "_decontam_index"  # fingerprint, writer, part, blob, run_id
PART_BYTES = 16 * 1024 * 1024


def table_ref(cfg: Config) -> str:
    """A path beside the lakehouse tables (also with a catalog, as the staging tables are)."""
    root = tables.lakehouse_root(cfg) if not cfg.catalog else os.path.abspath(cfg.lakehouse)
    return f"{root}/{TABLE}"


def _code_digest() -> str:
    """The source of the modules whose classes are pickled: a changed check rebuilds."""
    from webscale_rl.udfs.decontam import benchmark_files, near_match, ngrams, sentences

    h = hashlib.blake2b(digest_size=16)
    for module in (benchmark_files, near_match, ngrams, sentences):
        h.update(inspect.getsource(module).encode("utf-8"))
    return h.hexdigest()


def fingerprint(specs, params, data_root: str, spark=None) -> str:
    """Digest of the benchmark files' bytes, the index settings and the building code."""
    from webscale_rl.udfs.decontam.benchmark_files import resolve_files

    h = hashlib.blake2b(digest_size=16)
    settings = params.model_dump(mode="json", exclude={"data_root", "on_missing", "benchmarks"})
    h.update(json.dumps(settings, sort_keys=True).encode("utf-8"))
    for spec in specs:
        h.update(spec.model_dump_json().encode("utf-8"))
        for path in resolve_files(spec, data_root, spark):
            with files.open_binary(path) as fh:
                h.update(hashlib.blake2b(fh.read(), digest_size=16).digest())
    h.update(_code_digest().encode("ascii"))
    return h.hexdigest()


def load(spark, cfg: Config, key: str):
    """The index stored under `key`, else None."""
    from pyspark.sql import functions as F

    ref = table_ref(cfg)
    if not tables.exists(spark, ref):
        return None
    stored = tables.read(spark, ref).where(F.col("fingerprint") == key)
    first = stored.agg(F.min("writer")).first()[0]
    if first is None:
        return None
    parts = stored.where(F.col("writer") == first).select("part", "blob").collect()
    blob = b"".join(bytes(p["blob"]) for p in sorted(parts, key=lambda p: p["part"]))
    return pickle.loads(blob)


def store(spark, cfg: Config, key: str, index) -> None:
    """Append the pickled index under `key` in one commit (appends never conflict)."""
    blob = pickle.dumps(index, protocol=pickle.HIGHEST_PROTOCOL)
    writer = uuid.uuid4().hex
    rows = [
        (key, writer, i, blob[start : start + PART_BYTES], cfg.run_id)
        for i, start in enumerate(range(0, max(len(blob), 1), PART_BYTES))
    ]
    schema = "fingerprint string, writer string, part int, blob binary, run_id string"
    df = spark.createDataFrame(rows, schema)
    df.coalesce(1).write.format("delta").mode("append").save(table_ref(cfg))
