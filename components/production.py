"""KFP component: which model is in production (logic: :mod:`nerwheel.components.steps.production`)."""

from kfp.dsl import Artifact, Output

from nerwheel.components.images import component

__all__ = ["production"]


@component("production")
def production(
    production_model_uri: str,
    repository_uri: str,
    model_name: str,
    production_from_repository: bool,
    record: Output[Artifact],
) -> str:
    """Decide once which model the run's feedback loop diffs against.

    Args:
        production_model_uri: the model in production (export folder or s3:// prefix); empty = the version of
            model_name live in repository_uri.
        repository_uri: the Triton model repository deploy writes to and Triton reads.
        model_name: the Triton model name.
        production_from_repository: look up the live version when production_model_uri is empty.

    Returns:
        The production model's URI, empty when there is none (the DAG then labels every text);
        record: which model and why (uri, how, note) as JSON.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.components.steps.production import run

    task_logging()
    return run(production_model_uri=production_model_uri, repository_uri=repository_uri, model_name=model_name,
               production_from_repository=production_from_repository, record_path=record.path)
