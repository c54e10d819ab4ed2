#!/usr/bin/env bash
# EMR bootstrap action: install webscale-rl (and vLLM on GPU nodes) into the Python Spark uses.
#
#   --bootstrap-actions Path=s3://YOUR-BUCKET/webscale-rl/bootstrap.sh,Args=[s3://YOUR-BUCKET/webscale-rl/webscale_rl-0.1.0-py3-none-any.whl]
#
# Runs on every node before YARN starts. The wheel brings the Python dependencies (pandas, pyarrow,
# resiliparse, ...); Spark and Delta jars come from EMR and --packages. Model weights are copied
# from S3 once per GPU node (MODEL_S3 -> /mnt/models): nothing is downloaded from a hub at run time.
set -euo pipefail

WHEEL_S3="${1:?usage: bootstrap.sh s3://.../webscale_rl-<version>-py3-none-any.whl [vllm-version] [model-s3-prefix]}"
VLLM_VERSION="${2:-0.10.1.1}"
MODEL_S3="${3:-}"
# The package needs Python 3.11+; EMR's default python3 may be older: point Spark at this one
# too (spark-defaults spark.pyspark.python, see configurations.json).
PY="${WEBSCALE_PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || sudo dnf install -y -q python3.11 python3.11-pip

work="$(mktemp -d)"
aws s3 cp "$WHEEL_S3" "$work/"
# Spark and Delta come from EMR: install the wheel and its other dependencies, not a second Spark.
mapfile -t deps < <("$PY" - "$work"/*.whl <<'PY'
import re, sys, zipfile
wheel = zipfile.ZipFile(sys.argv[1])
meta = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
for line in wheel.read(meta).decode().splitlines():
    if line.startswith("Requires-Dist:") and "extra ==" not in line:
        req = line.split(":", 1)[1].strip()
        if not re.match(r"(pyspark|delta-spark)\b", req):
            print(req)
PY
)
sudo "$PY" -m pip install -q "${deps[@]}"
sudo "$PY" -m pip install -q --no-deps "$work"/*.whl

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "GPU node: $(nvidia-smi -L | wc -l) GPU(s); installing vLLM $VLLM_VERSION"
  sudo "$PY" -m pip install -q "vllm==$VLLM_VERSION"
  if [[ -n "$MODEL_S3" ]]; then
    sudo mkdir -p /mnt/models && sudo chown "$(id -u)" /mnt/models
    aws s3 sync --only-show-errors "$MODEL_S3" "/mnt/models/$(basename "$MODEL_S3")"
  fi
fi
rm -rf "$work"
