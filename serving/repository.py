"""A Triton model repository (local folder or ``s3://`` prefix) holding nerwheel models.

Layout, per model name::

    <repository>/<name>/config.pbtxt        version_policy { specific { versions: [live] } }
    <repository>/<name>/<version>/model.py  the python-backend shell (model_shell.py)
    <repository>/<name>/<version>/model.onnx, crf.npz, tokenizer.json, nerwheel.json

Versions are integers and never rewritten: a deploy writes the next one, and
``config.pbtxt`` names the version that is live. Because that file is written
last (and atomically), a half-uploaded version is never served, and a server
that restarts comes back with the last verified version.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from nerwheel.serving.config import ServingOptions, cpu_model_config, gpu_model_configs, parse_config, to_pbtxt
from nerwheel.storage import ObjectInfo, Storage, StorageError, get_storage, join

__all__ = [
    "EXPORT_FILES",
    "ModelRepository",
    "RepositoryError",
    "build_repository",
    "stage_cpu_version",
    "stage_gpu_versions",
]

SHELL = Path(__file__).with_name("model_shell.py")
# The export contract (docs/architecture.md): required files, then optional ones.
EXPORT_REQUIRED = ("model.onnx", "tokenizer.json", "nerwheel.json")
EXPORT_OPTIONAL = ("crf.npz", "model.int8.onnx")
EXPORT_FILES = EXPORT_REQUIRED + EXPORT_OPTIONAL


class RepositoryError(RuntimeError):
    """The repository or an export folder is not what a deploy needs."""


def check_export_dir(export_dir: str | Path) -> Path:
    path = Path(export_dir)
    missing = [f for f in EXPORT_REQUIRED if not (path / f).is_file()]
    if missing:
        raise RepositoryError(
            f"{path} is not an export folder: missing {', '.join(missing)} (run `nerwheel export MODEL_DIR OUT`)"
        )
    return path


def _copy_artifacts(export_dir: Path, into: Path, names: Iterable[str]) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (export_dir / name).is_file():
            shutil.copy2(export_dir / name, into / name)


def num_tags(export_dir: Path) -> int:
    card = json.loads((export_dir / "nerwheel.json").read_text(encoding="utf-8"))
    tags = card.get("tags")
    if not tags:
        raise RepositoryError(f"{export_dir / 'nerwheel.json'} has no 'tags' list")
    return len(tags)


def stage_cpu_version(export_dir: str | Path, into: str | Path) -> Path:
    """Fill a version folder for the CPU layout: the export artifacts + ``model.py``."""
    src, dst = check_export_dir(export_dir), Path(into)
    _copy_artifacts(src, dst, EXPORT_FILES)
    shutil.copy2(SHELL, dst / "model.py")
    return dst


def stage_gpu_versions(
    export_dir: str | Path, root: str | Path, name: str, version: int, options: ServingOptions | None = None
) -> dict[str, mc.ModelConfig]:
    """Write the four GPU models (tokenize, onnx, decode, ensemble) under ``root`` for ``version``."""
    src, root = check_export_dir(export_dir), Path(root)
    configs = gpu_model_configs(name, num_tags(src), version, options)
    for model, cfg in configs.items():
        folder = root / model / str(version)
        folder.mkdir(parents=True, exist_ok=True)
        if cfg.backend == "python":
            _copy_artifacts(src, folder, ("tokenizer.json", "nerwheel.json", "crf.npz"))
            shutil.copy2(SHELL, folder / "model.py")
        elif cfg.backend == "onnxruntime":
            _copy_artifacts(src, folder, ("model.onnx",))
        else:  # the ensemble has no files, but S3 has no empty folders: leave a note Triton ignores
            (folder / "ENSEMBLE.md").write_text(f"Ensemble of {', '.join(m for m in configs if m != name)}.\n")
        (root / model / "config.pbtxt").write_text(to_pbtxt(cfg), encoding="utf-8")
    return configs


def build_repository(
    export_dir: str | Path,
    out: str | Path,
    *,
    name: str = "nerwheel",
    version: int = 1,
    variant: str = "cpu",
    options: ServingOptions | None = None,
) -> Path:
    """A fresh local repository with one model version (``variant`` ``cpu`` or ``gpu``)."""
    out = Path(out)
    if variant == "gpu":
        stage_gpu_versions(export_dir, out, name, version, options)
    elif variant == "cpu":
        stage_cpu_version(export_dir, out / name / str(version))
        (out / name / "config.pbtxt").write_text(to_pbtxt(cpu_model_config(name, version, options)), encoding="utf-8")
    else:
        raise ValueError(f"unknown repository variant {variant!r}; expected 'cpu' or 'gpu'")
    return out


@dataclass
class ModelRepository:
    """Versions and configs of models in a repository at a local path or ``s3://`` URI."""

    uri: str
    storage: Storage = field(default_factory=get_storage)

    def model_uri(self, name: str) -> str:
        return join(self.uri, name)

    def models(self) -> list[str]:
        """Model names: folders that hold a ``config.pbtxt``."""
        return [n for n in self.storage.children(self.uri) if self.storage.exists(join(self.uri, n, "config.pbtxt"))]

    def versions(self, name: str) -> list[int]:
        """Every version folder present (live or not), ascending."""
        return sorted(int(n) for n in self.storage.children(self.model_uri(name)) if n.isdigit())

    def next_version(self, name: str) -> int:
        return max(self.versions(name), default=0) + 1

    def read_config(self, name: str) -> mc.ModelConfig | None:
        uri = join(self.uri, name, "config.pbtxt")
        try:
            return parse_config(self.storage.read_text(uri))
        except StorageError:
            return None

    def live_versions(self, name: str) -> list[int]:
        cfg = self.read_config(name)
        if cfg is None:
            return []
        if cfg.version_policy.WhichOneof("policy_choice") == "specific":
            return sorted(int(v) for v in cfg.version_policy.specific.versions)
        return self.versions(name)[-1:]  # Triton's default policy: latest 1

    def write_config(self, name: str, cfg: mc.ModelConfig) -> ObjectInfo:
        return self.storage.write_text(join(self.uri, name, "config.pbtxt"), to_pbtxt(cfg))

    def write_version(self, name: str, version: int, folder: str | Path) -> dict[str, ObjectInfo]:
        """Upload a staged version folder; refuses to touch an existing version."""
        uri = join(self.uri, name, str(version))
        if self.storage.exists(uri):
            raise RepositoryError(f"{uri} already exists: versions are never overwritten")
        return self.storage.upload_dir(folder, uri)

    def prune(self, name: str, keep: int) -> list[int]:
        """Delete all but the newest ``keep`` version folders (live versions always stay); returns those deleted.

        Triton copies a model's whole folder from S3 on every load, so old
        versions make every deploy slower; nothing else reads them.
        """
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        live = set(self.live_versions(name))
        doomed = [v for v in self.versions(name)[:-keep] if v not in live]
        for v in doomed:
            self.storage.delete(join(self.uri, name, str(v)), recursive=True)
        return doomed

    @contextmanager
    def staging(self) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="nerwheel-stage-") as tmp:
            yield Path(tmp)
