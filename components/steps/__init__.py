"""The plain functions behind the KFP components: paths and URIs in, artifacts written, scalars returned.

No kfp here: a component's body imports its step inside the task (where kfp's
runtime-only ``kfp.dsl`` has no ``component`` decorator), and tests call the
steps directly without a cluster.
"""

import logging
import sys

__all__ = ["task_logging"]


def task_logging(level: int = logging.INFO) -> None:
    """Send nerwheel's log records to the task's stderr (the pod log the KFP UI shows).

    Called first thing in every component body; the KFP executor configures only its own logger.
    """
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("nerwheel").setLevel(level)
