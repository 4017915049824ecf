"""Which container image runs each stage: one registry, one tag, one table.

Every component's ``base_image`` comes from :func:`image`, and every
``images/<stage>/Dockerfile`` installs nerwheel with the extras in
:data:`STAGE_EXTRAS`, so the image a task runs in and the code it imports are
kept in step by one table (``tests/components/test_images.py`` checks both).

The registry and tag are read once, when :mod:`nerwheel.components` is first
imported: ``NERWHEEL_IMAGE_REGISTRY`` (default ``ghcr.io/nerwheel``) and
``NERWHEEL_IMAGE_TAG`` (default: the package version). Compiling twice with the
same environment gives the same bytes.
"""

import os

from nerwheel.errors import ConfigError
import nerwheel

__all__ = ["DEFAULT_REGISTRY", "STAGES", "STAGE_EXTRAS", "image", "image_name", "registry", "tag"]

DEFAULT_REGISTRY = "ghcr.io/nerwheel"

#: The pipeline's stages, in DAG order.
STAGES: tuple[str, ...] = ("annotate", "synthesize", "merge", "train", "evaluate", "gate", "export", "deploy")

#: pip extras each stage's image installs (``pip install "nerwheel[<extras>]"``).
#: ``kfp`` is in every image because a lightweight component runs ``python3 -m kfp.dsl.executor_main``;
#: ``s3`` because every stage reads or writes through :mod:`nerwheel.storage`.
STAGE_EXTRAS: dict[str, tuple[str, ...]] = {
    "annotate": ("kb", "llm", "s3", "kfp"),
    "synthesize": ("kb", "s3", "kfp"),
    "merge": ("s3", "kfp"),
    "train": ("train", "s3", "kfp"),
    # serve: the live production version is read with serving.repository (tritonclient's model-config parser)
    "evaluate": ("train", "serve", "s3", "kfp"),
    "gate": ("s3", "kfp"),
    "export": ("train", "s3", "kfp"),
    "deploy": ("serve", "s3", "kfp"),
}


def registry() -> str:
    return os.environ.get("NERWHEEL_IMAGE_REGISTRY", DEFAULT_REGISTRY).rstrip("/")


def tag() -> str:
    return os.environ.get("NERWHEEL_IMAGE_TAG", nerwheel.__version__)


def image_name(stage: str) -> str:
    """The repository name of a stage's image, without registry or tag (``nerwheel-train``)."""
    if stage not in STAGE_EXTRAS:
        raise ConfigError(f"unknown stage {stage!r}; stages with an image are: {', '.join(STAGES)}")
    return f"nerwheel-{stage}"


def image(stage: str) -> str:
    """The full image reference a stage's component runs in (``ghcr.io/nerwheel/nerwheel-train:0.1.0``)."""
    return f"{registry()}/{image_name(stage)}:{tag()}"
