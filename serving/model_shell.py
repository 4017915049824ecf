"""Triton python-backend entry point for a nerwheel model (copied as ``model.py`` into each version folder).

Deliberately empty of logic: everything lives in :mod:`nerwheel.serving.backend`,
which is unit-tested and versioned with the package. This file only makes sure
``nerwheel`` is importable inside the ``triton_python_backend_stub`` process:

1. normally it already is: the stub's Python is the environment nerwheel is
   installed in (a Triton image with ``pip install nerwheel``, or the
   virtual environment whose ``bin`` folder is first on ``PATH`` when
   ``nerwheel serve`` starts Triton);
2. otherwise the folders listed in ``NERWHEEL_SITE_PACKAGES`` (set by
   :class:`nerwheel.serving.server.TritonServer`) are added as site folders,
   which also honours ``.pth`` files such as editable installs.
"""

import os
import site

try:
    from nerwheel.serving.backend import model_class
except ImportError:
    for _folder in os.environ.get("NERWHEEL_SITE_PACKAGES", "").split(os.pathsep):
        if _folder:
            site.addsitedir(_folder)
    try:
        from nerwheel.serving.backend import model_class
    except ImportError as _e:
        raise ImportError(
            "the Triton python backend cannot import nerwheel: install nerwheel into the Python that Triton's "
            "python backend uses (pip install 'nerwheel[serve]'), or start Triton with `nerwheel serve`, which "
            f"puts this environment first on PATH (NERWHEEL_SITE_PACKAGES={os.environ.get('NERWHEEL_SITE_PACKAGES')!r})"
        ) from _e

import triton_python_backend_utils as pb_utils  # noqa: E402 - only exists inside the stub

TritonPythonModel = model_class(pb_utils)
