#!/usr/bin/env bash
# Build nerwheel's container images and check them by running the pipeline in them (podman or docker).
#
#   scripts/images.sh base              make the local Python 3.11 base (debootstrap; root) where no registry is reachable
#   scripts/images.sh build [IMAGE...]  build the stage images and the Triton image (default: all), one at a time
#   scripts/images.sh check [--s3]      run the compiled pipeline with every task in its stage's image
#                                       (kfp.local.DockerRunner on the engine's Docker API), then serve the result
#                                       with the Triton image; two turns: annotate shards, then feedback shards
#
# Build times, image sizes and the check's wall time go to runs/images/report.json. Not part of the tests (slow):
# see images/README.md. Options: `scripts/images.sh build --help`, `scripts/images.sh check --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
exec nice -n "${NICE:-10}" "$PY" -m nerwheel.components.containers "$@"
