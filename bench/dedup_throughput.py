"""MinHash throughput: ours vs datatrove vs Spark MLlib MinHashLSH on the same documents, and
how ours scales with corpus size (time and peak memory).

    .venv/bin/python bench/dedup_throughput.py compare [--docs 3000] [--tables 3]
    .venv/bin/python bench/dedup_throughput.py scale [--sizes 10000 50000 100000]

`compare` times signatures + band/bucket hashes per document on one core for ours and datatrove
(datatrove 0.10: `MinhashDedupSignature.get_shingles` + `get_signature`, 5-grams, 14 x 8; its
English default tokenizer needs spaCy, so both use whitespace words of the normalised text), and
MLlib's tokenise + 5-gram + HashingTF + MinHashLSH.transform on local[2] (reported per core).
Recall of pairs with true Jaccard >= 0.8 is measured on the labelled set of dedup_quality.py:
LSH candidates for ours and datatrove, approxSimilarityJoin(distance <= 0.2) for MLlib.
`scale` runs each size in a fresh subprocess so ru_maxrss is that size's peak.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import xxhash
from dedup_quality import _apply, _edit_ops, build_benchmark, load_pages

from webscale_rl.udfs.text.minhash import (
    EMPTY,
    MinHashParams,
    band_hashes_batch,
    normalize_for_dedup,
    signatures,
)

BATCH = 1000  # documents per call, like one Arrow batch of the pandas UDF


def replicate(pages: list[str], n: int, seed: int = 0) -> list[str]:
    """n documents: the pages, then copies with 1-20% of their words edited."""
    rng = random.Random(seed)
    vocab = [w for p in pages[:200] for w in p.split()]
    docs = list(pages[:n])
    while len(docs) < n:
        words = rng.choice(pages).split()
        ops = _edit_ops(rng, max(1, int(len(words) * rng.uniform(0.01, 0.2))), vocab)
        docs.append(" ".join(_apply(words, ops)))
    return docs


def ours(docs: list[str], params: MinHashParams) -> np.ndarray:
    out = []
    for i in range(0, len(docs), BATCH):
        sigs = signatures(docs[i : i + BATCH], params)
        bands = band_hashes_batch(sigs, params)
        bands[np.all(sigs == EMPTY, axis=1)] = 0
        out.append(bands)
    return np.vstack(out)


def datatrove_step():
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
    from datatrove.utils.word_tokenizers import WordTokenizer

    class Whitespace(WordTokenizer):
        def word_tokenize(self, text):
            return text.split()

        def sent_tokenize(self, text):
            return [text]

        def span_tokenize(self, text):
            return [(0, len(text))]

    step = MinhashDedupSignature("/tmp/unused_minhash_sigs", MinhashConfig(), language=Whitespace())
    # datatrove 0.10 passes str to xxhash, which xxhash>=4 refuses: encode first, as xxhash 3 did.
    step._hash_func = lambda s: xxhash.xxh64_intdigest(s.encode())
    return step


def datatrove(docs: list[str], step) -> list:
    """Per document: shingles, then the 14 bucket tuples datatrove writes to its bucket files."""
    out = []
    for d in docs:
        sh = step.get_shingles(d)
        out.append([tuple(b) for b in step.get_signature(sh)] if sh.size else None)
    return out


def mllib_features(df):
    """Words -> 5-grams -> binary hashed term vectors; MinHashLSH rejects empty vectors."""
    from pyspark.ml.feature import HashingTF, NGram, RegexTokenizer
    from pyspark.sql import functions as F

    words = RegexTokenizer(
        inputCol="text", outputCol="words", pattern="\\s+", toLowercase=False
    ).transform(df)
    grams = NGram(n=5, inputCol="words", outputCol="grams").transform(words)
    grams = grams.where(F.size("grams") > 0)
    tf = HashingTF(inputCol="grams", outputCol="features", numFeatures=1 << 22, binary=True)
    return tf.transform(grams)


def mllib_model(features, tables: int):
    from pyspark.ml.feature import MinHashLSH

    lsh = MinHashLSH(inputCol="features", outputCol="hashes", numHashTables=tables, seed=1)
    return lsh.fit(features)


def spark_session():
    from webscale_rl.config import load_config
    from webscale_rl.session import get_spark

    return get_spark(load_config(None, ["spark.master=local[2]", "spark.shuffle_partitions=4"]))


def mllib_frame(spark, docs: list[str]):
    # MLlib gets our normalised text (not timed) so all three hash the same 5-word shingles.
    rows = [(i, normalize_for_dedup(d)) for i, d in enumerate(docs)]
    df = spark.createDataFrame(rows, "id long, text string")
    return df.repartition(2).cache()


def candidate_recall(pairs, ids, bucket_rows) -> float:
    """Share of labelled pairs with J >= 0.8 sharing at least one bucket."""
    position = {d: i for i, d in enumerate(ids)}
    hits = [
        bool(set(bucket_rows[position[a]]) & set(bucket_rows[position[b]]))
        for a, b, j in pairs
        if j >= 0.8
    ]
    return sum(hits) / len(hits)


def compare(args) -> None:
    params = MinHashParams()
    pages = load_pages()
    docs = replicate(pages, args.docs)
    words = sum(len(d.split()) for d in docs) / len(docs)
    print(f"compare: {len(docs)} docs, mean {words:.0f} words (first {len(pages)} are real pages)")

    start = time.perf_counter()
    ours(docs, params)
    t_ours = time.perf_counter() - start
    step = datatrove_step()
    start = time.perf_counter()
    datatrove(docs, step)
    t_dt = time.perf_counter() - start

    spark = spark_session()
    df = mllib_frame(spark, docs)
    df.count()
    start = time.perf_counter()
    features = mllib_features(df)
    mllib_model(features, args.tables).transform(features).select("hashes").write.format(
        "noop"
    ).mode("overwrite").save()
    t_ml = time.perf_counter() - start
    cores = 2

    # Recall on the labelled benchmark (150 pages x 4 mutated copies).
    ids, texts, pairs = build_benchmark(pages[:150], 4, seed=0)
    r_ours = candidate_recall(
        pairs, ids, [[(b, h) for b, h in enumerate(r)] for r in ours(texts, params)]
    )
    dt_rows = [[(b, t) for b, t in enumerate(s or [])] for s in datatrove(texts, step)]
    r_dt = candidate_recall(pairs, ids, dt_rows)
    r_ml = mllib_recall(spark, texts, ids, pairs, args.tables)

    rate = {"ours": len(docs) / t_ours, "datatrove": len(docs) / t_dt}
    rate["mllib"] = len(docs) / t_ml / cores
    print(f"{'method':34} {'docs/s/core':>12} {'vs ours':>8} {'recall J>=0.8':>14}")
    rows = [
        ("ours (numpy, 14x8)", rate["ours"], r_ours),
        ("datatrove 0.10 MinHash (14x8)", rate["datatrove"], r_dt),
        (f"Spark MLlib MinHashLSH ({args.tables} tables)", rate["mllib"], r_ml),
    ]
    for name, r, rec in rows:
        print(f"{name:34} {r:12.0f} {r / rate['ours']:8.2f} {rec:14.4f}")
    print(f"(seconds: ours {t_ours:.1f}, datatrove {t_dt:.1f}, mllib {t_ml:.1f} on {cores} cores)")


def mllib_recall(spark, texts, ids, pairs, tables: int) -> float:
    from pyspark.sql import functions as F

    df = mllib_frame(spark, texts)
    features = mllib_features(df)
    model = mllib_model(features, tables)
    hashed = model.transform(features).cache()
    joined = model.approxSimilarityJoin(hashed, hashed, 0.2001, distCol="d")
    found = {
        (r[0], r[1])
        for r in joined.select(F.col("datasetA.id"), F.col("datasetB.id")).collect()
        if r[0] != r[1]
    }
    position = {d: i for i, d in enumerate(ids)}
    hits = [
        (position[a], position[b]) in found or (position[b], position[a]) in found
        for a, b, j in pairs
        if j >= 0.8
    ]
    return sum(hits) / len(hits)


def scale_child(n: int) -> None:
    docs = replicate(load_pages(), n)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    bands = ours(docs, MinHashParams())
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"{n:>8} {seconds:9.1f} {n / seconds:10.0f} {before / 1024:14.0f} "
        f"{(peak - before) / 1024:12.0f}   bands {bands.shape}",
        flush=True,
    )


def scale(args) -> None:
    print(f"{'docs':>8} {'seconds':>9} {'docs/s':>10} {'rss_corpus_MB':>14} {'extra_peak_MB':>12}")
    for n in args.sizes:
        subprocess.run(
            [sys.executable, __file__, "scale-child", str(n)],
            check=True,
            cwd=os.getcwd(),
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--docs", type=int, default=3000)
    c.add_argument("--tables", type=int, default=3, help="MLlib numHashTables")
    s = sub.add_parser("scale")
    s.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    k = sub.add_parser("scale-child")
    k.add_argument("n", type=int)
    args = ap.parse_args()
    {"compare": compare, "scale": scale, "scale-child": lambda a: scale_child(a.n)}[args.cmd](args)


if __name__ == "__main__":
    main()
