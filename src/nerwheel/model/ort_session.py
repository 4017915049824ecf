"""One way to open an ONNX Runtime session for every nerwheel runtime (tagger, classifier, embedding encoder).

Why one home: the three ONNX runtimes and the Triton python backend that wraps
them must run a graph with the same options, or served and offline speed (and
the benchmarks that compare them) drift apart.

The options, and why:

* ``graph_optimization_level = ORT_ENABLE_ALL``: the layout and fusion passes
  (the export already holds the transformer fusions; this adds the rest).
* ``intra_op_num_threads = threads`` when given (default: ONNX Runtime's
  choice, all cores).
* ``session.force_spinning_stop = 1``: ONNX Runtime's pool threads spin
  waiting for work between operators (good: an operator starts without a
  wake-up) and, by default, keep spinning for a while after ``run`` returns.
  Inside Triton that after-run spin burns the cores the server's gRPC
  threads and the client need to send the answer and the next request, so a
  served request waited on its own model's idle threads. Measured on 2 cores
  (e5-small int8, 1 instance x 2 threads, 400 one-text requests, CPU per
  process from ``/proc``): the python-backend stub used 169 % CPU at one client, 124 % with the option,
  and one request took 8.2 ms instead of 10.2. With it (and only the named
  outputs sent), Triton against in-process at 1 / 2 clients went from 0.52 /
  0.56x to 0.61 / 0.71x and p99 at 8 clients from 68 to 63 ms
  (``benchmarks/serving.py``; the later run measures both sides back to
  back, the earlier one did not). In-process
  calls one text at a time were unchanged (median of 5 x 300 texts: 198
  against 200 texts/s), because the spin *within* a run stays on;
  ``allow_spinning = 0`` (no spin at all) cost 28 % there (142 texts/s).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["SESSION_CONFIG", "open_session"]

#: session config entries every nerwheel session gets (see the module docstring for the measurements)
SESSION_CONFIG = {"session.force_spinning_stop": "1"}


def open_session(model_file: str | Path, *, threads: int | None = None,
                 providers: Sequence[str] | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on ``model_file`` with nerwheel's options (CPU provider by default)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    for key, value in SESSION_CONFIG.items():
        opts.add_session_config_entry(key, value)
    return ort.InferenceSession(str(model_file), opts, providers=list(providers or ["CPUExecutionProvider"]))
