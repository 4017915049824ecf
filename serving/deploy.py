"""Deploy a model as a new version of a Triton model, verify it, and roll back on failure.

The steps, each of which can fail without harming what is live:

1. resolve the model: an export folder is used as is, a trained model folder
   is exported first (``nerwheel.stages.export``); ``s3://`` sources are
   downloaded;
2. compute the offline answer on the probe texts with the export's own
   runtime (``OnnxTagger``): the reference the served model must reproduce;
3. stage the next version number and upload it (checksums verified on S3);
   live versions are never overwritten;
4. with a Triton URL: load the model through explicit model control with the
   new config passed in the load request (``version_policy: specific
   [new]``), wait for readiness, and send the probe texts to that version;
5. only when the probe answers equal the offline answers is ``config.pbtxt``
   rewritten to name the new version (so a restarted server comes back with
   it); otherwise Triton reloads the untouched ``config.pbtxt``, which still
   names the previous version: the rollback.

Triton swaps versions without dropping requests: the old version keeps
serving until the new one is ready.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from nerwheel.serving.backend import load_tagger
from nerwheel.serving.config import ServingOptions, cpu_model_config, gpu_model_configs, with_versions
from nerwheel.serving.repository import (
    ModelRepository,
    RepositoryError,
    check_export_dir,
    num_tags,
    stage_cpu_version,
    stage_gpu_versions,
)
from nerwheel.storage import Storage, is_s3

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_PROBE_TEXTS", "DeployError", "DeployReport", "deploy", "resolve_export"]

# Short, varied addresses: the probe checks served == offline, not accuracy.
DEFAULT_PROBE_TEXTS: tuple[str, ...] = (
    "浙江省杭州市余杭区文一西路969号",
    "北京市海淀区中关村大街27号中关村大厦15层1501室",
    "广东省深圳市南山区科技园南区深南大道10000号",
    "上海市浦东新区张江镇碧波路690号3号楼",
    "四川省成都市武侯区人民南路四段1号",
)


class DeployError(RuntimeError):
    """A deploy that could not even be attempted (bad model folder, unreachable repository)."""


@dataclass
class DeployReport:
    """What happened, as printed by ``nerwheel deploy`` (JSON)."""

    name: str
    repository: str
    version: int
    previous_versions: list[int]
    live_versions: list[int]
    status: str  # "live" (loaded and verified), "written" (no Triton given), "rolled_back", "failed"
    verified: bool
    variant: str = "cpu"
    probe_texts: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    pruned: list[int] = field(default_factory=list)  # old version folders deleted (keep=N)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("live", "written")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_export(model: str | Path, workdir: Path, storage: Storage) -> Path:
    """An export folder for ``model`` (export folder, trained model folder, or either on S3)."""
    model = str(model)
    if is_s3(model):
        local = workdir / "source"
        storage.download_dir(model, local)
        model = str(local)
    path = Path(model)
    for candidate in (path, path / "onnx"):  # `nerwheel export MODEL` writes into MODEL/onnx by default
        if (candidate / "model.onnx").is_file():
            return check_export_dir(candidate)
    if (path / "nerwheel.json").is_file() and (path / "config.json").is_file():
        from nerwheel.stages.export import export  # heavy (torch): only when a model folder must be exported

        out = workdir / "export"
        export(path, out)
        return check_export_dir(out)
    raise DeployError(
        f"{path} is neither an export folder (model.onnx, tokenizer.json, nerwheel.json) nor a trained model "
        "folder (config.json, nerwheel.json)"
    )


def _entity_keys(entities: Sequence[Any]) -> list[tuple[int, int, str, str]]:
    return [(e.start, e.end, e.label, e.text) for e in entities]


def _compare(texts: Sequence[str], expected: Sequence[Sequence[Any]], got: Sequence[Sequence[Any]]) -> list[dict]:
    out = []
    for text, e, g in zip(texts, expected, got, strict=True):
        if _entity_keys(e) != _entity_keys(g):
            out.append({"text": text, "offline": [x.to_dict() for x in e], "served": [x.to_dict() for x in g]})
    return out


def deploy(
    model: str | Path,
    repository: str,
    *,
    name: str = "nerwheel",
    triton_url: str | None = None,
    options: ServingOptions | None = None,
    variant: str = "cpu",
    probe_texts: Sequence[str] = DEFAULT_PROBE_TEXTS,
    endpoint_url: str | None = None,
    timeout_s: float = 120.0,
    keep: int | None = None,
) -> DeployReport:
    """Write ``model`` as the next version of ``name`` in ``repository``; load and verify it in Triton.

    ``keep=N`` deletes all but the newest N version folders after a
    successful deploy (Triton copies every version folder from S3 on each
    load). Returns a report; it raises only when nothing could be attempted
    (:class:`DeployError`). A failed load or probe is rolled back and reported
    with ``status == "rolled_back"`` (or ``"failed"`` when no version was live).
    """
    if variant not in ("cpu", "gpu"):
        raise DeployError(f"unknown variant {variant!r}; expected 'cpu' or 'gpu'")
    t0 = time.monotonic()
    opts = options or ServingOptions()
    storage = Storage(endpoint_url)
    repo = ModelRepository(repository, storage)
    with tempfile.TemporaryDirectory(prefix="nerwheel-deploy-") as tmp:
        work = Path(tmp)
        export_dir = resolve_export(model, work, storage)
        texts = [t for t in probe_texts if t.strip()]
        if not texts:
            raise DeployError("deploy needs at least one non-empty probe text to verify the served model")
        try:
            expected = load_tagger(opts.tagger, export_dir).predict(texts)
        except Exception as e:  # noqa: BLE001 - any failure here means the model is unusable
            raise DeployError(
                f"{model}: the model does not load or run offline ({type(e).__name__}: {e}); nothing was deployed"
            ) from e

        previous = repo.live_versions(name)
        version = repo.next_version(name)
        stage = work / "stage"
        if variant == "cpu":
            configs = {name: cpu_model_config(name, version, opts)}
            stage_cpu_version(export_dir, stage / name / str(version))
        else:
            configs = gpu_model_configs(name, num_tags(export_dir), version, opts)
            stage_gpu_versions(export_dir, stage, name, version, opts)
        files: dict[str, str] = {}
        for model_name in configs:
            uploaded = repo.write_version(model_name, version, stage / model_name / str(version))
            files.update({f"{model_name}/{version}/{rel}": info.sha256 for rel, info in uploaded.items()})
        log.info("wrote %s version %d to %s (%d files)", name, version, repository, len(files))

        report = DeployReport(
            name=name, repository=repository, version=version, previous_versions=previous, live_versions=previous,
            status="failed", verified=False, variant=variant, probe_texts=len(texts), files=files,
        )
        if triton_url is None:
            # Nothing to load into: check the staged folder itself loads and answers like the export.
            if variant == "cpu":
                got = load_tagger(opts.tagger, stage / name / str(version)).predict(texts)
                report.mismatches = _compare(texts, expected, got)
            if report.mismatches:
                report.error = "the staged version does not reproduce the export's predictions"
            else:
                for model_name, cfg in configs.items():
                    repo.write_config(model_name, cfg)
                report.status, report.live_versions = "written", [version]
        else:
            _load_and_verify(report, repo, configs, triton_url, texts, expected, timeout_s)
    if keep is not None and report.ok:
        for model_name in configs:  # only after a success: a rollback may need the old versions
            deleted = repo.prune(model_name, keep)
            if model_name == name:
                report.pruned = deleted
    report.seconds = round(time.monotonic() - t0, 3)
    return report


def _load_and_verify(
    report: DeployReport,
    repo: ModelRepository,
    configs: dict[str, Any],
    triton_url: str,
    texts: list[str],
    expected: list[list[Any]],
    timeout_s: float,
) -> None:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    from nerwheel.serving.client import Client, ServingError

    name, version = report.name, report.version
    admin = grpcclient.InferenceServerClient(triton_url.removeprefix("grpc://"))
    try:
        try:
            for model_name, cfg in configs.items():  # composing models first, the entry model last
                body = json_format.MessageToJson(cfg, preserving_proto_field_name=True)
                admin.load_model(model_name, config=body, client_timeout=timeout_s)
            _wait_ready(admin, name, str(version), timeout_s)
            batch = max(1, configs[name].max_batch_size)
            with Client(triton_url, model=name, version=version, timeout=timeout_s, retries=2,
                        batch_size=batch) as client:
                got = client.extract(texts)
            report.mismatches = _compare(texts, expected, got)
            if report.mismatches:
                raise DeployError(f"{len(report.mismatches)} of {len(texts)} probe texts answered differently "
                                  "from the offline model")
        except (InferenceServerException, ServingError, DeployError, TimeoutError) as e:
            report.error = str(e)
            if "failed to poll from model repository" in report.error:
                report.error += (f" (is {repo.uri} one of the server's --model-repository folders? "
                                 "Triton loads models only from its own repositories)")
            log.warning("version %d of %s failed: %s; rolling back", version, name, e)
            _roll_back(report, repo, admin, list(configs), timeout_s)
            return
        for model_name, cfg in configs.items():  # commit: a restarted server loads the verified version
            repo.write_config(model_name, cfg)
        report.status, report.verified, report.live_versions = "live", True, [version]
    finally:
        admin.close()


def _roll_back(
    report: DeployReport, repo: ModelRepository, admin: Any, models: list[str], timeout_s: float
) -> None:
    """Reload the untouched config.pbtxt (previous version), or unload when nothing was live before."""
    from tritonclient.utils import InferenceServerException

    try:
        if report.previous_versions:
            for model_name in models:
                cfg = repo.read_config(model_name)
                if cfg is None:
                    raise RepositoryError(f"{model_name}/config.pbtxt vanished; cannot roll back")
                body = json_format.MessageToJson(with_versions(cfg, report.previous_versions),
                                                 preserving_proto_field_name=True)
                admin.load_model(model_name, config=body, client_timeout=timeout_s)
            _wait_ready(admin, report.name, str(report.previous_versions[-1]), timeout_s)
            report.status, report.live_versions = "rolled_back", report.previous_versions
        else:
            for model_name in reversed(models):
                admin.unload_model(model_name)
            report.status, report.live_versions = "failed", []
    except (InferenceServerException, RepositoryError, TimeoutError) as e:
        report.status = "failed"
        report.error = f"{report.error}; rollback failed too: {e}"


def _wait_ready(admin: Any, name: str, version: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if admin.is_model_ready(name, version):
                return
        except Exception:  # noqa: BLE001 - transient while loading
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{name} version {version} was not ready within {timeout_s:.0f}s")


def report_json(report: DeployReport) -> str:
    return json.dumps(report.to_dict(), ensure_ascii=False, indent=2)
