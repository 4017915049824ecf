"""KFP component: train the token classifier, on a GPU node (logic: :mod:`nerwheel.components.steps.train`)."""

from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from nerwheel.components.images import component

__all__ = ["train"]


@component("train")
def train(
    train_data: Input[Dataset],
    backbone: str,
    epochs: int,
    seed: int,
    overrides: str,
    nodes: int,
    gpus_per_node: int,
    cluster: dict,
    model: Output[Model],
    metrics: Output[Metrics],
    report: Output[HTML],
) -> None:
    """Fine-tune a BERT(+CRF) token classifier on the merged training set.

    Args:
        train_data: training records (Dataset folder).
        backbone: ``tiny``, ``e5-small``, or a Hugging Face model folder.
        epochs: maximum epochs (early stopping may end sooner); 0: the backbone's measured default.
        seed: seed for data order, initialisation and the dev split.
        overrides: further training-config settings, ``section.key=value`` separated by ``;``
            (e.g. ``training.batch_size=16; model.head=softmax``).
        nodes: training nodes; 1 trains in this task's pod, more runs a Kubeflow Training Operator PyTorchJob
            of this image (``nodes`` x ``gpus_per_node`` DDP processes) that this task creates and waits for.
        gpus_per_node: GPUs per node, one DDP process each (``torchrun``); 0 or 1 = one process.
        cluster: the platform settings a PyTorchJob's pods need (fixed when the pipeline is compiled).

    Returns:
        model: a Hugging Face model folder plus nerwheel.json (and crf.safetensors);
        metrics: dev scores; report: HTML with the training curves.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.components.steps.train import run

    task_logging()
    scalars = run(train_path=train_data.path, backbone=backbone, epochs=epochs, seed=seed, overrides=overrides,
                  model_path=model.path, report_path=report.path, nodes=nodes, gpus_per_node=gpus_per_node,
                  train_uri=train_data.uri, model_uri=model.uri, cluster=cluster)
    for name, value in scalars.items():
        metrics.log_metric(name, value)
    model.metadata["framework"] = "pytorch"
    model.metadata["backbone"] = backbone
