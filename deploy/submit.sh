#!/usr/bin/env bash
# Build the webscale-rl wheel and spark-submit one stage, or the whole pipeline, to a Spark master.
#
#   deploy/submit.sh --master spark://host:7077 stage ingest --input 's3://bucket/*.warc.gz'
#   deploy/submit.sh --master yarn --conf spark.executor.memory=8g run --input data/x.warc.gz
#   deploy/submit.sh --master local[2] --dry-run stage filter     # print the command only
#   deploy/submit.sh --build-only                                   # build; print the wheel path
#
# Options before the command are this script's; everything after `stage NAME` / `run` goes to
# the job unchanged. Environment: PYTHON (builds the wheel and reads the delta-spark version;
# default .venv/bin/python, else python3), SPARK_SUBMIT (default: spark-submit on PATH, else the
# one inside PYTHON's pyspark), DIST_DIR (where the wheel goes; default <repo>/dist),
# WHEEL (use this wheel instead of building one). The wheel goes to --py-files as a .zip copy.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 2
}

MASTER=""
DRY_RUN=0
BUILD_ONLY=0
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --master) MASTER="${2:?--master needs a URL}"; shift 2 ;;
    --conf) EXTRA+=(--conf "${2:?--conf needs key=value}"); shift 2 ;;
    --deploy-mode|--executor-memory|--driver-memory|--num-executors|--executor-cores|--total-executor-cores)
      EXTRA+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --build-only) BUILD_ONLY=1; shift ;;
    -h|--help) usage ;;
    stage|run) break ;;
    *) echo "submit.sh: unknown option $1 (expected --master URL, --conf K=V, then stage NAME | run)" >&2; exit 2 ;;
  esac
done
if [[ $BUILD_ONLY == 1 ]]; then
  : # nothing to submit
elif [[ -z "$MASTER" ]]; then
  echo "submit.sh: --master is required (spark://host:7077, yarn, local[2], ...)" >&2; exit 2
fi
[[ $BUILD_ONLY == 1 || $# -gt 0 ]] || { echo "submit.sh: say what to run: stage NAME | run" >&2; exit 2; }

COMMAND="${1:-}"; [[ $# -gt 0 ]] && shift
if [[ "$COMMAND" == stage ]]; then
  STAGE="${1:-}"
  [[ -n "$STAGE" ]] || { echo "submit.sh: stage needs a NAME" >&2; exit 2; }
  shift
  # Only names that are plain identifiers with a job file: no path tricks.
  if [[ ! "$STAGE" =~ ^[a-z_]+$ || ! -f "$REPO/jobs/$STAGE.py" || "$STAGE" == base || "$STAGE" == pipeline ]]; then
    known=()
    for f in "$REPO"/jobs/*.py; do
      f="$(basename "$f" .py)"
      [[ "$f" == __init__ || "$f" == base || "$f" == pipeline ]] || known+=("$f")
    done
    echo "submit.sh: unknown stage '$STAGE' (job files: ${known[*]})" >&2
    exit 2
  fi
  JOB="$REPO/jobs/$STAGE.py"
else
  JOB="$REPO/jobs/pipeline.py"
fi

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
if [[ -z "${SPARK_SUBMIT:-}" ]]; then
  if command -v spark-submit >/dev/null 2>&1; then
    SPARK_SUBMIT="$(command -v spark-submit)"
  else
    SPARK_SUBMIT="$("$PYTHON" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-submit"))')"
  fi
fi

# delta-spark's jars must match the installed Python package (Scala 2.13 for Spark 4).
DELTA_VERSION="$("$PYTHON" -c 'from importlib.metadata import version; print(version("delta-spark"))')"

if [[ -z "${WHEEL:-}" ]]; then
  DIST_DIR="${DIST_DIR:-$REPO/dist}"
  VERSION="$("$PYTHON" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$REPO/pyproject.toml")"
  WHEEL="$DIST_DIR/webscale_rl-$VERSION-py3-none-any.whl"
  if [[ $DRY_RUN == 0 ]]; then
    mkdir -p "$DIST_DIR"
    rm -f "$WHEEL"
    # setuptools reuses build/lib: a module deleted from the source would live on in the wheel.
    rm -rf "$REPO/build/lib"
    # Without build isolation when setuptools is at hand: no download, same result.
    ISOLATION=()
    "$PYTHON" -c 'import setuptools, wheel' 2>/dev/null && ISOLATION=(--no-build-isolation)
    "$PYTHON" -m pip wheel -q --no-deps "${ISOLATION[@]}" -w "$DIST_DIR" "$REPO" >&2
    [[ -f "$WHEEL" ]] || { echo "submit.sh: wheel build did not produce $WHEEL" >&2; exit 1; }
  fi
fi
# PySpark puts --py-files on the executors' sys.path only for .zip/.egg/.jar names, and a wheel
# is a zip: ship the same bytes under a .zip name so driver and executors import the package.
PY_FILES="${WHEEL%.whl}.zip"
[[ $DRY_RUN == 1 ]] || cp "$WHEEL" "$PY_FILES"
if [[ $BUILD_ONLY == 1 ]]; then
  echo "$WHEEL"
  exit 0
fi

CMD=(
  "$SPARK_SUBMIT"
  --master "$MASTER"
  --name "webscale-rl ${STAGE:-pipeline}"
  --packages "io.delta:delta-spark_2.13:$DELTA_VERSION"
  --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension
  --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog
  --py-files "$PY_FILES"
  "${EXTRA[@]}"
  "$JOB"
  "$@"
)
if [[ $DRY_RUN == 1 ]]; then
  printf '%q ' "${CMD[@]}"; echo
  exit 0
fi
echo "submit.sh: ${CMD[*]}" >&2
exec "${CMD[@]}"
