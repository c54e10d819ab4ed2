"""Writing the trainer exports of one `qa` version: shard files streamed by Spark tasks.

Exports are never collected to the driver: the table is hash-partitioned by qa_id into
ceil(rows/rows_per_file) shards, each task converts its rows batch by batch
(udfs/publish/export_formats.py) and streams them into its own shard file per format and split, so
memory per task is one Arrow batch. Files are local, dbfs:/ (via /dbfs) or any pyarrow URI.
"""

from __future__ import annotations

import math
import os

from webscale_rl import files
from webscale_rl.errors import WebscaleError
from webscale_rl.udfs.publish.dataset_card import (
    EXPORT_DIRS,
    ExportSettings,
    export_dirs,
    shard_name,
)
from webscale_rl.udfs.publish.export_formats import QA_COLUMNS, SPLITS

KEY = "qa_id"
MANIFEST_DDL = "folder string, split string, path string, rows long, part int"  # one per file
MANIFEST_COLUMNS = ["folder", "split", "path", "rows", "part"]


def _filesystem(path: str):
    """(pyarrow FileSystem, path inside it) for a local path, dbfs:/ (via /dbfs) or a URI."""
    import pyarrow.fs as pafs

    if files.is_local(path) or path.startswith("dbfs:/"):
        return pafs.LocalFileSystem(), os.path.abspath(files.local_path(path))
    try:
        return pafs.FileSystem.from_uri(path)
    except Exception as err:  # pyarrow raises ArrowInvalid/OSError for unknown schemes
        raise WebscaleError(f"cannot write exports to {path!r}: {err}") from None


def read_text(path: str) -> str | None:
    """A small text file's content, or None when it does not exist."""
    import pyarrow.fs as pafs

    fs, inner = _filesystem(path)
    if fs.get_file_info(inner).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(inner) as src:
        return src.read().decode("utf-8")


def write_text(path: str, text: str) -> None:
    fs, inner = _filesystem(path)
    fs.create_dir(os.path.dirname(inner), recursive=True)
    with fs.open_output_stream(inner) as out:
        out.write(text.encode("utf-8"))


class ShardWriter:
    """One task's shard of every export folder and split, written batch by batch.

    Files are written under a temporary name and renamed when complete, so a retried or
    speculative task never leaves a half-written shard under the final name.
    """

    def __init__(self, out_dir: str, folders: dict, part: int, n_parts: int, attempt: int):
        self.fs, self.root = _filesystem(out_dir)
        self.folders, self.part, self.n_parts = folders, part, n_parts
        self.suffix = f".tmp-{attempt}"
        self.open: dict[tuple[str, str], tuple] = {}  # (folder, split) -> (stream, writer)
        self.rows: dict[tuple[str, str], int] = {}

    def path(self, folder: str, split: str) -> str:
        ext = self.folders[folder][1]
        return f"{self.root}/{folder}/{shard_name(split, self.part, self.n_parts, ext)}"

    def _stream(self, folder: str, split: str):
        """The (stream, Parquet writer or None) of a shard, opened at its first rows."""
        import pyarrow.parquet as pq

        from webscale_rl.udfs.publish.export_formats import ARROW_SCHEMAS

        key = (folder, split)
        if key not in self.open:
            fmt, ext = self.folders[folder]
            stream = self.fs.open_output_stream(self.path(folder, split) + self.suffix)
            writer = pq.ParquetWriter(stream, ARROW_SCHEMAS[fmt]) if ext == "parquet" else None
            self.open[key] = (stream, writer)
            self.rows[key] = 0
        return self.open[key]

    def write(self, folder: str, split: str, frame) -> None:
        from webscale_rl.udfs.publish.export_formats import to_arrow

        # No rows, no shard: `datasets` cannot read an empty Parquet or JSON lines file.
        if frame.empty:
            return
        stream, writer = self._stream(folder, split)
        if writer is None:
            text = frame.to_json(orient="records", lines=True, force_ascii=False)
            stream.write((text if text.endswith("\n") else text + "\n").encode("utf-8"))
        else:
            writer.write_table(to_arrow(frame, self.folders[folder][0]))
        self.rows[(folder, split)] += len(frame)

    def close(self) -> list[dict]:
        """Finish every shard, move it to its final name, and list them."""
        done = []
        for (folder, split), (stream, writer) in self.open.items():
            if writer is not None:
                writer.close()
            stream.close()
            final = self.path(folder, split)
            self.fs.move(final + self.suffix, final)
            rel = f"{folder}/{os.path.basename(final)}"
            rows = self.rows[(folder, split)]
            done.append(dict(folder=folder, split=split, path=rel, rows=rows, part=self.part))
        return done


def _shard_task(out_dir: str, folders: dict, n_parts: int, offsets: dict, params_json: str):
    """The mapInPandas function: convert and write this partition's rows, return a manifest."""

    def write(batches):
        import pandas as pd
        from pyspark import TaskContext

        from webscale_rl.udfs.publish.export_formats import export_frames

        params = ExportSettings.model_validate_json(params_json)
        ctx = TaskContext.get()
        part = ctx.partitionId()
        writer = ShardWriter(out_dir, folders, part, n_parts, ctx.attemptNumber())
        position = offsets.get(part, 0)
        for batch in batches:
            frames = export_frames(batch, params)
            for folder, (fmt, _) in folders.items():
                for split in SPLITS:
                    frame = frames[fmt][split]
                    if fmt == "verl" and len(frame):  # extra_info.index: position in the export
                        frame = frame.assign(
                            extra_info=[
                                {**info, "index": info["index"] + position}
                                for info in frame["extra_info"]
                            ]
                        )
                    writer.write(folder, split, frame)
            position += len(batch)
        yield pd.DataFrame(writer.close(), columns=MANIFEST_COLUMNS)

    return write


def write_exports(spark, qa, out_dir: str, params: ExportSettings) -> list[dict]:
    """Write every export shard of the QA rows under out_dir; returns the file manifest.

    Row order inside the export is (shard, qa_id), with shards from a hash of qa_id: the same
    table always gives the same files. A small table is one shard per format and split; a
    shard with no rows of a split has no file for it (datasets cannot read empty files).
    """
    import pyarrow.fs as pafs
    from pyspark.sql import functions as F

    folders = export_dirs(list(params.formats), params.jsonl)
    if not folders:
        raise WebscaleError("no export formats selected")
    rows = qa.count()
    n_parts = max(1, math.ceil(rows / params.rows_per_file))
    shards = qa.select(*QA_COLUMNS).repartition(n_parts, KEY).sortWithinPartitions(KEY)
    sizes = shards.groupBy(F.spark_partition_id().alias("p")).count().collect()
    by_part = {r["p"]: r["count"] for r in sizes}
    offsets, total = {}, 0
    for part in range(n_parts):
        offsets[part], total = total, total + by_part.get(part, 0)

    # Empty every export folder (also of formats not written now): the card lists what is there.
    fs, root = _filesystem(out_dir)
    for folder in EXPORT_DIRS:
        if fs.get_file_info(f"{root}/{folder}").type != pafs.FileType.NotFound:
            fs.delete_dir(f"{root}/{folder}")
    for folder in folders:
        fs.create_dir(f"{root}/{folder}", recursive=True)
    task = _shard_task(out_dir, folders, n_parts, offsets, params.model_dump_json())
    manifest = [r.asDict() for r in shards.mapInPandas(task, MANIFEST_DDL).collect()]
    return sorted(manifest, key=lambda m: m["path"])
