"""Train step: the token classifier (:func:`nerwheel.stages.train.train`).

The only stage that wants a GPU: the pipeline asks for one on this task
(accelerator type and limit, node selector, tolerations); the same code trains on
CPU when none is there (``training.device: auto``).
"""

from typing import Any

__all__ = ["OWN_PARAMETERS", "parse_override_list", "resolve_config", "run"]


#: Config keys that have their own pipeline parameter; ``overrides`` may not set them too.
OWN_PARAMETERS = ("model.model_id", "training.epochs", "training.seed", "data.train_file", "data.format",
                  "output.output_dir", "output.model_name", "output.timestamp")


def parse_override_list(overrides: str, own: tuple[str, ...] = OWN_PARAMETERS) -> list[str]:
    """``"training.batch_size=16; model.tiny.hidden_size=64"`` -> ``["training.batch_size=16", ...]``.

    Items are separated by ``;`` or newlines (values may hold commas). A key in ``own`` (a train
    config key that has its own pipeline parameter) is refused, so one setting never has two sources.
    """
    from nerwheel.errors import ConfigError
    from nerwheel.model.config import RENAMES

    items = [p.strip() for chunk in overrides.splitlines() for p in chunk.split(";") if p.strip()]
    for item in items if own else ():
        key = item.partition("=")[0].strip()
        canonical = RENAMES.canonical(key)  # model.name is model.model_id, training.max_epochs training.epochs
        if canonical in own:
            named = key if key == canonical else f"{key} ({canonical})"
            raise ConfigError(f"train override {item!r} sets {named}, which has its own pipeline parameter; "
                              "set that parameter instead")
    return items


def resolve_config(*, train_path: str, backbone: str, epochs: int, seed: int, overrides: str,
                   model_path: str) -> Any:
    """The training config of a pipeline run: the overrides, then the fields with their own parameter."""
    from pathlib import Path

    from nerwheel.components.data import RECORDS_FILE
    from nerwheel.model.config import load_config, merge_overrides, parse_overrides

    out = Path(model_path)
    data = parse_overrides(parse_override_list(overrides))
    fixed = {
        "model": {"model_id": backbone},
        # epochs 0: the backbone's measured budget (nerwheel.model.defaults), as `nerwheel train` gives without a config
        "training": {"seed": seed, **({"epochs": epochs} if epochs > 0 else {})},
        "data": {"train_file": str(Path(train_path) / RECORDS_FILE), "format": "spans"},
        "output": {"output_dir": str(out.parent), "model_name": out.name, "timestamp": False},
    }
    return load_config(None, overrides=merge_overrides(data, fixed))


def run(*, train_path: str, backbone: str, epochs: int, seed: int, overrides: str, model_path: str,
        report_path: str, nodes: int = 1, gpus_per_node: int = 1, train_uri: str = "",
        model_uri: str = "", cluster: dict[str, Any] | None = None) -> dict[str, float]:
    """Train on the Dataset folder at ``train_path`` into the folder ``model_path``.

    One node, at most one GPU: in this process. One node, several GPUs: ``torchrun`` with one DDP process per
    GPU on this pod. Several nodes: a Kubeflow Training Operator PyTorchJob of this image, created and awaited
    here (:mod:`nerwheel.components.steps.pytorchjob`, its pods as ``cluster`` says); it reads the data from
    ``train_uri`` and writes the model beside ``model_uri``, which is then copied into ``model_path``. Returns the scalars the component logs (dev
    scores and training facts from nerwheel.json).
    """
    from pathlib import Path

    from nerwheel.components.data import read_json
    from nerwheel.components.steps import flatten_metrics
    from nerwheel.errors import ConfigError
    from nerwheel.model.layout import CARD_FILE

    if nodes < 1 or gpus_per_node < 0:
        raise ConfigError(f"nodes must be >= 1 and gpus_per_node >= 0, got {nodes} and {gpus_per_node}")
    out = Path(model_path)
    config = resolve_config(train_path=train_path, backbone=backbone, epochs=epochs, seed=seed, overrides=overrides,
                            model_path=model_path)
    if nodes > 1:
        from nerwheel.components.steps.pytorchjob import train_on_cluster

        if not cluster:
            raise ConfigError("nodes > 1 needs the cluster settings the pipeline compiles in (cluster)",
                              field="nodes")
        train_on_cluster(config, nodes=nodes, gpus_per_node=gpus_per_node, train_uri=train_uri,
                         model_uri=model_uri, model_path=model_path, cluster=cluster)
        model_dir = out
    elif gpus_per_node > 1:
        from nerwheel.model.distributed import launch_local

        model_dir = launch_local(config, nproc=gpus_per_node)
    else:
        from nerwheel.stages.train import train

        model_dir = Path(train(config))
    if model_dir.resolve() != out.resolve():
        raise RuntimeError(f"train wrote {model_dir}, expected the artifact folder {out}")

    card = read_json(model_dir / CARD_FILE)
    # The UI gets the overall figures; per-type scores stay in nerwheel.json and the report.
    scalars = {k: v for k, v in flatten_metrics(card.get("metrics") or {}, bools=False).items() if "per_type" not in k}
    _report(card, model_dir, report_path)
    return scalars


def _report(card: dict, model_dir, report_path: str) -> None:
    import base64

    from nerwheel.components.report import Report, line_chart
    from nerwheel.components.steps import flatten_metrics

    rep = Report("train: model").key_values({
        "backbone": card.get("backbone"), "head": card.get("head"), "scheme": card.get("scheme"),
        "labels": ", ".join(card.get("labels") or []), "sequence_length": card.get("sequence_length"),
    })
    curves: dict[str, list[float]] = {}
    from nerwheel.model.layout import HISTORY_FILE

    history = model_dir / HISTORY_FILE  # one line per epoch, written by the train stage
    if history.is_file():
        import json

        for line in history.read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else {}
            for key, value in flatten_metrics(row, bools=False).items():
                if key != "epoch" and ("loss" in key or key.endswith("strict_f1")):
                    curves.setdefault(key, []).append(value)
    if curves:
        rep.heading("Training curves").raw(line_chart(curves, title="per epoch", x_label="epoch"))
    for png in sorted(model_dir.glob("*.png")):
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        rep.heading(png.stem).raw(f'<img alt="{png.stem}" src="data:image/png;base64,{data}"/>')
    rep.heading("nerwheel.json metrics").pre(_dump(card.get("metrics")))
    rep.write(report_path)


def _dump(obj: object) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False, indent=2)
