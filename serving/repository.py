"""A Triton model repository (local folder or ``s3://`` prefix) holding nerwheel models.

Layout, per model name::

    <repository>/<name>/config.pbtxt        version_policy { specific { versions: [live] } }
    <repository>/<name>/<version>/model.py  the python-backend shell (model_shell.py)
    <repository>/<name>/<version>/model.onnx, crf.npz, tokenizer.json, nerwheel.json  (the export's files)
    <repository>/<name>/<version>.claim     the version number is taken (create-only)
    <repository>/<name>/<version>.manifest.json  every file's sha256, written when the upload is complete

Versions are integers and never rewritten: a deploy writes the next one, and
``config.pbtxt`` names the version that is live. Because that file is written
last (and atomically), a half-uploaded version is never served, and a server
that restarts comes back with the last verified version.

``config.pbtxt`` is also what GitOps controls: ``nerwheel deploy --pin-version``
(:meth:`ModelRepository.pinned_configs`) rewrites it to the version an overlay
names, so reverting the overlay's ``MODEL_VERSION`` line reverts what is served.
:func:`live_version` answers "which version is live" for any caller.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from nerwheel.errors import ConfigError, NerwheelError
from nerwheel.model.layout import (
    CARD_FILE,
    CRF_NPZ,
    EXPORT_FILES,
    ONNX_FILE,
    TOKENIZER_FILE,
    missing_export_files,
)
from nerwheel.serving.config import (
    ServingOptions,
    cpu_model_config,
    gpu_model_configs,
    parse_config,
    to_pbtxt,
    with_versions,
)
from nerwheel.storage import ObjectInfo, Storage, StorageNotFound, get_storage, is_s3, join, sha256_file

__all__ = [
    "EXPORT_FILES",  # the export's files (nerwheel.model.layout), re-exported
    "ModelRepository",
    "RepositoryError",
    "build_repository",
    "live_version",
    "open_repository",
    "lexicon_columns",
    "resolve_repository",
    "stage_cpu_version",
    "stage_gpu_versions",
]

SHELL = Path(__file__).with_name("model_shell.py")
CLAIM_SUFFIX = ".claim"  # <name>/<version>.claim: a version number taken by a deploy
# <name>/<version>.manifest.json: every file of the version and its sha256, written once the upload is complete.
MANIFEST_SUFFIX = ".manifest.json"


class RepositoryError(NerwheelError, RuntimeError):
    """The repository or an export folder is not what a deploy needs."""


def check_export_dir(export_dir: str | Path) -> Path:
    path = Path(export_dir)
    missing = missing_export_files(path)
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


def lexicon_columns(export_dir: str | Path) -> int:
    """How many knowledge-base lexicon feature columns the export's graph reads (0: none; the card's
    ``lexicon.width``)."""
    from nerwheel.model.card import ModelCard

    lexicon = ModelCard.read(export_dir).lexicon
    return int(lexicon["width"]) if lexicon else 0


def stage_cpu_version(export_dir: str | Path, into: str | Path) -> Path:
    """Fill a version folder for the CPU layout: the export artifacts + ``model.py``."""
    src, dst = check_export_dir(export_dir), Path(into)
    _copy_artifacts(src, dst, EXPORT_FILES)
    shutil.copy2(SHELL, dst / "model.py")
    return dst


def stage_gpu_versions(
    export_dir: str | Path, root: str | Path, name: str, version: int, options: ServingOptions | None = None
) -> dict[str, mc.ModelConfig]:
    """Write the four GPU models (tokenize, onnx, decode, ensemble) under ``root`` for ``version``.

    A model that reads lexicon features (:func:`lexicon_columns`) gets the layout with the ``lexicon`` tensor
    between its tokenize step (which computes the features) and its ONNX model.
    """
    src, root = check_export_dir(export_dir), Path(root)
    configs = gpu_model_configs(name, version, options, lexicon_columns=lexicon_columns(src))
    for model, cfg in configs.items():
        folder = root / model / str(version)
        folder.mkdir(parents=True, exist_ok=True)
        if cfg.backend == "python":
            _copy_artifacts(src, folder, (TOKENIZER_FILE, CARD_FILE, CRF_NPZ))
            shutil.copy2(SHELL, folder / "model.py")
        elif cfg.backend == "onnxruntime":
            _copy_artifacts(src, folder, (ONNX_FILE,))
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
        raise ConfigError(f"unknown repository variant {variant!r}; expected 'cpu' or 'gpu'")
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
        """The number after every version folder (``N``) and every claim (``N.claim``): one listing."""
        taken = (n.removesuffix(CLAIM_SUFFIX) for n in self.storage.children(self.model_uri(name)))
        return max((int(n) for n in taken if n.isdigit()), default=0) + 1

    def claim_version(self, name: str, *, attempts: int = 20) -> int:
        """Reserve the next version number of ``name`` for one deploy, even when deploys run at once.

        Two deploys that both read "next is 4" would both upload ``4/``; on S3
        nothing stops the second from overwriting the first. Each deploy
        therefore first creates ``<name>/<version>.claim`` with a create-only
        write (:meth:`Storage.create`): the loser sees the claim and tries the
        next number. Claims are small files beside ``config.pbtxt``; Triton
        only reads numbered sub-folders, so it never sees them.
        """
        version = self.next_version(name)
        for _ in range(attempts):
            claim = join(self.model_uri(name), f"{version}{CLAIM_SUFFIX}")
            if self.storage.create(claim, f"claimed by pid {os.getpid()} on {socket.gethostname()}\n".encode()):
                return version
            version = max(version + 1, self.next_version(name))
        raise RepositoryError(f"could not claim a version of {self.model_uri(name)} in {attempts} attempts: "
                              "other deploys keep taking the next number; retry when they are done")

    def read_config(self, name: str) -> mc.ModelConfig | None:
        uri = join(self.uri, name, "config.pbtxt")
        try:
            return parse_config(self.storage.read_text(uri))
        except StorageNotFound:  # never deployed; a permission or network error must not look like that
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

    def remove_config(self, name: str) -> None:
        """Delete ``config.pbtxt`` (undoing a first deploy's commit: the model is then not served at all)."""
        self.storage.delete(join(self.uri, name, "config.pbtxt"))

    def composing_models(self, cfg: mc.ModelConfig) -> list[str]:
        """The models an ensemble's steps call, in step order, each once (empty for a plain model)."""
        if cfg.platform != "ensemble":
            return []
        return list(dict.fromkeys(step.model_name for step in cfg.ensemble_scheduling.step))

    def pinned_configs(self, name: str, version: int) -> dict[str, mc.ModelConfig]:
        """The configs that make ``version`` the live version of ``name``: composing models first, ``name`` last.

        For an ensemble (the GPU layout) every step model is pinned too, and
        the ensemble's steps name ``version`` explicitly, so all of them switch
        together. Nothing is written: the caller writes (or loads) them. Raises
        :class:`RepositoryError` naming what is missing when ``name`` has no
        config or any of the models lacks a folder for ``version``.
        """
        cfg = self.read_config(name)
        if cfg is None:
            there = ", ".join(self.models()) or "none"
            raise RepositoryError(f"{join(self.uri, name, 'config.pbtxt')} does not exist: there is no model "
                                  f"{name!r} in {self.uri} (models there: {there}); deploy it first")
        steps = self.composing_models(cfg)
        missing = [m for m in [*steps, name] if version not in self.versions(m)]
        if missing:
            raise RepositoryError(
                f"cannot pin {name} to version {version}: {', '.join(join(self.uri, m, str(version)) for m in missing)}"
                f" does not exist (versions of {name} there: {self.versions(name) or 'none'}); "
                "pin one of those, or deploy the model again"
            )
        for m in [*steps, name]:  # a half-uploaded or altered version is never made live
            try:
                self.verify_version(m, version)
            except RepositoryError as e:
                raise RepositoryError(f"cannot pin {name} to version {version}: {e}") from None
        out: dict[str, mc.ModelConfig] = {}
        for m in steps:
            step_cfg = self.read_config(m)
            if step_cfg is None:
                raise RepositoryError(f"{join(self.uri, m, 'config.pbtxt')} does not exist, but the ensemble "
                                      f"{name} calls {m}; redeploy {name}")
            out[m] = with_versions(step_cfg, [version])
        entry = with_versions(cfg, [version])
        for step in entry.ensemble_scheduling.step:
            step.model_version = version
        out[name] = entry
        return out

    def write_version(self, name: str, version: int, folder: str | Path) -> dict[str, ObjectInfo]:
        """Upload a staged version folder, then its manifest; refuses to touch an existing version.

        The manifest (every file's sha256, create-only) is written last: a version without one never
        finished uploading, and :meth:`verify_version` refuses it.
        """
        uri = join(self.uri, name, str(version))
        if self.storage.exists(uri):
            raise RepositoryError(f"{uri} already exists: versions are never overwritten")
        uploaded = self.storage.upload_dir(folder, uri)
        manifest = {"model": name, "version": version,
                    "files": {rel: info.sha256 for rel, info in sorted(uploaded.items())}}
        data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        if not self.storage.create(self._manifest_uri(name, version), data):
            raise RepositoryError(f"{self._manifest_uri(name, version)} already exists: another deploy wrote "
                                  f"version {version} of {name}")
        return uploaded

    def _manifest_uri(self, name: str, version: int) -> str:
        return join(self.model_uri(name), f"{version}{MANIFEST_SUFFIX}")

    def verify_version(self, name: str, version: int) -> dict[str, str]:
        """Check every file of ``name/version`` against its manifest; returns ``{relative path: sha256}``.

        Raises :class:`RepositoryError` listing each problem: no manifest (the upload never finished, or
        an older nerwheel wrote it), a file missing, a file added, a file whose bytes differ.
        """
        where = join(self.uri, name, str(version))
        try:
            manifest = json.loads(self.storage.read_text(self._manifest_uri(name, version)))
            expected = dict(manifest["files"])
        except StorageNotFound:
            raise RepositoryError(f"{where} has no manifest ({version}{MANIFEST_SUFFIX}): its upload never finished "
                                  "(or an older nerwheel wrote it); deploy the model again") from None
        except (ValueError, KeyError, TypeError) as e:
            raise RepositoryError(f"{self._manifest_uri(name, version)} is not a version manifest ({e})") from None
        problems: list[str] = []
        with self.storage.local_dir(where) as folder:
            # __pycache__: what Python writes beside model.py when Triton loads it from a local folder
            found = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
                     if p.is_file() and "__pycache__" not in p.relative_to(folder).parts}
            missing = sorted(set(expected) - set(found))
            if missing:
                problems.append(f"missing: {', '.join(missing)}")
            extra = sorted(set(found) - set(expected))
            if extra:
                problems.append(f"not in the manifest: {', '.join(extra)}")
            for rel in sorted(set(expected) & set(found)):
                digest = sha256_file(found[rel])
                if digest != expected[rel]:
                    problems.append(f"{rel}: sha256 {digest[:12]}... but the manifest says {expected[rel][:12]}...")
        if problems:
            raise RepositoryError(f"{where} does not match its manifest: {'; '.join(problems)}")
        return expected

    def prune(self, name: str, keep: int) -> list[int]:
        """Delete all but the newest ``keep`` version folders (live versions always stay); returns those deleted.

        Triton copies a model's whole folder from S3 on every load, so old
        versions make every deploy slower; nothing else reads them.
        """
        if keep < 1:
            raise ConfigError(f"keep must be >= 1, got {keep}")
        live = set(self.live_versions(name))
        doomed = [v for v in self.versions(name)[:-keep] if v not in live]
        for v in doomed:
            self.storage.delete(join(self.uri, name, str(v)), recursive=True)
        return doomed

    @contextmanager
    def staging(self) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="nerwheel-stage-") as tmp:
            yield Path(tmp)


# Triton's own form for a non-AWS S3 endpoint: s3://[http(s)://]host:port/bucket/prefix (http when no scheme).
_TRITON_S3_HOST = re.compile(r"[^/:]+:\d+")


def resolve_repository(repository: str, endpoint_url: str | None = None) -> tuple[str, str | None]:
    """``(s3://bucket/prefix or local path, S3 endpoint)`` for a repository given in nerwheel's or Triton's form.

    Triton names a MinIO/Ceph repository ``s3://http://host:port/bucket/prefix``
    (:func:`nerwheel.serving.server.triton_repository_url` writes that form),
    and the Kubernetes manifests hand that same string to both Triton and
    ``nerwheel deploy --pin-version``; here it becomes the plain URI plus the
    endpoint. An ``endpoint_url`` that contradicts the one in the URI is an error.
    """
    if not is_s3(repository):
        return repository, endpoint_url
    rest, scheme, explicit = repository[len("s3://"):], "http", False
    for prefix in ("http://", "https://"):
        if rest.startswith(prefix):
            scheme, rest, explicit = prefix[:-3], rest[len(prefix):], True
    host, _, path = rest.partition("/")
    if not (explicit or _TRITON_S3_HOST.fullmatch(host)):
        return repository, endpoint_url
    if not path.strip("/"):
        raise RepositoryError(f"{repository!r} names an S3 endpoint but no bucket; expected "
                              "s3://http://host:port/bucket/prefix")
    endpoint = f"{scheme}://{host}"
    if endpoint_url and endpoint_url.rstrip("/") != endpoint:
        raise RepositoryError(f"the repository {repository!r} names the S3 endpoint {endpoint}, but the endpoint "
                              f"{endpoint_url!r} was given too; drop one of them")
    return f"s3://{path}", endpoint


def open_repository(repository: str, endpoint_url: str | None = None) -> ModelRepository:
    """A :class:`ModelRepository` for a local folder, ``s3://bucket/prefix`` or Triton's ``s3://http://...`` form.

    An ``s3://`` repository's bucket must exist: a missing one is one sentence naming the bucket, the
    endpoint and the fix, not a client library's traceback on the first listing.
    """
    uri, endpoint = resolve_repository(repository, endpoint_url)
    storage = Storage(endpoint)
    if is_s3(uri):
        storage.check_bucket(uri)
    return ModelRepository(uri, storage)


def live_version(repository: str, name: str, *, endpoint_url: str | None = None) -> int | None:
    """The version of model ``name`` that ``repository`` (local, ``s3://`` or Triton's S3 form) serves, if any.

    That is the version ``config.pbtxt`` names (the newest one if it names
    several, the newest folder under Triton's default policy); ``None`` when
    the model has no ``config.pbtxt`` there (never deployed, or its first
    deploy failed). S3 credentials come from the usual AWS variables.
    """
    versions = open_repository(repository, endpoint_url).live_versions(name)
    return versions[-1] if versions else None
