"""The nerwheel flywheel as a Kubeflow Pipelines v2 DAG.

    annotate -> synthesize -> merge -> train -> evaluate -> gate -> [promoted] export -> deploy

Every knob a run may change is a typed pipeline parameter with a default (the
embedded default: bundled sample data, the knowledge-base teacher, the ``tiny``
backbone). What belongs to the cluster, not to a run (GPU type and node
placement, secret and ConfigMap names) is a :class:`Platform` fixed at compile
time and attached with kfp-kubernetes: credentials reach tasks as Kubernetes
secrets in env, never as parameters.

``synthesize`` takes the teacher-labelled traffic as examples (its entity
strings join the synthesiser's pools), hence the edge annotate -> synthesize.
"""

from dataclasses import dataclass, field

from kfp import dsl, kubernetes

from nerwheel.components.annotate import annotate
from nerwheel.components.deploy import deploy
from nerwheel.components.evaluate import evaluate
from nerwheel.components.export import export
from nerwheel.components.gate import gate
from nerwheel.components.merge import merge
from nerwheel.components.synthesize import synthesize
from nerwheel.components.train import train

__all__ = ["DISPLAY_NAMES", "PIPELINE_NAME", "Platform", "Toleration", "build_pipeline", "flywheel"]

PIPELINE_NAME = "nerwheel-flywheel"

#: The display name of each task in the KFP UI, by stage.
DISPLAY_NAMES: dict[str, str] = {
    "annotate": "Annotate traffic with the teacher",
    "synthesize": "Synthesise labelled texts",
    "merge": "Merge gold, teacher and synthetic labels",
    "train": "Train the tagger (GPU)",
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
class Platform:
    """Cluster-side settings, fixed when the pipeline is compiled.

    The names match ``manifests/`` (``nerwheel-s3`` secret, ``nerwheel-storage`` ConfigMap,
    ``nerwheel-llm`` secret); the GPU settings match the common NVIDIA device-plugin setup.
    """

    gpu_type: str = "nvidia.com/gpu"
    gpu_count: int = 1
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
    extra_env: dict[str, str] = field(default_factory=dict)

    def storage_access(self, task: dsl.PipelineTask) -> dsl.PipelineTask:
        """S3 credentials (secret) and endpoint/region (ConfigMap) as env: every task reads or writes storage."""
        kubernetes.use_secret_as_env(task, secret_name=self.s3_secret,
                                     secret_key_to_env={k: k for k in self.s3_secret_keys})
        kubernetes.use_config_map_as_env(task, config_map_name=self.storage_config_map,
                                         config_map_key_to_env={k: k for k in self.storage_config_keys})
        for name, value in sorted(self.extra_env.items()):
            task.set_env_variable(name, value)
        return task

    def gpu(self, task: dsl.PipelineTask) -> dsl.PipelineTask:
        """Ask for a GPU node: accelerator type and limit, node selector, tolerations, CPU and memory."""
        task.set_accelerator_type(self.gpu_type).set_accelerator_limit(self.gpu_count)
        task.set_cpu_request(self.train_cpu).set_memory_request(self.train_memory)
        kubernetes.add_node_selector(task, label_key=self.gpu_node_selector[0], label_value=self.gpu_node_selector[1])
        for t in self.gpu_tolerations:
            kubernetes.add_toleration(task, key=t.key, operator=t.operator, value=t.value, effect=t.effect)
        return task


def build_pipeline(platform: Platform | None = None):  # noqa: ANN201 - a kfp GraphComponent
    """The flywheel pipeline with ``platform``'s cluster settings attached."""
    p = platform or Platform()

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="nerwheel flywheel: teacher labels + synthetic data -> train -> evaluate -> gate -> "
        "(if promoted) ONNX export -> Triton deploy + GitOps commit.",
    )
    def flywheel(
        seed_uri: str = "",
        texts_uri: str = "",
        eval_uri: str = "",
        teacher: str = "kb",
        llm_endpoint: str = "",
        llm_model: str = "",
        llm_max_tokens: int = 1024,
        synth_short: int = 200,
        synth_long: int = 200,
        synth_seed: int = 13,
        precedence: str = "gold,kb,llm,synthetic",
        backbone: str = "tiny",
        epochs: int = 10,
        train_seed: int = 42,
        train_overrides: str = "",
        production_model_uri: str = "",
        min_delta: float = 0.005,
        tolerance: float = 0.02,
        min_support: int = 20,
        quantize: str = "",
        model_name: str = "nerwheel",
        repository_uri: str = "",
        triton_url: str = "",
        gitops_repo_url: str = "",
        gitops_path: str = "manifests/overlays/prod/model-version.env",
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
            synth_short: Synthetic short texts (one entity type each), spread over the types.
            synth_long: Synthetic long composite texts.
            synth_seed: Seed of the synthesiser.
            precedence: Merge precedence of label sources, best first.
            backbone: Encoder: tiny, e5-small, or a Hugging Face model folder.
            epochs: Maximum training epochs.
            train_seed: Training seed.
            train_overrides: More training settings, section.key=value separated by ';'.
            production_model_uri: The model now in production (folder or s3:// prefix); empty = none yet.
            min_delta: Gate: required rise of overall strict F1.
            tolerance: Gate: largest allowed fall of one entity type's F1.
            min_support: Gate: types with fewer gold spans are reported, not enforced.
            quantize: Export quantisation; empty = FP32 only.
            model_name: Triton model name.
            repository_uri: Triton model repository (s3:// or local); empty = inside the deploy artifact.
            triton_url: Triton gRPC host:port to load and verify the new version in; empty = write only.
            gitops_repo_url: Git repository with the kustomize overlays; empty = no GitOps commit.
            gitops_path: Overlay env file whose MODEL_VERSION line the deploy commits.
        """
        t_annotate = annotate(texts_uri=texts_uri, seed_uri=seed_uri, teacher=teacher, llm_endpoint=llm_endpoint,
                              llm_model=llm_model, llm_max_tokens=llm_max_tokens)
        t_annotate.set_display_name(DISPLAY_NAMES["annotate"])
        kubernetes.use_secret_as_env(t_annotate, secret_name=p.llm_secret,
                                     secret_key_to_env={p.llm_secret_key: p.llm_env}, optional=True)

        t_synth = synthesize(annotated=t_annotate.outputs["annotated"], seed_uri=seed_uri, eval_uri=eval_uri,
                             n_short=synth_short, n_long=synth_long, seed=synth_seed)
        t_synth.set_display_name(DISPLAY_NAMES["synthesize"])

        t_merge = merge(seed_uri=seed_uri, annotated=t_annotate.outputs["annotated"],
                        synthetic=t_synth.outputs["synthetic"], teacher=teacher, precedence=precedence,
                        eval_uri=eval_uri)
        t_merge.set_display_name(DISPLAY_NAMES["merge"])

        t_train = train(train_data=t_merge.outputs["merged"], backbone=backbone, epochs=epochs, seed=train_seed,
                        overrides=train_overrides)
        t_train.set_display_name(DISPLAY_NAMES["train"])
        p.gpu(t_train)

        t_eval = evaluate(model=t_train.outputs["model"], eval_uri=eval_uri,
                          production_model_uri=production_model_uri)
        t_eval.set_display_name(DISPLAY_NAMES["evaluate"])

        t_gate = gate(candidate=t_eval.outputs["scores"], production=t_eval.outputs["production_scores"],
                      min_delta=min_delta, tolerance=tolerance, min_support=min_support)
        t_gate.set_display_name(DISPLAY_NAMES["gate"])

        tasks = [t_annotate, t_synth, t_merge, t_train, t_eval, t_gate]
        # The gate's single return value is its verdict ("Output" is KFP's name for a return value).
        with dsl.If(t_gate.outputs["Output"] == True, name="promoted"):  # noqa: E712 - a KFP condition
            t_export = export(model=t_train.outputs["model"], quantize=quantize)
            t_export.set_display_name(DISPLAY_NAMES["export"])

            t_deploy = deploy(onnx=t_export.outputs["onnx"], scores=t_eval.outputs["scores"], model_name=model_name,
                              repository_uri=repository_uri, triton_url=triton_url, gitops_repo_url=gitops_repo_url,
                              gitops_path=gitops_path)
            t_deploy.set_display_name(DISPLAY_NAMES["deploy"])
            t_deploy.set_caching_options(False)  # a deploy has effects outside the pipeline: never skip it
            kubernetes.use_secret_as_env(t_deploy, secret_name=p.git_secret,
                                         secret_key_to_env={p.git_secret_key: p.git_env}, optional=True)
            tasks += [t_export, t_deploy]
        for task in tasks:
            p.storage_access(task)

    return flywheel


#: The pipeline with the default :class:`Platform` (what ``nerwheel compile`` and ``nerwheel run`` use).
flywheel = build_pipeline()
