"""Build the stage images with podman or docker, and check them by running the pipeline in them.

``scripts/images.sh build|check`` calls this module. The images come from the one
table, :data:`nerwheel.components.images.STAGE_IMAGES`; this module only adds what
a build *machine* needs and the images do not keep:

* ``--base IMAGE``: the Python 3.11 base for the CPU stages (and the train image's
  CPU variant), for machines that cannot pull ``docker.io/library/python:3.11-slim`` or the CUDA base
  (e.g. a Debian made with ``debootstrap`` and imported: ``images.sh base``);
* ``--wheels DIR``: a folder holding the CPU torch wheel, mounted read-only at
  build time (``TORCH_FIND_LINKS``), for machines without the PyTorch index;
* ``--ca-bundle FILE``: a CA bundle mounted at build time (``PIP_CERT``) for a
  package index behind a TLS-inspecting proxy;
* podman's ``--runtime``/``--ulimit`` flags where the host needs them.

``check`` runs the compiled pipeline with Kubeflow's own ``kfp.local.DockerRunner``
against the engine's Docker-compatible API (podman: ``podman system service``): every
task runs in its stage's image, with the command line the compiled IR gives it and
the executor input a KFP launcher passes, artifacts under a local pipeline root
(or, with ``--s3``, inputs and the Triton repository on a local S3 server). The
serving image is checked by starting it on the repository the run deployed and
asking it for entities. Build and check times and image sizes go to a JSON report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nerwheel.components.images import SERVING_DOCKERFILE, STAGE_IMAGES, STAGES, image, serving_image
from nerwheel.errors import ConfigError, NerwheelError

__all__ = ["BuildOptions", "BuildResult", "Engine", "ImageError", "build_argv", "build_images", "detect_engine",
           "image_size", "record_build", "variant"]

#: The repository root (the build context): components/ is one level below it.
REPO = Path(__file__).resolve().parents[1]
#: Where a build machine's CPU torch wheel is mounted inside a build.
WHEELS_MOUNT = "/tmp/nerwheel-wheels"
CA_MOUNT = "/etc/ssl/certs/ca-certificates.crt"


class ImageError(NerwheelError, RuntimeError):
    """An image did not build, or its container did not do its job."""


@dataclass(frozen=True)
class Engine:
    """The container engine's command and the flags this host needs on every build and run."""

    command: str
    flags: tuple[str, ...] = ()

    @property
    def is_podman(self) -> bool:
        return Path(self.command).name == "podman"


#: podman on hosts with hybrid cgroups refuses crun and the default rlimits (``../shared/notes/environment.md``).
PODMAN_FLAGS = ("--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096")


def detect_engine(name: str | None = None) -> Engine:
    """``name`` (podman or docker), else podman when installed, else docker; podman gets :data:`PODMAN_FLAGS`."""
    wanted = [name] if name else ["podman", "docker"]
    for cmd in wanted:
        path = shutil.which(cmd)
        if path is None:
            continue
        if Path(path).name == "docker" and subprocess.run([path, "info"], capture_output=True).returncode != 0:
            continue  # a docker client without an engine
        return Engine(path, PODMAN_FLAGS if Path(path).name == "podman" else ())
    raise ConfigError(f"no container engine: install podman (apt-get install podman runc) or docker; looked for "
                      f"{', '.join(wanted)}")


@dataclass(frozen=True)
class BuildOptions:
    """Build-machine settings (nothing of them stays in an image)."""

    base: str | None = None
    wheels: str | None = None
    ca_bundle: str | None = None


def build_argv(target: str, engine: Engine, options: BuildOptions = BuildOptions()) -> list[str]:
    """The build command of ``target`` (a stage, or ``triton``), run from the repository root."""
    if target == "triton":
        dockerfile, args, tag = SERVING_DOCKERFILE, {}, serving_image()
        if options.base:  # no NVIDIA base here: Triton from the nvidia-pytriton wheel on the local base
            args = {"BASE": options.base, "SERVER": "wheel"}
    elif target in STAGE_IMAGES:
        spec = STAGE_IMAGES[target]
        dockerfile, args, tag = spec.dockerfile, spec.build_args(), image(target)
        if options.base:
            args["BASE"] = options.base
    else:
        raise ConfigError(f"unknown image {target!r}; images: {', '.join((*STAGES, 'triton'))}")
    volumes: list[str] = []
    if options.wheels and ("train" in args.get("EXTRAS", "") or target == "train"):
        volumes += ["--volume", f"{Path(options.wheels).resolve()}:{WHEELS_MOUNT}:ro"]
        args["TORCH_FIND_LINKS"] = WHEELS_MOUNT
    if options.ca_bundle:
        volumes += ["--volume", f"{Path(options.ca_bundle).resolve()}:{CA_MOUNT}:ro"]
        args["PIP_CERT"] = CA_MOUNT
    build_args = [a for k, v in args.items() for a in ("--build-arg", f"{k}={v}")]
    return [engine.command, "build", *engine.flags, *volumes, "-f", dockerfile, *build_args, "-t", tag, "."]


def image_size(engine: Engine, ref: str) -> int:
    """The image's size in bytes as the engine reports it."""
    out = subprocess.run([engine.command, "image", "inspect", "--format", "{{.Size}}", ref], capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise ImageError(f"{ref}: not found by {engine.command} ({out.stderr.strip()})")
    return int(out.stdout.strip().splitlines()[0])


def variant(argv: Sequence[str]) -> str:
    """Which variant of its Dockerfile a build command makes: the Dockerfile's defaults (the cluster image), or the
    build machine's fallbacks it names (a local base, CPU torch from a wheel folder, Triton from the wheel)."""
    args = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--build-arg")
    parts = [f"base {args['BASE']}"] if "BASE" in args else []
    if "TORCH_FIND_LINKS" in args:
        parts.append("CPU torch from the wheel folder")
    if args.get("SERVER") == "wheel":
        parts.append("tritonserver from the nvidia-pytriton wheel")
    return ", ".join(parts) or "the Dockerfile's defaults"


@dataclass
class BuildResult:
    target: str
    image: str
    seconds: float
    size_bytes: int
    argv: list[str] = field(default_factory=list)
    variant: str = ""

    def line(self) -> str:
        return f"{self.target:12} {self.image:55} {self.size_bytes / 1e6:8.0f} MB {self.seconds:8.0f} s  {self.variant}"


def build_images(targets: Sequence[str], engine: Engine, options: BuildOptions, *, log_dir: Path,
                 echo: Any = print, on_result: Any = None) -> list[BuildResult]:
    """Build each target one at a time (the log of each in ``log_dir/<target>.log``); stops at the first failure.
    ``on_result`` gets each image as soon as it is built, so a failure later keeps the images before it."""
    log_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for target in targets:
        argv = build_argv(target, engine, options)
        ref = argv[argv.index("-t") + 1]
        log = log_dir / f"{target}.log"
        echo(f"building {target}: {' '.join(argv)}  (log: {log})")
        t0 = time.monotonic()
        with log.open("w", encoding="utf-8") as f:
            code = subprocess.run(argv, cwd=REPO, stdout=f, stderr=subprocess.STDOUT).returncode
        seconds = time.monotonic() - t0
        if code != 0:
            tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-25:])
            raise ImageError(f"{target}: build failed (exit {code}) after {seconds:.0f} s; log {log}:\n{tail}")
        results.append(BuildResult(target, ref, round(seconds, 1), image_size(engine, ref), argv, variant(argv)))
        echo(results[-1].line())
        if on_result is not None:
            on_result(results[-1])
    return results


def write_report(path: Path, section: str, payload: Any) -> Path:
    """Merge ``section`` into the JSON report at ``path`` (build and check runs share one file)."""
    report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    report[section] = payload
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def record_build(path: Path, engine: Engine, result: BuildResult) -> Path:
    """Put one built image into the report's ``build`` section, replacing that target's earlier entry: separate
    ``images.sh build IMAGE`` runs add up to one table (in :func:`all_targets` order) instead of overwriting it."""
    report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    images = {i["target"]: i for i in report.get("build", {}).get("images", [])}
    images[result.target] = asdict(result)
    order = {t: n for n, t in enumerate(all_targets())}
    return write_report(path, "build", {"engine": engine.command,
                                        "images": sorted(images.values(), key=lambda i: order.get(i["target"], 99))})


def env_flag(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


#: The local base ``images.sh base`` makes (Debian bookworm with Python 3.11, from debootstrap): used by ``build``
#: when no ``--base`` is given and the engine has it.
LOCAL_BASE = "localhost/nerwheel-base:bookworm"


def has_image(engine: Engine, ref: str) -> bool:
    return subprocess.run([engine.command, "image", "exists" if engine.is_podman else "inspect", ref],
                          capture_output=True).returncode == 0


def make_base(engine: Engine, *, mirror: str, work: Path, ref: str = LOCAL_BASE, echo: Any = print) -> str:
    """A Python 3.11 base without any registry: ``debootstrap`` a minimal Debian bookworm and import it (root)."""
    if shutil.which("debootstrap") is None:
        raise ConfigError("images.sh base needs debootstrap (apt-get install debootstrap)")
    rootfs = work.resolve() / "rootfs"  # debootstrap changes directory: a relative target would not be found
    if rootfs.exists():
        shutil.rmtree(rootfs)
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    echo(f"debootstrap bookworm from {mirror} into {rootfs}")
    code = subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
                           "bookworm", str(rootfs), mirror]).returncode
    if code != 0:
        raise ImageError(f"debootstrap of bookworm from {mirror} failed (exit {code}); its log is above and in "
                         f"{rootfs}/debootstrap/debootstrap.log; --mirror takes the Debian URI apt uses here")
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    code = subprocess.run([engine.command, "import", "-", ref], stdin=tar.stdout).returncode
    if tar.wait() != 0 or code != 0:
        raise ImageError(f"packing {rootfs} into {ref} failed (tar exit {tar.returncode}, import exit {code})")
    shutil.rmtree(rootfs)
    return ref


def all_targets() -> list[str]:
    """Every image: the stages in DAG order, then the Triton server."""
    return [*STAGES, "triton"]


def _options(base: str | None, wheels: str | None, ca_bundle: str | None, engine: Engine) -> BuildOptions:
    if base is None and has_image(engine, LOCAL_BASE):
        base = LOCAL_BASE
    return BuildOptions(base=base, wheels=wheels or env_flag("PIP_FIND_LINKS"),
                        ca_bundle=ca_bundle or env_flag("PIP_CERT"))


def cli() -> Any:
    """``python -m nerwheel.components.containers build|check|base`` (what ``scripts/images.sh`` runs)."""
    import click

    from nerwheel.cli.common import handle_errors

    class Group(click.Group):
        """An expected failure (no engine, a failed build or check) is one line on stderr and exit 1."""

        def invoke(self, ctx: click.Context) -> Any:
            with handle_errors():
                return super().invoke(ctx)

    @click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
    def main() -> None:
        """Build nerwheel's images with podman or docker and check them by running the pipeline in them."""

    engine_opt = click.option("--engine", type=click.Choice(["podman", "docker"]), default=None,
                              help="Container engine (default: podman when installed, else docker).")
    report_opt = click.option("--report", type=click.Path(dir_okay=False, path_type=Path),
                              default=Path("runs/images/report.json"), show_default=True,
                              help="JSON report: build times, image sizes, the check's tasks and wall time.")

    @main.command()
    @click.argument("targets", nargs=-1)
    @engine_opt
    @click.option("--base", default=None, help=f"Python 3.11 base image for the CPU images (default: {LOCAL_BASE} "
                  "when the engine has it, else each Dockerfile's pinned base).")
    @click.option("--wheels", default=None, help="Folder with the CPU torch wheel (default: $PIP_FIND_LINKS).")
    @click.option("--ca-bundle", default=None, help="CA bundle mounted at build time (default: $PIP_CERT).")
    @report_opt
    def build(targets: tuple[str, ...], engine: str | None, base: str | None, wheels: str | None,
              ca_bundle: str | None, report: Path) -> None:
        """Build TARGETS (stages, or triton; default: all), one at a time."""
        eng = detect_engine(engine)
        opts = _options(base, wheels, ca_bundle, eng)
        results = build_images(list(targets) or all_targets(), eng, opts, log_dir=report.parent / "logs",
                               echo=lambda m: click.echo(m, err=True),
                               on_result=lambda r: record_build(report, eng, r))
        for r in results:
            click.echo(r.line())

    @main.command()
    @engine_opt
    @click.option("--mirror", default="http://deb.debian.org/debian", show_default=True,
                  help="Debian mirror for debootstrap.")
    @click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/images/base"),
                  show_default=True)
    def base(engine: str | None, mirror: str, work: Path) -> None:
        """Make the local Python 3.11 base image (Debian bookworm by debootstrap; needs root)."""
        ref = make_base(detect_engine(engine), mirror=mirror, work=work, echo=lambda m: click.echo(m, err=True))
        click.echo(ref)

    @main.command()
    @engine_opt
    @click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
                  default=Path("runs/images/check"), show_default=True, help="Pipeline root and logs.")
    @click.option("--s3", is_flag=True, help="Inputs and the Triton repository on a local S3 server (moto).")
    @click.option("--turns", type=click.IntRange(1, 2), default=2, show_default=True,
                  help="1: the first turn (annotate shards); 2: also the second (feedback and pseudo-label shards, "
                       "gated against the first).")
    @click.option("--no-serve", is_flag=True, help="Skip starting the Triton image on the deployed repository.")
    @click.option("--stage", default=None, help="Only this stage's image: its component alone on each shard of the "
                  "sample data, compared with the same step on this machine (shard, annotate).")
    @click.option("--shards", type=click.IntRange(1, 16), default=3, show_default=True, help="Shards for --stage.")
    @report_opt
    def check(engine: str | None, out_dir: Path, s3: bool, turns: int, no_serve: bool, stage: str | None,
              shards: int, report: Path) -> None:
        """Run the compiled pipeline with every task in its stage's image (kfp.local.DockerRunner)."""
        from nerwheel.components.image_check import run_check, run_stage_check

        echo = lambda m: click.echo(m, err=True)  # noqa: E731
        if stage:
            result = run_stage_check(detect_engine(engine), stage, out_dir=out_dir.resolve(), shards=shards,
                                     echo=echo)
            write_report(report, f"check-{stage}", result)
            click.echo(json.dumps(result, indent=2, ensure_ascii=False))
            return
        result = run_check(detect_engine(engine), out_dir=out_dir.resolve(), s3=s3, turns=turns, serve=not no_serve,
                           echo=echo)
        write_report(report, "check-s3" if s3 else "check", result)  # each kind of check keeps its own section
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))

    return main


if __name__ == "__main__":
    cli()()
