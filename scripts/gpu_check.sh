#!/usr/bin/env bash
# GPU readiness check, for a CUDA machine WITH access to PyPI (about 10 minutes):
#   1. builds the GPU serving environment (.venv-serve with vllm==0.32.0) and the
#      project's environment if missing;
#   2. trains 20 LoRA steps in bf16 on the embedded model;
#   3. serves base + adapter with CUDA vLLM (bfloat16);
#   4. evaluates arc_easy and piqa (log-likelihood) and squad (generation) on 100 rows
#      through both backends, base and adapter, and prints agreement and speed.
# UNVERIFIED: no CUDA machine with network access has run it yet (the device machines
# lent to this project have no network and carry at most 64 MiB, so vLLM's CUDA
# wheels cannot reach them). Record its output in docs/BENCHMARKS.md when it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${DATA:-../shared/data}"
ROWS="${ROWS:-100}"
nvidia-smi >/dev/null || { echo "no CUDA device: this check is for GPU machines" >&2; exit 2; }
make setup serve-env
PY=.venv/bin/python
export COOKBOOK_HOME="${COOKBOOK_HOME:-$(mktemp -d)}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
echo "workspace: $COOKBOOK_HOME"
$PY -m cookbook_core.cli.main generate -t document_qa -n 2000 --seed 0 --out "$COOKBOOK_HOME/datasets/dqa"
$PY -m cookbook_core.cli.main train --data "$COOKBOOK_HOME/datasets/dqa" --steps 20 --lr 1e-3 \
  --batch-size 16 --name gpu-check
RUN=$($PY -m cookbook_core.cli.main jobs list --json | $PY -c "import json,sys; print(json.load(sys.stdin)[0]['id'])")
$PY -m cookbook_core.cli.main serve start --port 8199 --name gpu
trap '$PY -m cookbook_core.cli.main serve stop --name gpu' EXIT
for backend in transformers served; do
  for adapter in "" "$RUN"; do
    tag="$backend${adapter:+-adapter}"
    start=$(date +%s.%N)
    $PY -m cookbook_core.cli.main eval --task arc_easy --task piqa --task squad --data-dir "$DATA" \
      --limit "$ROWS" --backend "$backend" ${adapter:+--adapter "$adapter"} --quiet \
      --out "$COOKBOOK_HOME/evals/$tag" >/dev/null
    echo "$tag: $(echo "$(date +%s.%N) - $start" | bc) s"
  done
done
$PY - <<'EOF'
import json, os
from pathlib import Path
home = Path(os.environ["COOKBOOK_HOME"]) / "evals"
for tag in ("", "-adapter"):
    a, b = home / f"transformers{tag}", home / f"served{tag}"
    for task in ("arc_easy", "piqa", "squad"):
        ra = [json.loads(x) for x in (a / "records" / f"{task}.jsonl").read_text().splitlines()]
        rb = [json.loads(x) for x in (b / "records" / f"{task}.jsonl").read_text().splitlines()]
        same = sum(x["scores"] == y["scores"] for x, y in zip(ra, rb))
        print(f"{task}{tag}: per-example scores agree on {same}/{len(ra)}")
EOF
