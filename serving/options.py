"""What a deployment asks of Triton: limits, instances, threads, dynamic batching, int8.

Kept apart from :mod:`nerwheel.serving.config` (which prints these into
``config.pbtxt`` with Triton's protobuf schema) so the command line can show
the defaults without importing tritonclient and gRPC. The scheduling defaults
are the ones measured best on 2 cores (``benchmarks/serving.py --sweep``);
the measurement is on :class:`ServingOptions`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from nerwheel.errors import ConfigError

__all__ = ["ServingOptions"]


@dataclass(frozen=True)
class ServingOptions:
    """Serving limits and scheduling, written into ``config.pbtxt``.

    ``max_batch_size`` is enforced by Triton itself (a larger request is
    refused); ``max_text_length`` (characters) by the model, per request.

    Scheduling defaults, from ``benchmarks/serving.py --sweep`` (instances 1, 2 x threads 1, 2 x queue delay 0,
    500, 2000 us; one text per request, 1-16 clients; int8; 2 idle cores, 2026-12-02) over three models:
    a queue delay of 0 us was best for every model and every instance/thread pair (a delay only adds latency
    at low load, and at high load requests already wait in the queue and batch); one instance x 2 threads
    was best for a ``tiny`` tagger (summed throughput 2,522 texts/s against 1,972 for 1 x 1) and second
    for e5-small (899 against 1,073 for 2 x 1, the shallow:4 student's best too): it has the best average
    over the two models, matches an in-process runtime using both cores, and does not double the model's
    memory as a second instance does. 2 x 2 oversubscribes 2 cores and was worst for both. After ONNX
    Runtime's after-run spin was switched off (:mod:`nerwheel.model.ort_session`: it starved the server's and
    the client's threads), a re-sweep (1, 2 x 1, 2, 0 us; a slower stretch of the machine) still put 2 x 1
    first for e5-small (1,032 texts/s summed), then 2 x 2 (860: no longer the worst, its collapse was the
    spin), 1 x 2 (850), 1 x 1 (725); for tiny all four came within 5 % (1 x 1 1,734, 1 x 2 1,707, 2 x 1
    1,692, 2 x 2 1,650). 1 x 2 stays the default: the fastest single request for both models (one client:
    e5-small 110 texts/s against 98 for 2 x 1, tiny 174 against 140). Sweep your own
    model on your own machine before deploying at scale (``nerwheel deploy --instances N --threads T
    --queue-delay-us D``).
    """

    max_batch_size: int = 32
    max_text_length: int = 512
    instances: int = 1
    max_queue_delay_us: int = 0
    preferred_batch_sizes: tuple[int, ...] = ()
    intra_op_threads: int = 2
    #: most readings per text in ``NBEST`` (computed only for requests that ask for that output)
    n_best: int = 5
    #: Serve ``model.int8.onnx`` (the export must hold it): dynamic int8, measured F1 cost in its card.
    int8: bool = False
    # ``module:attribute`` building the runtime on a version folder; the default is the export contract's class.
    tagger: str = "nerwheel.model.runtime:OnnxTagger"

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_text_length", "instances", "intra_op_threads", "n_best"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ServingOptions.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_queue_delay_us < 0:
            raise ConfigError(f"ServingOptions.max_queue_delay_us must be >= 0, got {self.max_queue_delay_us}")
        bad = [b for b in self.preferred_batch_sizes if not 1 <= b <= self.max_batch_size]
        if bad:
            raise ConfigError(f"preferred_batch_sizes {bad} must lie in [1, max_batch_size={self.max_batch_size}]")

    @property
    def tagger_options(self) -> dict[str, object]:
        """Keyword options for the tagger class beyond the folder (the offline probe must use the same)."""
        return {"int8": True} if self.int8 else {}

    @property
    def runtime_parameters(self) -> dict[str, str]:
        """What every served task's handler reads back (Triton parameters are strings): its text limit and threads."""
        return {"max_text_length": str(self.max_text_length), "intra_op_threads": str(self.intra_op_threads)}

    @property
    def parameters(self) -> dict[str, str]:
        """What the served tagger reads back in ``initialize``: :attr:`runtime_parameters`, n-best and its class."""
        return {
            **self.runtime_parameters,
            "n_best": str(self.n_best),
            "tagger": self.tagger,
            **{f"tagger.{k}": json.dumps(v) for k, v in self.tagger_options.items()},
        }
