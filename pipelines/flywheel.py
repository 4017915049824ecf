"""The nerwheel flywheel as a Kubeflow Pipelines v2 DAG.

    production, shard -> [no production model] annotate x N shards                        -> gather --+
                      -> [production model]    (feedback -> pseudo-label) x N shards      -> gather --+
    -> synthesize -> merge -> train -> distill -> evaluate -> gate -> [promoted] export -> deploy

Every knob a run may change is a typed pipeline parameter with a default (the
embedded default: bundled sample data, the knowledge-base teacher, the ``tiny``
backbone). What belongs to the cluster, not to a run (GPU type and node
placement, secret and ConfigMap names, retries and time limits) is a
:class:`Platform` fixed at compile time and attached with kfp-kubernetes:
credentials reach tasks as Kubernetes secrets in env, never as parameters.

**Shards.** The traffic is cut into ``shards`` line-aligned byte ranges by one
streaming pass (the shard task), each labelled by its own pod (``dsl.ParallelFor``),
and a fan-in (gather) concatenates the outputs in input order and reconciles the
counts (read = accepted + rejected over all shards, each shard once, on the bytes
planned). :func:`sharded` is that fan-out/fan-in, for any per-shard body: the
annotate branch and the feedback branch use it, and so can another task's DAG.

**The wheel's own loop.** The production step decides once which model is live.
Without one, every text is labelled by the teacher (annotate), as on the first
turn. With one, each shard runs the production model against the teacher
(feedback: the disagreements, missing / spurious / boundary / type, carry the
teacher's labels) and the model labels what the teacher could not, above a
confidence (pseudo-label); the fan-in adds a seeded replay sample of the agreed
texts. Downstream tasks take whichever branch ran (``dsl.OneOf`` over the fan-in's
URI; ``kfp.local`` resolves ``OneOf`` for parameters, not artifacts).

The candidate is gated against production: ``production_model_uri`` when given,
else the version live in ``repository_uri`` (by default the repository the
Triton Deployment of ``manifests/base`` serves), so a recurring run compares
with what users are served; only an empty repository makes a first model
(:mod:`nerwheel.serving.production`).

Caching is off for the tasks that read data or the live model by URI (production,
shard, annotate, feedback, pseudo-label, synthesize, merge, evaluate): KFP's cache key
holds the URI, not what is behind it, so the weekly recurring run (same URIs, new
traffic, a newer live model) would otherwise replay the first week. Tasks fed only by
artifacts (gather, train, distill, gate, export) stay cacheable; they re-run whenever their
inputs are new.

``distill`` is optional (``distill_student`` empty, the default: the trained
model passes through unchanged); with a student spec the trained model teaches
a smaller student on the merged training texts, and the student is what is
evaluated, gated and served. One task either way, so the DAG keeps one shape
and every later task reads one model.

``synthesize`` takes the teacher-labelled traffic as examples (its entity
strings join the synthesiser's pools), hence the edge gather -> synthesize.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kfp import dsl, kubernetes

from nerwheel.components.annotate import annotate
from nerwheel.components.deploy import deploy
from nerwheel.components.distill import distill
from nerwheel.components.evaluate import evaluate
from nerwheel.components.export import export
from nerwheel.components.feedback import feedback
from nerwheel.components.gate import gate
from nerwheel.components.gather import gather
from nerwheel.components.merge import merge
from nerwheel.components.production import production
from nerwheel.components.pseudo_label import pseudo_label
from nerwheel.components.shard import shard
from nerwheel.components.synthesize import synthesize
from nerwheel.components.train import train
from nerwheel.gitops import DEFAULT_OVERLAY_FILE
from nerwheel.stages.gate import GatePolicy

__all__ = ["DEFAULT_REPOSITORY", "DISPLAY_NAMES", "PIPELINE_NAME", "TAIL_ARGS", "Platform", "Retry", "ShardOutputs",
           "Toleration", "build_pipeline", "export_and_deploy", "flywheel", "gate_and_ship", "sharded", "tail_args"]

PIPELINE_NAME = "nerwheel-flywheel"

#: The gate's defaults come from :class:`GatePolicy`, so ``nerwheel gate`` and the pipeline cannot drift apart.
_GATE = GatePolicy()

#: The Triton model repository of ``manifests/base`` (``model.env`` MODEL_REPOSITORY, written there in Triton's
#: ``s3://http://host:port/bucket/prefix`` form): deploy writes where the Deployment reads, and the endpoint comes
#: from the ``nerwheel-storage`` ConfigMap the tasks get as env. The local ``nerwheel run`` uses a local folder.
DEFAULT_REPOSITORY = "s3://nerwheel/triton-repository"

#: Stages whose tasks KFP may take from its cache: they read only artifacts (their inputs change when the data
#: does). Every other task reads data, the live model or the repository by URI, or has effects (deploy).
CACHED = frozenset({"gather", "train", "distill", "gate", "export"})

#: The display name of each task in the KFP UI, by stage.
DISPLAY_NAMES: dict[str, str] = {
    "production": "Which model is in production",
    "shard": "Plan the shards of the traffic",
    "annotate": "Annotate a shard with the teacher",
    "feedback": "Production model vs teacher on a shard",
    "pseudo_label": "Pseudo-label what the teacher could not",
    "gather": "Gather the shards in input order",
    "synthesize": "Synthesise labelled texts",
    "merge": "Merge gold, teacher and synthetic labels",
    "train": "Train the tagger (GPU)",
    "distill": "Distil into a smaller student (optional, GPU)",
    "evaluate": "Evaluate candidate and production",
    "gate": "Gate: does the candidate beat production?",
    "export": "Export to ONNX",
    "deploy": "Deploy to Triton and commit the version",
}


@dataclass(frozen=True)
class Toleration:
    key: str
    operator: str = "Exists"
    effect: str = "NoSchedule"
    value: str | None = None


@dataclass(frozen=True)
class Retry:
    """A task's retry policy: ``retries`` more attempts, waiting ``backoff`` then twice as long each time."""

    retries: int = 3
    backoff: str = "30s"
    factor: float = 2.0
    max_backoff: str = "10m"


#: Time limit of each task (seconds; the pod's activeDeadlineSeconds): a stuck task fails instead of holding a node.
#: Sized for the largest run docs/scale.md plans for per shard; a cluster with other sizes passes its own.
TIMEOUTS: dict[str, int] = {
    "production": 600, "shard": 3600, "annotate": 6 * 3600, "feedback": 6 * 3600, "pseudo_label": 2 * 3600,
    "gather": 3600, "synthesize": 3600, "merge": 3600, "train": 24 * 3600, "distill": 24 * 3600,
    "evaluate": 2 * 3600, "gate": 600, "export": 2 * 3600, "deploy": 1800,
}

#: Retries: what reads or writes S3 or calls the LLM retries (a network error or a pre-empted pod); a rerun of an
#: annotate or feedback shard asks the LLM only what its cache has not answered. Training (and distillation) never
#: retries: a silent restart would train from scratch for hours; a failed training run fails the pipeline and says
#: why. Deploy does not retry either: it rolls a failed version back itself and commits to git, a second attempt is
#: a person's decision.
RETRIES: dict[str, Retry | None] = {
    "production": Retry(), "shard": Retry(), "annotate": Retry(), "feedback": Retry(), "pseudo_label": Retry(),
    "gather": Retry(), "synthesize": Retry(2), "merge": Retry(2), "train": None, "distill": None,
    "evaluate": Retry(2), "gate": Retry(2), "export": Retry(1), "deploy": None,
}


@dataclass(frozen=True)
class Platform:
    """Cluster-side settings, fixed when the pipeline is compiled.

    The names match ``manifests/`` (``nerwheel-s3`` secret, ``nerwheel-storage`` ConfigMap,
    ``nerwheel-llm`` secret); the GPU settings match the common NVIDIA device-plugin setup.
    """

    gpu_type: str = "nvidia.com/gpu"  # how many: the gpus_per_node pipeline parameter
    gpu_node_selector: tuple[str, str] = ("nvidia.com/gpu.present", "true")
    gpu_tolerations: tuple[Toleration, ...] = (Toleration("nvidia.com/gpu"),)
    train_cpu: str = "4"
    train_memory: str = "16G"
    s3_secret: str = "nerwheel-s3"
    s3_secret_keys: tuple[str, ...] = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    storage_config_map: str = "nerwheel-storage"
    storage_config_keys: tuple[str, ...] = ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")
    llm_secret: str = "nerwheel-llm"
    llm_secret_key: str = "api-key"
    llm_env: str = "NERWHEEL_LLM_API_KEY"
    git_secret: str = "nerwheel-git"
    git_secret_key: str = "token"
    git_env: str = "NERWHEEL_GIT_TOKEN"
    # Triton's model-control key: the deploy task alone gets it, and the label that the NetworkPolicy
    # (manifests/base/triton-networkpolicy.yaml) lets reach model control.
    triton_control_secret: str = "nerwheel-triton-control"
    triton_control_secret_key: str = "control-key"
    triton_control_label: tuple[str, str] = ("nerwheel.io/triton-control", "true")
    run_as: int = 10001  # the images' non-root user (images/)
    extra_env: dict[str, str] = field(default_factory=dict)
    timeouts: dict[str, int] = field(default_factory=lambda: dict(TIMEOUTS))
    retries: dict[str, Retry | None] = field(default_factory=lambda: dict(RETRIES))
    #: Shard tasks running at once (0: as many as the cluster schedules); bounds the load on the LLM server.
    shard_parallelism: int = 0

    def limits(self, task: dsl.PipelineTask, stage: str) -> dsl.PipelineTask:
        """The stage's time limit and retry policy (:data:`TIMEOUTS`, :data:`RETRIES`)."""
        kubernetes.set_timeout(task, self.timeouts[stage])
        retry = self.retries[stage]
        if retry is not None and retry.retries > 0:
            task.set_retry(retry.retries, backoff_duration=retry.backoff, backoff_factor=retry.factor,
                           backoff_max_duration=retry.max_backoff)
        return task

    def storage_access(self, task: dsl.PipelineTask) -> dsl.PipelineTask:
        """S3 credentials (secret) and endpoint/region (ConfigMap) as env: every task reads or writes storage."""
        kubernetes.use_secret_as_env(task, secret_name=self.s3_secret,
                                     secret_key_to_env={k: k for k in self.s3_secret_keys})
        kubernetes.use_config_map_as_env(task, config_map_name=self.storage_config_map,
                                         config_map_key_to_env={k: k for k in self.storage_config_keys})
        for name, value in sorted(self.extra_env.items()):
            task.set_env_variable(name, value)
        # non-root like the images; the KFP backend adds RuntimeDefault seccomp, no privilege escalation and
        # no capabilities to every task itself
        kubernetes.set_security_context(task, run_as_user=self.run_as, run_as_group=self.run_as, run_as_non_root=True)
        return task

    def triton_control(self, task: dsl.PipelineTask) -> dsl.PipelineTask:
        """The model-control key as env and the label the NetworkPolicy admits: for the deploy task only."""
        from nerwheel.serving.control import CONTROL_KEY_ENV

        kubernetes.use_secret_as_env(task, secret_name=self.triton_control_secret,
                                     secret_key_to_env={self.triton_control_secret_key: CONTROL_KEY_ENV}, optional=True)
        kubernetes.add_pod_label(task, label_key=self.triton_control_label[0], label_value=self.triton_control_label[1])
        return task

    def job_settings(self) -> dict[str, Any]:
        """What a multi-node training job's pods need from the cluster (the train task's ``cluster`` input)."""
        return {"s3_secret": self.s3_secret, "s3_secret_keys": list(self.s3_secret_keys), "gpu_type": self.gpu_type,
                "node_selector": dict([self.gpu_node_selector]), "cpu": self.train_cpu, "memory": self.train_memory,
                "tolerations": [{k: v for k, v in (("key", t.key), ("operator", t.operator), ("effect", t.effect),
                                                   ("value", t.value)) if v is not None} for t in self.gpu_tolerations],
                "timeout": self.timeouts["train"]}

    def gpu(self, task: dsl.PipelineTask, count: Any) -> dsl.PipelineTask:
        """Ask for a GPU node: accelerator type and ``count`` (a pipeline parameter: gpus_per_node), node
        selector, tolerations, CPU and memory."""
        task.set_accelerator_type(self.gpu_type).set_accelerator_limit(count)
        task.set_cpu_request(self.train_cpu).set_memory_request(self.train_memory)
        kubernetes.add_node_selector(task, label_key=self.gpu_node_selector[0], label_value=self.gpu_node_selector[1])
        for t in self.gpu_tolerations:
            kubernetes.add_toleration(task, key=t.key, operator=t.operator, value=t.value, effect=t.effect)
        return task


@dataclass(frozen=True)
class ShardOutputs:
    """What a shard's body gives the fan-in: the task whose Dataset ``output`` is the shard's part (with
    ``shard.json``), and optionally a second task whose part is appended after (pseudo-labels)."""

    task: dsl.PipelineTask
    output: str
    extra: dsl.PipelineTask | None = None
    extra_output: str | None = None


def sharded(p: Platform, plan: dsl.PipelineTask, body: Callable[[Any], ShardOutputs], *, replay_ratio: Any = 0.0,
            seed: Any = 0) -> tuple[list[dsl.PipelineTask], dsl.PipelineTask]:
    """Fan ``body`` out over the shards of ``plan`` (the shard task), one pod per shard, and gather the parts.

    ``body(shard)`` builds the tasks of one shard (``shard`` is the loop item: that shard's dict) and returns
    which outputs are its parts. The fan-in (:mod:`nerwheel.components.gather`) puts them in input order and
    reconciles the counts; its return value is the URI of the gathered Dataset. Returns the shard tasks (one
    per stage; KFP repeats them per shard) and the fan-in task, so the caller attaches platform settings once.
    Any task's DAG can shard a stage with it: the per-shard component needs a ``shard: dict`` parameter and
    must write ``shard.json`` (:mod:`nerwheel.components.steps.shard`).
    """
    with dsl.ParallelFor(plan.outputs["Output"], parallelism=p.shard_parallelism or None) as item:
        outs = body(item)
    extra = {"extra": dsl.Collected(outs.extra.outputs[outs.extra_output])} if outs.extra is not None else {}
    t_gather = gather(parts=dsl.Collected(outs.task.outputs[outs.output]), plan=plan.outputs["plan"],
                      replay_ratio=replay_ratio, seed=seed, **extra)
    return [t for t in (outs.task, outs.extra) if t is not None], t_gather


def build_pipeline(platform: Platform | None = None):  # noqa: ANN201 - a kfp GraphComponent
    """The flywheel pipeline with ``platform``'s cluster settings attached."""
    p = platform or Platform()

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="nerwheel flywheel: teacher labels + synthetic data -> train -> evaluate -> gate -> "
        "(if promoted) ONNX export -> Triton deploy + GitOps commit.",
    )
    @tail_args(  # the Args lines of production_model_uri ... gitops_path: TAIL_ARGS, and NER's words here
        production_model_uri="Model to gate against (folder or s3:// prefix); empty = live in repository_uri.",
        min_delta="Gate: required rise of overall F1.",
        max_type_drop="Gate: largest allowed fall of a well-supported entity type's F1.",
        noise_spans="Gate: a type's F1 may fall by max(max_type_drop, noise_spans / its gold spans).",
        min_support="Gate: opt-out, types with fewer gold spans are not enforced; 0 = every type is checked.",
        gate_metric="Gate: which F1 decides: strict, partial or type.",
        repository_uri="Triton model repository deploy writes to (default: the one manifests/base serves).",
        gitops_path="Overlay env file whose MODEL_VERSION line the deploy commits (dev serves repository_uri).",
    )
    def flywheel(
        seed_uri: str = "",
        texts_uri: str = "",
        eval_uri: str = "",
        teacher: str = "kb",
        llm_endpoint: str = "",
        llm_model: str = "",
        llm_max_tokens: int = 1024,
        llm_cache_uri: str = "",
        shards: int = 4,
        replay_ratio: float = 1.0,
        pseudo_label_threshold: float = 0.9,
        synth_short: int = 200,
        synth_long: int = 200,
        synth_seed: int = 13,
        precedence: str = "gold,kb,llm,model,synthetic",
        backbone: str = "tiny",
        epochs: int = 0,
        nodes: int = 1,
        gpus_per_node: int = 1,
        train_seed: int = 42,
        train_overrides: str = "",
        distill_student: str = "",
        distill_overrides: str = "",
        production_model_uri: str = "",
        production_from_repository: bool = True,
        min_delta: float = _GATE.min_delta,
        max_type_drop: float = _GATE.max_type_drop,
        noise_spans: float = _GATE.noise_spans,
        min_support: int = _GATE.min_support,
        gate_metric: str = _GATE.metric,
        quantize: str = "",
        model_name: str = "nerwheel",
        repository_uri: str = DEFAULT_REPOSITORY,
        triton_url: str = "",
        gitops_repo_url: str = "",
        gitops_path: str = DEFAULT_OVERLAY_FILE,
    ) -> None:
        """One turn of the flywheel.

        Args:
            seed_uri: Gold labelled records (local path or s3:// URI); empty = the bundled sample seed set.
            texts_uri: Unlabelled traffic, one text per line; empty = the bundled sample traffic.
            eval_uri: The fixed eval set both candidate and production are scored on; empty = bundled sample.
            teacher: Who labels the traffic: kb (knowledge base, offline) or llm (OpenAI-compatible server).
            llm_endpoint: Base URL of the OpenAI-compatible server (teacher=llm).
            llm_model: Model name on that server (teacher=llm).
            llm_max_tokens: Longest LLM answer per text (bounds cost and time).
            llm_cache_uri: Folder or s3:// prefix of the LLM answer cache the shards share; empty = no cache.
            shards: Shards of the traffic, each labelled by its own pod (1..256).
            replay_ratio: With a production model: agreed texts replayed per disagreement.
            pseudo_label_threshold: With a production model: lowest confidence of a model label kept (0..1).
            synth_short: Synthetic short texts (one entity type each), spread over the types.
            synth_long: Synthetic long composite texts.
            synth_seed: Seed of the synthesiser.
            precedence: Merge precedence of label sources, best first.
            backbone: Encoder: tiny, e5-small, or a Hugging Face model folder.
            epochs: Maximum training epochs; 0: the backbone's measured default (nerwheel.model.defaults).
            nodes: Training nodes; more than 1 runs a Kubeflow Training Operator PyTorchJob.
            gpus_per_node: GPUs (one DDP process each) per training node.
            train_seed: Training seed.
            train_overrides: More training settings, section.key=value separated by ';'.
            distill_student: Serve a student distilled from the trained model (tiny, shallow:K, ...); empty = none.
            distill_overrides: More distillation settings, section.key=value separated by ';'.
        """
        t_production = production(production_model_uri=production_model_uri, repository_uri=repository_uri,
                                  model_name=model_name, production_from_repository=production_from_repository)
        t_plan = shard(texts_uri=texts_uri, shards=shards)
        teach = {"texts_uri": texts_uri, "seed_uri": seed_uri, "teacher": teacher, "llm_endpoint": llm_endpoint,
                 "llm_model": llm_model, "llm_max_tokens": llm_max_tokens, "llm_cache_uri": llm_cache_uri}
        tasks = [t_production, t_plan]

        with dsl.If(t_production.outputs["Output"] == "", name="no-production-model"):  # first turn: label every text
            shard_tasks, t_labelled = sharded(p, t_plan, lambda item: ShardOutputs(
                annotate(shard=item, **teach), "annotated"))
            tasks += [*shard_tasks, t_labelled]
        with dsl.Else(name="production-model"):  # the loop: disagreements + replay + confident model labels
            def loop(item: Any) -> ShardOutputs:
                t_fb = feedback(shard=item, production_uri=t_production.outputs["Output"], eval_uri=eval_uri, **teach)
                t_pl = pseudo_label(feedback=t_fb.outputs["part"], production_uri=t_production.outputs["Output"],
                                    threshold=pseudo_label_threshold)
                return ShardOutputs(t_fb, "part", extra=t_pl, extra_output="part")

            shard_tasks, t_looped = sharded(p, t_plan, loop, replay_ratio=replay_ratio, seed=synth_seed)
            tasks += [*shard_tasks, t_looped]
        labelled = dsl.OneOf(t_labelled.outputs["Output"], t_looped.outputs["Output"])

        t_synth = synthesize(labelled_uri=labelled, seed_uri=seed_uri, eval_uri=eval_uri,
                             n_short=synth_short, n_long=synth_long, seed=synth_seed)
        t_merge = merge(seed_uri=seed_uri, labelled_uri=labelled, synthetic=t_synth.outputs["synthetic"],
                        teacher=teacher, precedence=precedence, eval_uri=eval_uri)
        tasks += [t_synth, t_merge]

        t_train = train(train_data=t_merge.outputs["merged"], backbone=backbone, epochs=epochs, seed=train_seed,
                        overrides=train_overrides, nodes=nodes, gpus_per_node=gpus_per_node,
                        cluster=p.job_settings())
        p.gpu(t_train, gpus_per_node)

        t_distill = distill(model=t_train.outputs["model"], train_data=t_merge.outputs["merged"],
                            student=distill_student, overrides=distill_overrides)
        p.gpu(t_distill, 1)  # distillation runs in one process

        t_eval = evaluate(model=t_distill.outputs["distilled"], eval_uri=eval_uri,
                          production_model_uri=production_model_uri, repository_uri=repository_uri,
                          model_name=model_name, production_from_repository=production_from_repository)

        tasks += [t_train, t_distill, t_eval]
        tasks += gate_and_ship(p, t_eval, t_distill.outputs["distilled"], min_delta=min_delta,
                               max_type_drop=max_type_drop, noise_spans=noise_spans, min_support=min_support,
                               metric=gate_metric, quantize=quantize, model_name=model_name,
                               repository_uri=repository_uri, triton_url=triton_url,
                               gitops_repo_url=gitops_repo_url, gitops_path=gitops_path)
        for task in tasks:
            stage = task.component_spec.name.replace("-", "_")
            task.set_display_name(DISPLAY_NAMES[stage])
            if stage not in CACHED:
                task.set_caching_options(False)
            if stage in ("annotate", "feedback"):  # the LLM teacher's key, when there is one
                kubernetes.use_secret_as_env(task, secret_name=p.llm_secret,
                                             secret_key_to_env={p.llm_secret_key: p.llm_env}, optional=True)
            p.limits(task, stage)
            p.storage_access(task)

    return flywheel


#: The Args lines of the parameters every task's DAG ends with, in this order, as classify and embed word them
#: (:func:`tail_args` adds them to a pipeline function's docstring; a task words its gate and anything else there).
TAIL_ARGS: dict[str, str | None] = {
    "production_model_uri": "Model to gate against; empty = live in repository_uri.",
    "production_from_repository": "Gate against the live version when production_model_uri is empty.",
    "min_delta": None, "max_type_drop": None, "noise_spans": None, "min_support": None,  # the task's metric
    "gate_metric": None,  # only where the task lets a run choose the gate's metric
    "quantize": "Export quantisation; empty = FP32 only.",
    "model_name": "Triton model name.",
    "repository_uri": "Triton model repository deploy writes to.",
    "triton_url": "Triton gRPC host:port to load and verify the new version in; empty = write only.",
    "gitops_repo_url": "Git repository with the kustomize overlays; empty = no GitOps commit.",
    "gitops_path": "Overlay env file whose MODEL_VERSION line the deploy commits.",
}

_F = TypeVar("_F", bound=Callable[..., Any])


def tail_args(**texts: str) -> Callable[[_F], _F]:
    """Append the Args lines of the gate, export and deploy parameters to a pipeline function's docstring.

    KFP takes each pipeline parameter's description from the docstring's Args section when it compiles, so
    the lines must be in ``__doc__`` before ``dsl.pipeline`` reads it: this decorator goes below it. The lines
    are :data:`TAIL_ARGS`, with ``texts`` for the task's own words (the gate's, always); a parameter with no
    text, or a text for a parameter the function does not have, is a mistake in the DAG and raises.
    """
    unknown = set(texts) - set(TAIL_ARGS)
    if unknown:
        raise TypeError(f"tail_args: {sorted(unknown)} are not gate, export or deploy parameters ({list(TAIL_ARGS)})")

    def add(fn: _F) -> _F:
        params = inspect.signature(fn).parameters
        lines = {name: texts.get(name, text) for name, text in TAIL_ARGS.items() if name in params}
        missing = [name for name, text in lines.items() if text is None]
        if missing or not set(texts) <= set(lines):
            raise TypeError(f"tail_args on {fn.__name__}: no words for {missing}, or words for parameters it "
                            f"does not have ({sorted(set(texts) - set(lines))})")
        doc = (fn.__doc__ or "").rstrip(" ")
        last = doc.rstrip("\n").rsplit("\n", 1)[-1]  # the Args section's last line: the lines' indent
        indent = last[:len(last) - len(last.lstrip())]
        fn.__doc__ = doc + "".join(f"{indent}{name}: {text}\n" for name, text in lines.items()) + indent[:-4]
        return fn

    return add


def gate_and_ship(p: Platform, evaluation: dsl.PipelineTask, model: Any, *, gate_name: str | None = None,
                  min_delta: Any, max_type_drop: Any, noise_spans: Any, min_support: Any, metric: Any,
                  **ship: Any) -> list[dsl.PipelineTask]:
    """The tail every task's DAG ends with: the gate on ``evaluation``'s scores against production, then
    :func:`export_and_deploy` of ``model`` when it promotes. Returns [gate, export, deploy].

    ``gate_name``: the gate's display name (default: NER's); ``ship``: export_and_deploy's parameters.
    """
    t_gate = gate(candidate=evaluation.outputs["scores"], production=evaluation.outputs["production_scores"],
                  min_delta=min_delta, max_type_drop=max_type_drop, noise_spans=noise_spans,
                  min_support=min_support, metric=metric)
    t_gate.set_display_name(gate_name or DISPLAY_NAMES["gate"])
    return [t_gate, *export_and_deploy(p, t_gate, model, evaluation.outputs["scores"], **ship)]


def export_and_deploy(p: Platform, gate_task: dsl.PipelineTask, model: Any,
                      scores: Any, **params: Any) -> list[dsl.PipelineTask]:
    """The promoted branch every task's DAG ends with: export, then deploy, only when the gate said promote.

    ``params``: the pipeline's quantize, model_name, repository_uri, triton_url, gitops_repo_url, gitops_path.
    """
    # The gate's single return value is its verdict ("Output" is KFP's name for a return value).
    with dsl.If(gate_task.outputs["Output"] == True, name="promoted"):  # noqa: E712 - a KFP condition
        t_export = export(model=model, quantize=params["quantize"])
        t_export.set_display_name(DISPLAY_NAMES["export"])

        t_deploy = deploy(onnx=t_export.outputs["onnx"], scores=scores, model_name=params["model_name"],
                          repository_uri=params["repository_uri"], triton_url=params["triton_url"],
                          gitops_repo_url=params["gitops_repo_url"], gitops_path=params["gitops_path"])
        t_deploy.set_display_name(DISPLAY_NAMES["deploy"])
        t_deploy.set_caching_options(False)  # a deploy has effects outside the pipeline: never skip it
        kubernetes.use_secret_as_env(t_deploy, secret_name=p.git_secret,
                                     secret_key_to_env={p.git_secret_key: p.git_env}, optional=True)
        p.triton_control(t_deploy)
    return [t_export, t_deploy]


#: The pipeline with the default :class:`Platform` (what ``nerwheel compile`` and ``nerwheel run`` use).
flywheel = build_pipeline()
