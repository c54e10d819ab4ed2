"""Finding input files (driver) and opening them (executors), locally or on object stores.

Globs are expanded through Hadoop's FileSystem, the same code Spark uses, so s3://, abfss://,
gs:// and dbfs:/ paths behave on a cluster exactly as Spark's own readers would.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import zlib

from webscale_rl.errors import WebscaleError

URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:/")


def is_local(path: str) -> bool:
    return not URI.match(path) or path.startswith("file:")


def local_path(path: str) -> str:
    if path.startswith("file://"):
        return path[len("file://") :]
    if path.startswith("file:"):
        return path[len("file:") :]
    if path.startswith("dbfs:/"):
        return "/dbfs/" + path[len("dbfs:/") :].lstrip("/")
    return path


def expand(spark, patterns: list[str]) -> list[str]:
    """Every file matching the patterns (directories expand to their files), sorted and unique.

    A pattern that matches nothing is an error before any work starts.
    """
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    out: list[str] = []
    for pattern in patterns:
        p = pattern if URI.match(pattern) else os.path.abspath(pattern)
        hpath = jvm.org.apache.hadoop.fs.Path(p)
        fs = hpath.getFileSystem(conf)
        statuses = fs.globStatus(hpath)
        if not statuses:
            raise WebscaleError(f"input {pattern!r} does not exist (no file matches it)")
        for st in statuses:
            if st.isDirectory():
                out.extend(_walk(fs, st.getPath()))
            else:
                out.append(st.getPath().toString())
    files = sorted(set(out))
    if not files:
        raise WebscaleError(f"input {patterns!r} holds no files")
    return files


# File name endings that say the format (checked in order: `.warc.wet.gz` is WET).
NAME_FORMATS = (
    (".wet.gz", "wet"),
    (".wet", "wet"),
    (".warc.gz", "warc"),
    (".warc", "warc"),
    (".jsonl", "jsonl"),
    (".jsonl.gz", "jsonl"),
    (".json.gz", "jsonl"),
    (".ndjson", "jsonl"),
    (".ndjson.gz", "jsonl"),
    (".parquet", "parquet"),
)


def format_from_name(path: str) -> str | None:
    """The input format a file name tells (`x.warc.gz` -> warc), or None when it does not."""
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    for ending, fmt in NAME_FORMATS:
        if name.endswith(ending):
            return fmt
    return None


def has_delta_log(spark, path: str) -> bool:
    """True when `path` is a folder holding a `_delta_log` (a Delta table), local or remote."""
    if any(c in path for c in "*?[{"):
        return False
    jvm = spark.sparkContext._jvm
    p = path if URI.match(path) else os.path.abspath(path)
    log = jvm.org.apache.hadoop.fs.Path(p.rstrip("/") + "/_delta_log")
    try:
        return bool(log.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).exists(log))
    except Exception:  # an unknown scheme or unreachable store: expand() reports it clearly
        return False


def _walk(fs, hpath) -> list[str]:
    found = []
    for st in fs.listStatus(hpath):
        name = st.getPath().getName()
        if name.startswith((".", "_")):  # _delta_log, _SUCCESS, .crc
            continue
        if st.isDirectory():
            found.extend(_walk(fs, st.getPath()))
        else:
            found.append(st.getPath().toString())
    return found


def open_binary(path: str):
    """A readable binary stream for a file path or URI; runs on executors."""
    if is_local(path) or path.startswith("dbfs:/"):
        return open(local_path(path), "rb")
    import pyarrow.fs as pafs

    fs, inner = pafs.FileSystem.from_uri(path)
    return fs.open_input_stream(inner)


def read_head(path: str, n: int = 65536) -> bytes:
    """The first n bytes, gunzipped when the file is gzip (for format sniffing)."""
    with open_binary(path) as f:
        raw = f.read(n)
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.GzipFile(fileobj=io.BytesIO(raw)).read(n)
        except (OSError, EOFError):
            # a short head of a larger gzip ends mid-stream: decompress what is there
            try:
                return zlib.decompressobj(31).decompress(raw, n)
            except zlib.error:
                return b""
    return raw
