"""LoRA restricted to chosen layers: adapters only where named, the head kept by modules_to_save, for every backbone."""

from __future__ import annotations

import pytest
import torch

from model_config import HYBRID_MODEL, tiny_config
from nerwheel.model.config import LoraSettings, ModelSettings
from nerwheel.model.lora import apply_lora, encoder_state
from nerwheel.model.runtime import TorchTagger
from nerwheel.stages.train import train

TAGS = ["O", "B-a", "I-a"]


def _classifier(model_settings: ModelSettings, texts):
    from nerwheel.model.backbones import load_backbone
    from nerwheel.labels import TagSet

    torch.manual_seed(0)
    backbone = load_backbone(model_settings, texts=texts, sequence_length=32)
    return backbone.classifier(TagSet(("a",), "BIO"), model_settings)


def _train_steps(model, steps: int = 3) -> None:
    """A few optimiser steps on random tokens and tags, over every trainable parameter."""
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-2)
    torch.manual_seed(1)
    model.train()
    for _ in range(steps):
        ids = torch.randint(5, 30, (4, 10))
        labels = torch.randint(0, 3, (4, 10))
        labels[:, 0] = labels[:, -1] = -100
        loss = model.loss(model(ids, torch.ones_like(ids)), labels)
        optim.zero_grad()
        loss.backward()
        optim.step()


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    return {k for k, v in after.items() if not torch.equal(v, before[k])}


def _snapshot(model) -> dict[str, dict[str, torch.Tensor]]:
    return {"encoder": {k: v.detach().clone() for k, v in encoder_state(model.encoder).items()},
            "head": {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith("encoder.")}}


TEXTS = ["浙江省杭州市西湖区文三路100号", "南京市鼓楼区中山路"]


def test_bert_adapters_only_in_the_named_layers_and_the_head_trains():
    settings = ModelSettings(tiny={"hidden_size": 32, "num_layers": 3, "num_heads": 2, "intermediate_size": 64})
    model = _classifier(settings, TEXTS)
    apply_lora(model, LoraSettings(enabled=True, r=4, layers_to_transform=[1, 2]))
    with_adapters = {n.split(".lora_A")[0] for n, _ in model.encoder.named_modules() if n.endswith("lora_A")}
    assert with_adapters and all(".layer.1." in n or ".layer.2." in n for n in with_adapters)
    assert {n.rsplit(".", 1)[-1] for n in with_adapters} == {"query", "key", "value"}
    before = _snapshot(model)
    _train_steps(model)
    after = _snapshot(model)
    changed = _changed(before["encoder"], after["encoder"])
    assert changed == {f"encoder.layer.{i}.attention.self.{m}.weight" for i in (1, 2) for m in ("query", "key", "value")}
    assert _changed(before["head"], after["head"]) == {"classifier.weight", "classifier.bias", "crf.transitions",
                                                       "crf.start_transitions", "crf.end_transitions"}


def test_modules_to_save_decides_which_head_modules_train():
    model = _classifier(ModelSettings(tiny={"hidden_size": 32, "num_layers": 2, "num_heads": 2,
                                            "intermediate_size": 64}), TEXTS)
    apply_lora(model, LoraSettings(enabled=True, r=4, modules_to_save=["classifier"]))
    before = _snapshot(model)
    _train_steps(model)
    assert _changed(before["head"], _snapshot(model)["head"]) == {"classifier.weight", "classifier.bias"}


def test_hybrid_adapters_on_the_deep_qwen2_layers_and_a_saved_moe():
    settings = ModelSettings(**{**HYBRID_MODEL, "tiny": {"hidden_size": 32, "num_layers": 2, "num_heads": 2,
                                                         "intermediate_size": 64}})
    model = _classifier(settings, TEXTS)
    apply_lora(model, LoraSettings(enabled=True, r=4, layers_to_transform=[1],
                                   modules_to_save=["classifier", "crf", "moe"]))
    before = _snapshot(model)
    _train_steps(model)
    changed = _changed(before["encoder"], _snapshot(model)["encoder"])
    lora_changed = {k for k in changed if not k.startswith("moe.")}
    assert lora_changed == {f"qwen2.layers.1.self_attn.{m}.weight" for m in ("q_proj", "k_proj", "v_proj", "o_proj")}
    assert {k for k in changed if k.startswith("moe.")} >= {"moe.w_in", "moe.w_out", "moe.router.weight"}
    assert not any(k.startswith("bert.") for k in changed)  # the BERT encoder stays as it was


def test_lora_settings_that_match_nothing_are_refused():
    model = _classifier(ModelSettings(tiny={"hidden_size": 32, "num_layers": 2, "num_heads": 2,
                                            "intermediate_size": 64}), TEXTS)
    with pytest.raises(ValueError, match=r"target_modules \['q_proj'\] do not exist"):
        apply_lora(model, LoraSettings(enabled=True, target_modules=["q_proj"]))
    with pytest.raises(ValueError, match=r"modules_to_save \['heads'\] name no module"):
        apply_lora(model, LoraSettings(enabled=True, modules_to_save=["heads"]))
    with pytest.raises(ValueError, match="layers_to_transform=\\[7\\]"):
        apply_lora(model, LoraSettings(enabled=True, layers_to_transform=[7]))


def test_hybrid_lora_training_saves_plain_weights_that_reload(tmp_path, address_data):
    from safetensors.torch import load_file

    cfg = tiny_config(tmp_path, "hybrid-lora", training={"epochs": 1},
                      model={**HYBRID_MODEL, "lora": {"enabled": True, "r": 4, "layers_to_transform": [1],
                                                      "modules_to_save": ["classifier", "crf", "moe"]}})
    out = train(cfg, train_records=address_data["train"][:60], dev_records=address_data["dev"][:20])
    keys = load_file(str(out / "model.safetensors")).keys()
    assert not any("lora" in k or "base_layer" in k or "modules_to_save" in k or "original_module" in k for k in keys)
    assert {"hybrid.moe.w_in", "hybrid.qwen2.layers.1.self_attn.q_proj.weight"} <= set(keys)
    assert TorchTagger.from_dir(out).predict(["浙江省杭州市"]) is not None
