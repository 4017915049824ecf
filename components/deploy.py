"""KFP component: publish to Triton and record the version in git (logic: :mod:`nerwheel.components.steps.deploy`)."""

from kfp.dsl import Artifact, Input, Markdown, Model, Output

from nerwheel.components.images import component

__all__ = ["deploy"]


@component("deploy")
def deploy(
    onnx: Input[Model],
    scores: Input[Artifact],
    model_name: str,
    repository_uri: str,
    triton_url: str,
    gitops_repo_url: str,
    gitops_path: str,
    deployment: Output[Artifact],
    report: Output[Markdown],
) -> int:
    """Write the exported model as a new Triton model version, load and verify it, commit the version.

    Args:
        onnx: the export folder (model.onnx, tokenizer.json, nerwheel.json, crf.npz).
        scores: the candidate's metrics.json, stored with the deployment record.
        model_name: Triton model name.
        repository_uri: Triton model repository (s3:// or local); empty = inside this artifact.
        triton_url: Triton gRPC address (host:port) to load and verify in; empty = write only.
        gitops_repo_url: git repository holding the kustomize overlays; empty = no GitOps commit.
        gitops_path: the overlay env file whose MODEL_VERSION line is updated.

    Returns:
        The deployed version number; deployment: folder with deployment.json (and the repository
        when repository_uri is empty); report: Markdown summary.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.components.steps.deploy import run

    task_logging()
    record = run(export_dir=onnx.path, scores_path=scores.path, model_name=model_name,
                 repository_uri=repository_uri, triton_url=triton_url, gitops_repo_url=gitops_repo_url,
                 gitops_path=gitops_path, deployment_path=deployment.path, report_path=report.path,
                 deployment_uri=deployment.uri)
    deployment.metadata["version"] = record["deploy"]["version"]
    deployment.metadata["repository"] = record["repository"]
    deployment.metadata["status"] = record["deploy"]["status"]
    return int(record["deploy"]["version"])
