"""Which container image runs each stage: one registry, one tag, one table.

Every component's ``base_image`` comes from :func:`image`, and every image is
built from the table :data:`STAGE_IMAGES`: which Dockerfile, which pip extras
of nerwheel (:data:`STAGE_EXTRAS`), which system packages. The CPU stages share
one parametrised Dockerfile (``images/stage/Dockerfile``, build args ``BASE``,
``EXTRAS``, ``APT_PACKAGES``); training has its own CUDA one
(``images/train/Dockerfile``); the Triton server image is
``images/triton/Dockerfile``. So the image a task runs in and the code it
imports are kept in step by one table (``tests/components/test_images.py``
checks both), and ``python -m nerwheel.components.images`` prints the build
commands.

The registry and tag are read once, when :mod:`nerwheel.components` is first
imported: ``NERWHEEL_IMAGE_REGISTRY`` (default ``ghcr.io/nerwheel``) and
``NERWHEEL_IMAGE_TAG`` (default: the package version). Compiling twice with the
same environment gives the same bytes.
"""

import os
import shlex
from dataclasses import dataclass
from typing import Any

import nerwheel

__all__ = ["CPU_DOCKERFILE", "DEFAULT_REGISTRY", "SERVING_DOCKERFILE", "STAGES", "STAGE_EXTRAS", "STAGE_IMAGES",
           "StageImage", "build_commands", "component", "image", "image_name", "registry", "serving_image", "tag"]

DEFAULT_REGISTRY = "ghcr.io/nerwheel"
CPU_DOCKERFILE = "images/stage/Dockerfile"  # every stage but train: ARG BASE, ARG EXTRAS, ARG APT_PACKAGES
SERVING_DOCKERFILE = "images/triton/Dockerfile"  # the Triton server with nerwheel's python-backend runtime

#: The pipeline's stages, in DAG order: which model is live, the shard plan, the sharded teachers (annotate without
#: a production model; feedback and pseudo-label with one) and their fan-in, then the rest of the wheel.
STAGES: tuple[str, ...] = ("production", "shard", "annotate", "feedback", "pseudo_label", "gather", "synthesize",
                           "merge", "train", "distill", "evaluate", "gate", "export", "deploy")


@dataclass(frozen=True)
class StageImage:
    """How a stage's image is built: the Dockerfile, nerwheel's pip extras, system packages (apt)."""

    extras: tuple[str, ...]
    dockerfile: str = CPU_DOCKERFILE
    apt_packages: tuple[str, ...] = ()

    def build_args(self) -> dict[str, str]:
        """The ``--build-arg`` values (``BASE`` is left to the Dockerfile's pinned default)."""
        args = {"EXTRAS": ",".join(self.extras)}
        if self.apt_packages:
            args["APT_PACKAGES"] = " ".join(self.apt_packages)
        return args


#: ``kfp`` is in every image because a lightweight component runs ``python3 -m kfp.dsl.executor_main``;
#: ``s3`` because every stage reads or writes through :mod:`nerwheel.storage`. A stage with the ``train``
#: extra on the CPU Dockerfile gets the CPU build of torch first.
STAGE_IMAGES: dict[str, StageImage] = {
    # serve: the live version is read with serving.repository (tritonclient's model-config parser)
    "production": StageImage(("serve", "s3", "kfp")),
    "shard": StageImage(("s3", "kfp")),
    "annotate": StageImage(("kb", "llm", "s3", "kfp")),
    # serve: the production export runs on ONNX Runtime (onnxruntime, tokenizers), no torch
    "feedback": StageImage(("kb", "llm", "serve", "s3", "kfp")),
    "pseudo_label": StageImage(("serve", "s3", "kfp")),
    "gather": StageImage(("s3", "kfp")),
    "synthesize": StageImage(("kb", "s3", "kfp")),
    "merge": StageImage(("s3", "kfp")),
    # kb where a model may read knowledge-base lexicon features (model.lexicon, nerwheel.kb.lexicon);
    # embed: the embedding task's split, pairs, expand and train run in the train image too (sentence-transformers)
    "train": StageImage(("train", "kb", "embed", "s3", "kfp"), dockerfile="images/train/Dockerfile"),  # CUDA, GPU node
    # distillation is training: the same CUDA image, on a GPU node (kb: a lexicon-feature teacher reads the KB)
    "distill": StageImage(("train", "kb", "s3", "kfp"), dockerfile="images/train/Dockerfile"),
    # serve: the live production version is read with serving.repository (tritonclient's model-config parser);
    # llm: the classifier's label task runs here too (a model teacher needs torch, an LLM teacher the client)
    "evaluate": StageImage(("train", "kb", "embed", "serve", "llm", "s3", "kfp")),
    "gate": StageImage(("s3", "kfp")),
    "export": StageImage(("train", "kb", "embed", "s3", "kfp")),
    # git: the GitOps step clones, commits and pushes the overlay change
    "deploy": StageImage(("serve", "kb", "s3", "kfp"), apt_packages=("git", "ca-certificates")),
}

#: pip extras each stage's image installs (``pip install "nerwheel[<extras>]"``).
STAGE_EXTRAS: dict[str, tuple[str, ...]] = {stage: spec.extras for stage, spec in STAGE_IMAGES.items()}


def registry() -> str:
    return os.environ.get("NERWHEEL_IMAGE_REGISTRY", DEFAULT_REGISTRY).rstrip("/")


def tag() -> str:
    return os.environ.get("NERWHEEL_IMAGE_TAG", nerwheel.__version__)


def image_name(stage: str) -> str:
    """The repository name of a stage's image, without registry or tag (``nerwheel-train``)."""
    if stage not in STAGE_IMAGES:
        from nerwheel.errors import ConfigError

        raise ConfigError(f"unknown stage {stage!r}; stages with an image are: {', '.join(STAGES)}")
    return f"nerwheel-{stage.replace('_', '-')}"


def image(stage: str) -> str:
    """The full image reference a stage's component runs in (``ghcr.io/nerwheel/nerwheel-train:0.1.0``)."""
    return f"{registry()}/{image_name(stage)}:{tag()}"


def component(stage: str) -> Any:
    """The ``@dsl.component`` decorator of ``stage``: its image, and no pip install at run time (kfp is in it)."""
    from kfp import dsl

    return dsl.component(base_image=image(stage), install_kfp_package=False)


def serving_image() -> str:
    """The Triton serving image (``images/triton``) the manifests run."""
    return f"{registry()}/nerwheel-triton:{tag()}"


def build_commands() -> list[list[str]]:
    """``docker build`` argv for every image (run from the repository root): the stages, then Triton.

    ``scripts/images.sh build`` runs the same commands with podman or docker and a build machine's settings
    (:mod:`nerwheel.components.containers`).
    """
    out = []
    for stage in STAGES:
        spec = STAGE_IMAGES[stage]
        args = [a for k, v in spec.build_args().items() for a in ("--build-arg", f"{k}={v}")]
        out.append(["docker", "build", "-f", spec.dockerfile, *args, "-t", image(stage), "."])
    out.append(["docker", "build", "-f", SERVING_DOCKERFILE, "-t", serving_image(), "."])
    return out


if __name__ == "__main__":
    for argv in build_commands():
        print(shlex.join(argv))
