"""The classifier's flywheel as a Kubeflow Pipelines v2 DAG, on the same machinery as NER's.

    label (model or LLM teacher) -> merge -> train -> distill -> evaluate -> gate -> [promoted] export -> deploy

The four task-specific components below are thin wrappers over
:mod:`nerwheel.tasks.classify.steps`; distill, gate, export and deploy are
NER's own components (their steps read the task from the metrics or the
model; ``distill`` passes the trained model on unless ``distill_student``
names a student), and the
cluster settings (:class:`~nerwheel.pipelines.flywheel.Platform`: GPU for
train, S3 credentials and endpoint as env, LLM and git secrets) are attached
the same way. The evaluate component also logs KFP's own
``ClassificationMetrics`` (the confusion matrix the KFP UI draws).
"""

from kfp import dsl, kubernetes
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from nerwheel.components.distill import distill
from nerwheel.components.images import component
from nerwheel.stages.gate import GatePolicy

__all__ = ["DISPLAY_NAMES", "PIPELINE_NAME", "STAGES", "build_pipeline", "classify_evaluate", "classify_label",
           "classify_merge", "classify_train", "pipeline"]

PIPELINE_NAME = "nerwheel-classify"
#: The DAG's tasks in order (KFP names tasks after their component functions).
STAGES = ("classify-label", "classify-merge", "classify-train", "distill", "classify-evaluate", "gate", "export",
          "deploy")
_GATE = GatePolicy()

DISPLAY_NAMES = {
    "label": "Label traffic with the teacher",
    "merge": "Merge gold and teacher labels",
    "train": "Train the classifier (GPU)",
    "distill": "Distil into a smaller classifier (optional, GPU)",
    "evaluate": "Evaluate candidate and production",
    "gate": "Gate: does the candidate beat production (macro-F1)?",
}


@component("evaluate")  # torch for a model teacher, the LLM client for an LLM teacher
def classify_label(texts_uri: str, seed_uri: str, teacher: str, teacher_model_uri: str, threshold: float,
                   llm_endpoint: str, llm_model: str, llm_max_tokens: int, labelled: Output[Dataset],
                   metrics: Output[Metrics], report: Output[HTML]) -> None:
    """Label the live messages with the teacher.

    Args:
        texts_uri: live messages (local path or s3:// URI); empty = the bundled sample traffic.
        seed_uri: labelled seed messages; empty = the bundled sample seed set.
        teacher: model (a trained classifier above threshold; without teacher_model_uri, one trained on the
            seed here) or llm (few-shot through an OpenAI-compatible server).
        teacher_model_uri: the model teacher (model or export folder, local or s3://); empty = trained on seed.
        threshold: the model teacher abstains below this confidence.
        llm_endpoint: OpenAI-compatible base URL (teacher=llm).
        llm_model: model name on that server (teacher=llm).
        llm_max_tokens: longest LLM answer.

    Returns:
        labelled: the messages the teacher labelled (Dataset folder, rejects beside them).
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.tasks.classify.steps import label

    task_logging()
    for name, value in label(texts_uri=texts_uri, seed_uri=seed_uri, teacher=teacher,
                             teacher_model_uri=teacher_model_uri, threshold=threshold, llm_endpoint=llm_endpoint,
                             llm_model=llm_model, llm_max_tokens=llm_max_tokens, labelled_path=labelled.path,
                             report_path=report.path).items():
        metrics.log_metric(name, value)


@component("merge")
def classify_merge(seed_uri: str, labelled: Input[Dataset], eval_uri: str, teacher: str, precedence: str,
                   merged: Output[Dataset], metrics: Output[Metrics], report: Output[HTML]) -> None:
    """Fuse the gold seed and the teacher's labels by precedence, with provenance; eval messages are dropped.

    Args:
        seed_uri: gold messages; empty = the bundled sample seed set.
        labelled: the label task's output.
        eval_uri: the fixed eval set (its messages never enter training); empty = the bundled sample.
        teacher: the teacher's source kind (model or llm).
        precedence: source kinds, most trusted first.

    Returns:
        merged: the training set (Dataset folder).
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.tasks.classify.steps import merge

    task_logging()
    for name, value in merge(seed_uri=seed_uri, labelled_path=labelled.path, eval_uri=eval_uri, teacher=teacher,
                             precedence=precedence, merged_path=merged.path, report_path=report.path).items():
        metrics.log_metric(name, value)


@component("train")
def classify_train(train_data: Input[Dataset], backbone: str, epochs: int, seed: int, overrides: str,
                   model: Output[Model], metrics: Output[Metrics], report: Output[HTML]) -> None:
    """Fine-tune the message classifier (best checkpoint by dev macro-F1).

    Args:
        train_data: the merged training messages.
        backbone: tiny, e5-small, or a Hugging Face model folder.
        epochs: maximum epochs.
        seed: seed for data order, initialisation and the dev split.
        overrides: more config settings, section.key=value separated by ';'.

    Returns:
        model: a Hugging Face sequence-classification folder plus nerwheel.json and labels.json.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.tasks.classify.steps import train

    task_logging()
    for name, value in train(train_path=train_data.path, backbone=backbone, epochs=epochs, seed=seed,
                             overrides=overrides, model_path=model.path, report_path=report.path).items():
        metrics.log_metric(name, value)
    model.metadata["framework"] = "pytorch"
    model.metadata["task"] = "classify"


@component("evaluate")
def classify_evaluate(model: Input[Model], eval_uri: str, production_model_uri: str, repository_uri: str,
                      model_name: str, production_from_repository: bool, metrics: Output[Metrics],
                      confusion: Output[ClassificationMetrics], scores: Output[Artifact],
                      production_scores: Output[Artifact], report: Output[HTML]) -> float:
    """Score candidate and production on the fixed eval set: accuracy, macro-F1, per class, ECE, confusion.

    Args:
        model: the trained classifier.
        eval_uri: the fixed eval set; empty = the bundled sample eval set.
        production_model_uri: the production model; empty = the version live in repository_uri.
        repository_uri: the Triton model repository.
        model_name: the Triton model name.
        production_from_repository: look up the live version when production_model_uri is empty.

    Returns:
        The candidate's macro-F1; scores: its metrics.json; production_scores: the production record;
        confusion: KFP ClassificationMetrics (the confusion matrix).
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.tasks.classify.steps import evaluate

    task_logging()
    values, candidate = evaluate(model_path=model.path, eval_uri=eval_uri, production_model_uri=production_model_uri,
                                 repository_uri=repository_uri, model_name=model_name,
                                 production_from_repository=production_from_repository, scores_path=scores.path,
                                 production_scores_path=production_scores.path, report_path=report.path)
    for name, value in values.items():
        metrics.log_metric(name, value)
    confusion.log_confusion_matrix(candidate["confusion"]["labels"], candidate["confusion"]["matrix"])
    return values["macro_f1"]


def build_pipeline(platform=None):  # noqa: ANN001, ANN201 - a Platform, a kfp GraphComponent
    """The classifier's flywheel with ``platform``'s cluster settings attached."""
    from nerwheel.gitops import DEFAULT_OVERLAY_FILE
    from nerwheel.pipelines.flywheel import DEFAULT_REPOSITORY, Platform, gate_and_ship, tail_args

    p = platform or Platform()

    @dsl.pipeline(name=PIPELINE_NAME, description="nerwheel message classifier: teacher labels -> merge -> train -> "
                  "[distill] -> evaluate -> gate (macro-F1) -> (if promoted) ONNX export -> Triton deploy + GitOps "
                  "commit.")
    @tail_args(  # the Args lines of production_model_uri ... gitops_path: TAIL_ARGS, and the gate's words here
        min_delta="Gate: required rise of macro-F1.",
        max_type_drop="Gate: largest allowed fall of a well-supported class's F1.",
        noise_spans="Gate: a class's F1 may fall by max(max_type_drop, noise_spans / its gold messages).",
        min_support="Gate: opt-out, classes with fewer gold messages are not enforced; 0 = all checked.",
    )
    def classify_flywheel(
        seed_uri: str = "",
        texts_uri: str = "",
        eval_uri: str = "",
        teacher: str = "model",
        teacher_model_uri: str = "",
        threshold: float = 0.8,
        llm_endpoint: str = "",
        llm_model: str = "",
        llm_max_tokens: int = 64,
        precedence: str = "gold,llm,model",
        backbone: str = "tiny",
        epochs: int = 10,
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
        quantize: str = "",
        model_name: str = "classifier",
        repository_uri: str = DEFAULT_REPOSITORY,
        triton_url: str = "",
        gitops_repo_url: str = "",
        gitops_path: str = DEFAULT_OVERLAY_FILE,
    ) -> None:
        """One turn of the classifier's flywheel.

        Args:
            seed_uri: Gold labelled messages; empty = the bundled sample seed set.
            texts_uri: Live messages, one per line (or JSONL with context); empty = the bundled sample traffic.
            eval_uri: The fixed eval set both candidate and production are scored on; empty = bundled sample.
            teacher: Who labels the traffic: model (offline) or llm.
            teacher_model_uri: The model teacher; empty = one trained on the seed set in the label task.
            threshold: The model teacher abstains below this confidence.
            llm_endpoint: Base URL of the OpenAI-compatible server (teacher=llm).
            llm_model: Model name on that server (teacher=llm).
            llm_max_tokens: Longest LLM answer per message.
            precedence: Merge precedence of label sources, best first.
            backbone: Encoder: tiny, e5-small, or a Hugging Face model folder.
            epochs: Maximum training epochs.
            train_seed: Training seed.
            train_overrides: More training settings, section.key=value separated by ';'.
            distill_student: Serve a student distilled from the trained classifier (tiny, shallow:K, ...); empty = none.
            distill_overrides: More distillation settings, section.key=value separated by ';'.
        """
        t_label = classify_label(texts_uri=texts_uri, seed_uri=seed_uri, teacher=teacher,
                                 teacher_model_uri=teacher_model_uri, threshold=threshold, llm_endpoint=llm_endpoint,
                                 llm_model=llm_model, llm_max_tokens=llm_max_tokens)
        t_label.set_display_name(DISPLAY_NAMES["label"])
        t_label.set_caching_options(False)
        kubernetes.use_secret_as_env(t_label, secret_name=p.llm_secret,
                                     secret_key_to_env={p.llm_secret_key: p.llm_env}, optional=True)
        t_merge = classify_merge(seed_uri=seed_uri, labelled=t_label.outputs["labelled"], eval_uri=eval_uri,
                                 teacher=teacher, precedence=precedence)
        t_merge.set_display_name(DISPLAY_NAMES["merge"])
        t_merge.set_caching_options(False)
        t_train = classify_train(train_data=t_merge.outputs["merged"], backbone=backbone, epochs=epochs,
                                 seed=train_seed, overrides=train_overrides)
        t_train.set_display_name(DISPLAY_NAMES["train"])
        p.gpu(t_train, 1)  # the classifier trains in one process: one GPU
        t_distill = distill(model=t_train.outputs["model"], train_data=t_merge.outputs["merged"],
                            student=distill_student, overrides=distill_overrides)
        t_distill.set_display_name(DISPLAY_NAMES["distill"])
        p.gpu(t_distill, 1)
        t_eval = classify_evaluate(model=t_distill.outputs["distilled"], eval_uri=eval_uri,
                                   production_model_uri=production_model_uri, repository_uri=repository_uri,
                                   model_name=model_name, production_from_repository=production_from_repository)
        t_eval.set_display_name(DISPLAY_NAMES["evaluate"])
        t_eval.set_caching_options(False)
        tasks = [t_label, t_merge, t_train, t_distill, t_eval]
        tasks += gate_and_ship(p, t_eval, t_distill.outputs["distilled"], gate_name=DISPLAY_NAMES["gate"],
                               min_delta=min_delta, max_type_drop=max_type_drop, noise_spans=noise_spans,
                               min_support=min_support, metric="strict", quantize=quantize, model_name=model_name,
                               repository_uri=repository_uri, triton_url=triton_url,
                               gitops_repo_url=gitops_repo_url, gitops_path=gitops_path)
        # time limits and retries as the NER stages that do the same work (label: a teacher over the traffic)
        for task, stage in zip(tasks, ("annotate", "merge", "train", "distill", "evaluate", "gate", "export",
                                       "deploy"), strict=True):
            p.limits(task, stage)
            p.storage_access(task)

    return classify_flywheel


#: The pipeline with the default Platform (what ``nerwheel compile --task classify`` and ``run`` use).
pipeline = build_pipeline()
