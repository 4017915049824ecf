"""Deploy a model as a new version of a Triton model, verify it, and roll back on failure.

The steps, each of which can fail without harming what is live:

1. resolve the model: an export folder is used as is, a trained model folder
   is exported first (``nerwheel.stages.export``); ``s3://`` sources are
   downloaded;
2. compute the offline answer on the probe texts with the export's own
   runtime (``OnnxTagger``): the reference the served model must reproduce;
3. claim the next version number and upload it (checksums verified on S3),
   then its manifest (every file's sha256): live versions are never
   overwritten, and a version without a manifest never finished uploading;
4. with a Triton URL: load the new version under a candidate name no client
   calls (``<name>__candidate<N>``, from the staged files sent in the load
   request) and send it the probe texts: the answers must equal the offline
   ones. No live request reaches a version before it passed;
5. switch: ``config.pbtxt`` is rewritten to name the new version (the
   commit), then the server loads the model *from the repository*, and the
   live model is probed once more; on any failure the old ``config.pbtxt`` is
   written back and loaded again: the rollback.

The repository is the single source of truth: the server only ever loads
what ``config.pbtxt`` names, so a deploy killed at any step leaves the server
and the repository on the same verified version. The one exception: killed
between the commit and the load that follows it, ``config.pbtxt`` names the new
version (verified as a candidate) while the server keeps the previous verified
one, until the next deploy or pin reconciles it (:func:`_reconcile`) or a
restart reads the repository. Two states with no transaction between them
leave one such instant in any order; this order keeps what a restart reads
verified (serving/README.md, "Crash-consistent", says what remains and why).
The next deploy also unloads candidates a killed deploy left; orphan version
folders and claims are ignored (numbers are never reused, and a pin refuses a
version whose files do not match its manifest).

Triton swaps versions without dropping requests: the old version keeps
serving until the new one is ready. For the GPU layout (an ensemble whose
steps name their versions) the order matters: the step models first load the
new version *beside* the old one, then the ensemble switches, and only after
the probe passed do the steps drop the old version. Swapping a step first
would leave the ensemble that is still being served calling a version that
is gone (see :class:`_Swap`).

What differs per task (the probe inputs, the CPU ``config.pbtxt``, how the
offline and the served answers are computed and compared) comes from the
export's task (``nerwheel.json`` ``task``) through
:mod:`nerwheel.serving.tasks`; the steps above are the same for every task.

Any failure after the new version was written, expected or not, ends in a
rollback: a failed load, a timeout or wrong answers are reported
(``status == "rolled_back"``); anything else (a bug, Ctrl-C) is rolled back
too and then re-raised, with the rollback's outcome attached as a note and as
``error.deploy_report``.

:func:`pin_version` is the GitOps side: it makes an existing version live
(``config.pbtxt`` and, with a Triton URL, the running server) through the
same candidate probe, switch and rollback path, after checking every file of
the version against its manifest. The Kubernetes manifests run it before
Triton starts, so the overlay's ``MODEL_VERSION`` decides what is served.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from nerwheel.errors import NerwheelError
from nerwheel.model.layout import find_export, is_model_dir
from nerwheel.serving.config import ServingOptions, gpu_model_configs, with_versions
from nerwheel.serving.repository import (
    ModelRepository,
    check_export_dir,
    lexicon_columns,
    open_repository,
    stage_cpu_version,
    stage_gpu_versions,
)
from nerwheel.storage import Storage, is_s3, join

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_PROBE_TEXTS", "DeployError", "DeployReport", "deploy", "pin_version", "resolve_export"]

# Short, varied addresses: the probe checks served == offline, not accuracy.
DEFAULT_PROBE_TEXTS: tuple[str, ...] = (
    "浙江省杭州市余杭区文一西路969号",
    "北京市海淀区中关村大街27号中关村大厦15层1501室",
    "广东省深圳市南山区科技园南区深南大道10000号",
    "上海市浦东新区张江镇碧波路690号3号楼",
    "四川省成都市武侯区人民南路四段1号",
)


class DeployError(NerwheelError, RuntimeError):
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
    action: str = "deploy"  # "deploy" (a new version) or "pin" (make an existing version live: GitOps)
    probe_texts: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    pruned: list[int] = field(default_factory=list)  # old version folders deleted (keep=N)
    reconciled: list[str] = field(default_factory=list)  # what a killed earlier deploy left, and what was done
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("live", "written")

    @property
    def verification(self) -> str:
        """How the version's answers were checked, in words.

        ``verified`` alone is false whenever no server was given, which reads as
        a failure even when the staged folder matched the export on every probe.
        """
        n = self.probe_texts
        if self.verified:
            return f"verified: Triton's answers matched the export on all {n} probe texts"
        if self.mismatches:
            return f"failed: {len(self.mismatches)} of {n} probe texts were answered differently from the export"
        if self.status == "written":
            if self.action == "deploy" and self.variant == "cpu" and n:
                return (f"checked offline: the staged version answered all {n} probe texts exactly like the export; "
                        "not loaded, no Triton server given (--triton-url)")
            return "not checked: no Triton server given (--triton-url); the server picks the version up when it loads"
        return f"not verified: {self.error or self.status}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verification": self.verification}


def served_for(export_dir: Path) -> Any:
    """The deploy adapter (:mod:`nerwheel.serving.tasks`) of the task the export holds."""
    from nerwheel.tasks import get_task, task_of

    return get_task(task_of(export_dir)).serving()


def served_for_task(task: str) -> Any:
    from nerwheel.tasks import get_task

    return get_task(task).serving()


def resolve_export(model: str | Path, workdir: Path, storage: Storage) -> Path:
    """An export folder for ``model`` (export folder, trained model folder, or either on S3)."""
    model = str(model)
    if is_s3(model):
        local = workdir / "source"
        storage.download_dir(model, local)
        model = str(local)
    path = Path(model)
    found = find_export(path)  # the folder itself, or MODEL/onnx where `nerwheel export MODEL` writes
    if found is not None:
        return check_export_dir(found)
    if is_model_dir(path):
        from nerwheel.tasks import get_task, task_of  # heavy (torch): only when a model folder must be exported

        out = workdir / "export"
        get_task(task_of(path)).export(path, out)
        return check_export_dir(out)
    raise DeployError(
        f"{path} is neither an export folder (model.onnx, tokenizer.json, nerwheel.json) nor a trained model "
        "folder (config.json, nerwheel.json)"
    )


def deploy(
    model: str | Path,
    repository: str,
    *,
    name: str = "nerwheel",
    triton_url: str | None = None,
    options: ServingOptions | None = None,
    variant: str = "cpu",
    probe_texts: Sequence[str] | None = None,
    endpoint_url: str | None = None,
    timeout_s: float = 120.0,
    keep: int | None = None,
    control_key: str | None = None,
) -> DeployReport:
    """Write ``model`` as the next version of ``name`` in ``repository``; load and verify it in Triton.

    ``probe_texts``: the texts (messages, for a classifier) the served version
    must answer like the export; ``None`` means the task's built-in probes.
    ``keep=N`` deletes all but the newest N version folders after a
    successful deploy (Triton copies every version folder from S3 on each
    load). Returns a report. It raises :class:`DeployError` when nothing could
    be attempted; a failed load or probe is rolled back and reported with
    ``status == "rolled_back"`` (or ``"failed"`` when no version was live); any
    other error after the new version was loaded is rolled back as well and
    then re-raised (the rollback's outcome in its notes and ``.deploy_report``).

    ``control_key`` is the server's model-control key (default: ``NERWHEEL_TRITON_CONTROL_KEY`` or the
    key file, :mod:`nerwheel.serving.control`); a server that refuses it stops the deploy before
    anything is written.
    """
    if variant not in ("cpu", "gpu"):
        raise DeployError(f"unknown variant {variant!r}; expected 'cpu' or 'gpu'")
    t0 = time.monotonic()
    opts = options or ServingOptions()
    storage = Storage(endpoint_url)
    repo = open_repository(repository, endpoint_url)
    control = _control(triton_url, control_key)
    with tempfile.TemporaryDirectory(prefix="nerwheel-deploy-") as tmp:
        work = Path(tmp)
        export_dir = resolve_export(model, work, storage)
        served = served_for(export_dir)
        if variant not in served.variants:
            raise DeployError(f"the {served.task} task has no {variant!r} serving layout; use "
                              f"{' or '.join(served.variants)}")
        texts = served.probes(probe_texts)
        if not texts:
            raise DeployError("deploy needs at least one non-empty probe text to verify the served model")
        try:
            expected = served.offline(export_dir, opts)(texts)
        except Exception as e:  # noqa: BLE001 - any failure here means the model is unusable
            raise DeployError(
                f"{model}: the model does not load or run offline ({type(e).__name__}: {e}); nothing was deployed"
            ) from e

        previous = repo.live_versions(name)
        version = repo.claim_version(name)
        stage = work / "stage"
        if variant == "cpu":
            configs = {name: served.model_config(name, version, opts, export_dir)}
            stage_cpu_version(export_dir, stage / name / str(version))
        else:
            configs = gpu_model_configs(name, version, opts, lexicon_columns=lexicon_columns(export_dir))
            if previous:
                _check_step_tensors(repo, configs, name)
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
                got = served.offline(stage / name / str(version), opts)(texts)
                report.mismatches = served.compare(texts, expected, got)
            if report.mismatches:
                report.error = "the staged version does not reproduce the export's predictions"
            else:
                for model_name, cfg in configs.items():
                    repo.write_config(model_name, cfg)
                report.status, report.live_versions = "written", [version]
        else:
            _load_and_verify(report, repo, configs, triton_url, control, texts, expected, timeout_s, stage, served)
    if keep is not None and report.ok:
        for model_name in configs:  # only after a success: a rollback may need the old versions
            deleted = repo.prune(model_name, keep)
            if model_name == name:
                report.pruned = deleted
    report.seconds = round(time.monotonic() - t0, 3)
    return report


def pin_version(
    repository: str,
    version: int,
    *,
    name: str = "nerwheel",
    triton_url: str | None = None,
    probe_texts: Sequence[str] | None = None,
    endpoint_url: str | None = None,
    timeout_s: float = 120.0,
    control_key: str | None = None,
) -> DeployReport:
    """Make the existing ``version`` of ``name`` the live one: the GitOps overlay's ``MODEL_VERSION`` wins.

    Rewrites ``config.pbtxt`` (every step of an ensemble too) after checking
    that the version folders exist; nothing changes when one is missing
    (:class:`~nerwheel.serving.repository.RepositoryError`). With
    ``triton_url`` the version is loaded into the running server and probed
    against its own files' offline answers first, exactly like a deploy, and
    rolled back on any failure. ``repository`` may be Triton's S3 form
    (``s3://http://host:port/bucket/prefix``), as in the Kubernetes manifests.
    """
    t0 = time.monotonic()
    repo = open_repository(repository, endpoint_url)
    control = _control(triton_url, control_key)
    previous = repo.live_versions(name)
    configs = repo.pinned_configs(name, version)
    report = DeployReport(
        name=name, repository=repository, version=version, previous_versions=previous, live_versions=previous,
        status="failed", verified=False, variant="gpu" if len(configs) > 1 else "cpu", action="pin",
    )
    if triton_url is None:
        swap = _Swap.plan(repo, configs, name, version, previous)
        try:
            swap.commit()
        except BaseException:
            swap.restore_configs()
            raise
        report.status, report.live_versions = "written", [version]
    else:
        with tempfile.TemporaryDirectory(prefix="nerwheel-pin-") as tmp:
            stage = _download_version(repo, list(configs), version, Path(tmp) / "stage")
            export_dir = _version_as_export(stage, list(configs), version, Path(tmp))
            served = served_for(export_dir)
            texts = served.probes(probe_texts)
            if not texts:
                raise DeployError("pinning with a Triton URL needs at least one non-empty probe text")
            try:
                expected = served.offline(export_dir, ServingOptions(tagger=_tagger_spec(configs)))(texts)
            except Exception as e:  # noqa: BLE001 - any failure here means the version is unusable
                raise DeployError(f"{join(repo.uri, name, str(version))} does not load or run offline "
                                  f"({type(e).__name__}: {e}); nothing was changed") from e
            report.probe_texts = len(texts)
            _load_and_verify(report, repo, configs, triton_url, control, texts, expected, timeout_s, stage, served)
    report.seconds = round(time.monotonic() - t0, 3)
    return report


def _control(triton_url: str | None, control_key: str | None) -> str | None:
    """The model-control key for ``triton_url``, checked against the server before anything is written."""
    if triton_url is None:
        return None
    from nerwheel.serving.control import ModelControl, ModelControlRefused

    with ModelControl(triton_url, control_key) as control:
        try:
            control.check()
        except ModelControlRefused as e:
            raise DeployError(f"{e}; nothing was changed") from None
        return control.key


def _download_version(repo: ModelRepository, models: list[str], version: int, stage: Path) -> Path:
    """Each model's ``version`` folder under ``stage/<model>/<version>/`` (checked against its manifest before)."""
    for model_name in models:
        repo.storage.download_dir(join(repo.uri, model_name, str(version)), stage / model_name / str(version))
    return stage


def _version_as_export(stage: Path, models: list[str], version: int, work: Path) -> Path:
    """One export folder from a version's folders (the CPU model's, or the union of the ensemble steps')."""
    out = work / "export"
    for model_name in models:
        for f in (stage / model_name / str(version)).iterdir():
            if f.is_file():
                out.mkdir(parents=True, exist_ok=True)
                (out / f.name).write_bytes(f.read_bytes())
    return check_export_dir(out)


def _tagger_spec(configs: dict[str, Any]) -> str:
    for cfg in configs.values():
        if "tagger" in cfg.parameters:
            return cfg.parameters["tagger"].string_value
    return ServingOptions().tagger


#: A version is probed under ``<model>__candidate<version>`` before clients can reach it (see _Candidate).
CANDIDATE = "__candidate"


def candidate_name(model_name: str, version: int) -> str:
    return f"{model_name}{CANDIDATE}{version}"


@dataclass
class _Candidate:
    """The new version loaded under names no client calls, from the staged files sent in the load request.

    ``load_model(name, config, files)`` loads a model from the request's files, not from the repository,
    and under a name of its own: the version answers the probe before a single live request can reach
    it. An ensemble's candidate calls candidate steps. :meth:`unload` is idempotent; a deploy that was
    killed with a candidate loaded leaves it to the next deploy (:func:`_reconcile`).
    """

    control: Any
    configs: dict[str, Any]  # composing models first, the entry model last
    stage: Path
    version: int
    loaded: list[str] = field(default_factory=list)

    def names(self) -> dict[str, str]:
        return {m: candidate_name(m, self.version) for m in self.configs}

    @property
    def entry(self) -> Any:
        return self.configs[list(self.configs)[-1]]

    def load(self, timeout_s: float) -> None:
        """Load every model's candidate from the staged files (an ensemble's steps; the ensemble itself is
        not loaded: Triton would look for its candidate steps in the repository, see :meth:`probe`)."""
        names = self.names()
        for model_name, cfg in self.configs.items():
            if cfg.platform == "ensemble":
                continue
            renamed = type(cfg)()
            renamed.CopyFrom(cfg)
            renamed.name = names[model_name]
            for step in renamed.ensemble_scheduling.step:
                step.model_name = names.get(step.model_name, step.model_name)
            folder = self.stage / model_name / str(self.version)
            files = {f"file:{self.version}/{p.relative_to(folder).as_posix()}": p.read_bytes()
                     for p in sorted(folder.rglob("*")) if p.is_file()}
            body = json_format.MessageToJson(renamed, preserving_proto_field_name=True)
            self.loaded.append(names[model_name])
            self.control.load_model(names[model_name], config=body, files=files, client_timeout=timeout_s)
            _wait_ready(self.control, names[model_name], str(self.version), timeout_s)

    def probe(self, served: Any, triton_url: str, texts: list[Any], batch_size: int, timeout_s: float) -> list[Any]:
        """The candidate's answers: a plain model is asked directly (through the task's client); an
        ensemble's steps (the NER GPU layout) are chained here as the ensemble's scheduling says (tensor by
        tensor), so the candidate steps answer what the ensemble would."""
        entry = self.entry
        if entry.platform != "ensemble":
            return _probe(served, triton_url, candidate_name(entry.name, self.version), self.version, texts,
                          batch_size, timeout_s)
        return _chain(triton_url, entry, self.names(), self.version, texts, batch_size, timeout_s)

    def unload(self) -> None:
        for n in reversed(self.loaded):
            with contextlib.suppress(Exception):
                self.control.unload_model(n)
        self.loaded.clear()


@dataclass
class _Swap:
    """How a verified version becomes live, with the repository as the single source of truth.

    Every change is written to ``config.pbtxt`` first, and the server is then told to load the model
    *from the repository* (no config in the request): Triton can only ever serve what the repository
    names, so a deploy killed at any moment leaves the server on a version the repository names (or,
    killed between a write and the load that follows it, the server on the previous verified version
    and the repository on the new verified one, until the next deploy or a restart reloads it:
    :func:`_reconcile`). The commit is the single write of the entry model's ``config.pbtxt``.

    A plain model is one write and one load: Triton keeps the old version serving until the new one is
    ready. An ensemble (GPU layout) calls its steps by version, and Triton re-reads the steps'
    ``config.pbtxt`` whenever the ensemble is loaded, so:

    1. each step's ``config.pbtxt`` names old *and* new version, and the step is loaded: the ensemble
       being served still finds its versions;
    2. the ensemble's ``config.pbtxt`` names the new version, and it is loaded (atomic for clients);
    3. every step's ``config.pbtxt`` names only the new version and the ensemble is loaded once more,
       which makes Triton drop the old step versions (:meth:`drop_old`).

    A rollback writes the original configs back and loads the entry model from them, which brings an
    ensemble's steps back to their old versions with it.
    """

    repo: ModelRepository
    configs: dict[str, Any]  # composing models first, the entry model last
    name: str
    version: int
    before: dict[str, list[int]]  # what each model served before the switch
    originals: dict[str, Any]  # each model's config.pbtxt before the switch (None: it had none)
    written: list[str] = field(default_factory=list)

    @classmethod
    def plan(cls, repo: ModelRepository, configs: dict[str, Any], name: str, version: int,
             previous: Sequence[int]) -> _Swap:
        """``previous``: what ``name`` served before (read before the new version folder was written)."""
        before = {m: repo.live_versions(m) for m in configs}
        before[name] = list(previous)
        return cls(repo, configs, name, version, before=before, originals={m: repo.read_config(m) for m in configs})

    @property
    def steps(self) -> list[str]:
        return [m for m in self.configs if m != self.name]

    def _pinned(self, model_name: str, versions: Sequence[int]) -> Any:
        """A copy of the new config (or, without the new version, the original one) serving ``versions``."""
        new, old = self.configs[model_name], self.originals[model_name]
        cfg = type(new)()
        cfg.CopyFrom(new if self.version in versions or old is None else old)
        return with_versions(cfg, sorted(versions))

    def _write(self, model_name: str, cfg: Any) -> None:
        if model_name not in self.written:
            self.written.append(model_name)
        self.repo.write_config(model_name, cfg)

    def switch(self, control: Any, timeout_s: float) -> None:
        """Steps serve old and new, then the entry model's config names the new version (the commit), then
        the server loads it from the repository."""
        for m in self.steps:
            self._write(m, self._pinned(m, sorted(set(self.before[m]) | {self.version})))
            control.load_model(m, client_timeout=timeout_s)
        self._write(self.name, self.configs[self.name])
        control.load_model(self.name, client_timeout=timeout_s)

    def commit(self) -> None:
        """Write the new configs, steps first and the entry model last (without a server: the next start
        loads these)."""
        for m, cfg in self.configs.items():
            self._write(m, cfg)

    def drop_old(self, control: Any, timeout_s: float) -> None:
        """After :meth:`switch`: steps name only the new version; reloading the ensemble drops the old ones."""
        for m in self.steps:
            self._write(m, self.configs[m])
        if any(set(self.before[m]) - {self.version} for m in self.steps):
            control.load_model(self.name, client_timeout=timeout_s)

    def restore_configs(self) -> None:
        for m in reversed(self.written):
            if self.originals[m] is None:
                self.repo.remove_config(m)
            else:
                self.repo.write_config(m, self.originals[m])
        self.written.clear()

    def roll_back(self, control: Any, timeout_s: float) -> list[int]:
        """Serve what was served before (or nothing, for a first deploy); returns the live versions."""
        switched = bool(self.written)
        self.restore_configs()
        if not self.before[self.name]:
            for m in [self.name, *reversed(self.steps)]:
                with contextlib.suppress(Exception):  # never loaded: nothing to unload
                    control.unload_model(m)
            return []
        if switched:  # the server was told to follow the repository: follow it back
            control.load_model(self.name, client_timeout=timeout_s)
            _wait_ready(control, self.name, str(self.before[self.name][-1]), timeout_s)
        return self.before[self.name]


def _reconcile(control: Any, repo: ModelRepository, configs: dict[str, Any], name: str,
               timeout_s: float) -> list[str]:
    """Before a switch, make the server agree with the repository again after a deploy that was killed.

    Candidates of versions older than the live one belong to deploys that are over: unloaded. When the
    server serves other versions of ``name`` than ``config.pbtxt`` names (a deploy killed between its
    commit and the load), the model is reloaded from the repository. Orphan version folders and claims
    are left alone: no config names them, numbers are never reused, and a pin refuses any version whose
    files do not match its manifest. Returns what was done, for the report.
    """
    live = repo.live_versions(name)
    versions = repo.versions(name)
    done = _unload_stale_candidates(control, repo, configs, name, below=max(live)) if live else []
    served = []
    for v in versions:
        with contextlib.suppress(Exception):
            if control.is_model_ready(name, str(v)):
                served.append(v)
    if served and served != live:
        done.append(f"the server served {name} {served} but {join(repo.uri, name, 'config.pbtxt')} names "
                    f"{live or 'nothing'}: reloaded from the repository")
        log.warning("%s", done[-1])
        if live:
            control.load_model(name, client_timeout=timeout_s)
            _wait_ready(control, name, str(live[-1]), timeout_s)
        else:
            control.unload_model(name)
    return done


def _check_step_tensors(repo: ModelRepository, configs: dict[str, Any], name: str) -> None:
    """Refuse a GPU deploy whose steps pass other tensors than the live ensemble's (a model with lexicon
    features after one without, or back, or with another column count): Triton keeps one config per step
    model, so during the swap the old step versions would run under the new configs (the onnxruntime backend
    checks a graph's inputs against its config) and the ensemble being served would fail (nothing is written)."""

    # what the ensemble hands to clients is no tensor between steps: a step may add one (NBEST), since the old
    # ensemble, still served during the swap, never asks for it
    outward = {t.name for cfg in configs.values() if cfg.platform == "ensemble" for t in cfg.output}

    def tensors(cfg: Any) -> list[str]:
        return sorted(f"{t.name}{list(t.dims)}" for t in [*cfg.input, *cfg.output] if t.name not in outward)

    for model_name, cfg in configs.items():
        live = repo.read_config(model_name) if cfg.platform != "ensemble" else None
        if live is None:
            continue
        before, after = tensors(live), tensors(cfg)
        if before != after:
            raise DeployError(
                f"{join(repo.uri, model_name, 'config.pbtxt')}: the live {name} ensemble's step has tensors {before}, "
                f"this export's has {after} (lexicon features differ between the two models); a swap cannot "
                "change them while the old version serves: deploy under a new --name and move clients to it"
            )


def _chain(triton_url: str, ensemble: Any, names: dict[str, str], version: int, texts: list[str],
           batch_size: int, timeout_s: float) -> list[list[Any]]:
    """Run an ensemble's steps one after another from the client, on the steps' ``names`` (candidates), as
    Triton would for a request of ``ENTITIES``: each step asked for the outputs it maps, a step that adds
    nothing towards ``ENTITIES`` (the ``NBEST`` one) skipped."""
    import json as _json

    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import np_to_triton_dtype

    from nerwheel.records import Entity
    from nerwheel.serving.config import INPUT_TEXT, OUTPUT_ENTITIES

    out: list[list[Any]] = []
    with grpcclient.InferenceServerClient(triton_url.removeprefix("grpc://")) as client:
        for at in range(0, len(texts), batch_size):
            chunk = texts[at:at + batch_size]
            tensors = {INPUT_TEXT: np.array([[t.encode("utf-8")] for t in chunk], dtype=object)}
            for step in _steps_for(ensemble, {OUTPUT_ENTITIES}):
                inputs = []
                for model_input, tensor in step.input_map.items():
                    value = tensors[tensor]
                    inp = grpcclient.InferInput(model_input, list(value.shape), np_to_triton_dtype(value.dtype))
                    inp.set_data_from_numpy(value)
                    inputs.append(inp)
                result = client.infer(names[step.model_name], inputs, model_version=str(version),
                                      outputs=[grpcclient.InferRequestedOutput(o) for o in step.output_map],
                                      client_timeout=timeout_s)
                for model_output, tensor in step.output_map.items():
                    tensors[tensor] = result.as_numpy(model_output)
            out += [[Entity.from_dict(d) for d in _json.loads(bytes(e).decode("utf-8"))]
                    for e in tensors[OUTPUT_ENTITIES].reshape(-1)]
    return out


def _steps_for(ensemble: Any, wanted: set[str]) -> list[Any]:
    """The ensemble's steps that a request for the ``wanted`` outputs runs, in order (Triton prunes the others)."""
    needed, kept = set(wanted), []
    for step in reversed(ensemble.ensemble_scheduling.step):
        if needed & set(step.output_map.values()):
            kept.append(step)
            needed |= set(step.input_map.values())
    return kept[::-1]


def _unload_stale_candidates(control: Any, repo: ModelRepository, configs: dict[str, Any], name: str, *,
                             below: int) -> list[str]:
    """Unload the candidates of versions older than ``below``: their deploys are over (a killed one leaves its
    candidate loaded; no client calls it, but it holds memory until the server restarts)."""
    done = []
    for v in repo.versions(name):
        if v >= below:
            continue
        for m in configs:
            cand = candidate_name(m, v)
            with contextlib.suppress(Exception):
                if control.is_model_ready(cand, str(v)):
                    control.unload_model(cand)
                    done.append(f"unloaded the stale candidate {cand}")
    return done


def _probe(served: Any, triton_url: str, name: str, version: int, texts: list[Any], batch_size: int,
           timeout_s: float) -> list[Any]:
    """What ``name`` (a candidate, or the live model) answers at ``version`` on the probes (the task's client)."""
    client, ask = served.served(triton_url, name, version, batch_size, timeout_s)
    try:
        return ask(texts)
    finally:
        client.close()


def _load_and_verify(
    report: DeployReport,
    repo: ModelRepository,
    configs: dict[str, Any],
    triton_url: str,
    control_key: str | None,
    texts: list[Any],
    expected: list[Any],
    timeout_s: float,
    stage: Path,
    served: Any = None,
) -> None:
    """Probe ``report.version`` as a candidate, then switch to it and probe it live; roll back on any failure.

    Expected failures (the load fails, a timeout, the probe answers differently, the server refuses)
    are rolled back and reported. Anything else is rolled back too, then re-raised with the rollback's
    outcome attached: a bug must not leave the server and ``config.pbtxt`` disagreeing.
    """
    from tritonclient.utils import InferenceServerException

    from nerwheel.serving.client import ServingError
    from nerwheel.serving.control import ModelControl, ModelControlRefused

    name, version = report.name, report.version
    served = served or served_for_task("ner")
    batch = max(1, configs[name].max_batch_size)
    swap = _Swap.plan(repo, configs, name, version, report.previous_versions)
    control = ModelControl(triton_url, control_key)
    candidate = _Candidate(control, configs, stage, version)
    try:
        try:
            report.reconciled = _reconcile(control, repo, configs, name, timeout_s)
            candidate.load(timeout_s)
            report.mismatches = served.compare(texts, expected,
                                               candidate.probe(served, triton_url, texts, batch, timeout_s))
            candidate.unload()
            if report.mismatches:
                raise DeployError(f"{len(report.mismatches)} of {len(texts)} probe texts answered differently "
                                  "from the offline model (probed as a candidate: no client saw it)")
            swap.switch(control, timeout_s)
            _wait_ready(control, name, str(version), timeout_s)
            got = _probe(served, triton_url, name, version, texts, batch, timeout_s)
            report.mismatches = served.compare(texts, expected, got)
            if report.mismatches:
                raise DeployError(f"{len(report.mismatches)} of {len(texts)} probe texts answered differently "
                                  "once live (the repository's copy differs from the probed one)")
            swap.drop_old(control, timeout_s)
            report.reconciled += _unload_stale_candidates(control, repo, configs, name, below=version)
        except (InferenceServerException, ServingError, DeployError, ModelControlRefused, TimeoutError) as e:
            report.error = str(e)
            if "failed to poll from model repository" in report.error:
                report.error += (f" (is {repo.uri} one of the server's --model-repository folders? "
                                 "Triton loads models only from its own repositories)")
            log.warning("version %d of %s failed: %s; rolling back", version, name, e)
            _roll_back(report, swap, control, timeout_s)
            return
        except BaseException as e:  # a bug or an interrupt: still roll back, then let it propagate
            report.error = f"{type(e).__name__}: {e}"
            log.error("version %d of %s failed unexpectedly (%s); rolling back", version, name, report.error)
            _roll_back(report, swap, control, timeout_s)
            e.add_note(f"nerwheel {report.action} of {name} version {version} was rolled back: status "
                       f"{report.status!r}, live versions now {report.live_versions} ({report.error})")
            with contextlib.suppress(AttributeError, TypeError):
                e.deploy_report = report  # type: ignore[attr-defined]
            raise
        finally:
            candidate.unload()
        report.status, report.verified, report.live_versions = "live", True, [version]
    finally:
        control.close()


def _roll_back(report: DeployReport, swap: _Swap, control: Any, timeout_s: float) -> None:
    """Serve the previous version again (config.pbtxt restored too), or unload when nothing was live before."""
    try:
        report.live_versions = swap.roll_back(control, timeout_s)
        report.status = "rolled_back" if report.live_versions else "failed"
    except Exception as e:  # noqa: BLE001 - whatever broke the rollback, the report must say so
        report.status = "failed"
        report.error = f"{report.error}; rollback failed too: {type(e).__name__}: {e}"


def _wait_ready(control: Any, name: str, version: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if control.is_model_ready(name, version):
                return
        except Exception:  # noqa: BLE001 - transient while loading
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{name} version {version} was not ready within {timeout_s:.0f}s")


def report_json(report: DeployReport) -> str:
    return json.dumps(report.to_dict(), ensure_ascii=False, indent=2)
