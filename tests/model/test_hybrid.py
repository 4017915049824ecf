"""The bert-moe-qwen2 encoder: top-k gating, the balancing loss, the forward pass, training, ONNX parity."""

from __future__ import annotations

import pytest
import torch

from model_config import HYBRID_MODEL, tiny_config
from nerwheel import metrics as M
from nerwheel.model.card import ModelCard
from nerwheel.model.moe import MoEBlock, balancing_loss
from nerwheel.model.runtime import OnnxTagger, TorchTagger


def _block(seed: int = 0, **kw) -> MoEBlock:
    torch.manual_seed(seed)
    return MoEBlock(16, num_experts=kw.pop("num_experts", 5), top_k=kw.pop("top_k", 2), expert_size=24, dropout=0.0,
                    **kw).eval()


def test_top_k_gating_keeps_k_experts_with_renormalised_gates():
    block = _block()
    x = torch.randn(3, 7, 16)
    probs, chosen, gates = block.gates(x)
    assert ((gates > 0).sum(-1) == 2).all()
    torch.testing.assert_close(gates.sum(-1), torch.ones(3, 7))
    top = torch.topk(probs, 2, dim=-1).indices
    assert torch.equal(chosen.sort(-1).values, top.sort(-1).values)
    expected = probs.gather(-1, chosen) / probs.gather(-1, chosen).sum(-1, keepdim=True)
    torch.testing.assert_close(gates.gather(-1, chosen), expected)


def test_an_expert_outside_the_top_k_has_no_effect_on_that_position():
    block = _block(1)
    x = torch.randn(1, 6, 16)
    _, chosen, _ = block.gates(x)
    before = block(x)
    unused = next(e for e in range(5) if e not in chosen[0, 0].tolist())
    used = int(chosen[0, 0, 0])
    with torch.no_grad():  # random changes (a constant shift would vanish in the LayerNorm)
        block.w_out[unused] += torch.randn_like(block.w_out[unused])
    after_unused = block(x)
    torch.testing.assert_close(after_unused[0, 0], before[0, 0])
    with torch.no_grad():
        block.w_out[used] += torch.randn_like(block.w_out[used])
    assert not torch.allclose(block(x)[0, 0], before[0, 0])


def test_balancing_loss_is_one_when_even_and_n_when_collapsed():
    n = 4
    even_probs = torch.full((8, n), 1 / n)
    even_chosen = torch.arange(8).remainder(n)[:, None]  # every expert gets two of eight tokens
    assert balancing_loss(even_probs, even_chosen).item() == pytest.approx(1.0)
    collapsed = torch.zeros(8, n)
    collapsed[:, 0] = 1.0
    assert balancing_loss(collapsed, torch.zeros(8, 1, dtype=torch.long)).item() == pytest.approx(n)
    # padding does not count: the collapsed rows masked out leave the even ones
    probs = torch.cat([even_probs, collapsed])
    chosen = torch.cat([even_chosen, torch.zeros(8, 1, dtype=torch.long)])
    mask = torch.tensor([1] * 8 + [0] * 8)
    assert balancing_loss(probs, chosen, mask).item() == pytest.approx(1.0)


def test_balancing_loss_trains_a_collapsed_router_towards_even():
    block = _block(2, num_experts=4, top_k=1).train()
    x = torch.randn(4, 16, 16)
    x[..., 0] = 3.0  # a constant feature: through it the router sends every position to expert 0
    with torch.no_grad():
        block.router.weight[0, 0] = 1.5
    block(x)
    start = block.aux_loss.item()
    optim = torch.optim.SGD(block.router.parameters(), lr=0.5)
    for _ in range(80):
        block(x)
        optim.zero_grad()
        block.aux_loss.backward()
        optim.step()
    block(x)
    assert start > 3.5 and block.aux_loss.item() < 1.1
    block.eval()
    block(x)
    assert block.aux_loss is None  # no loss in the exported (eval) graph


def _hybrid_encoder(**overrides):
    from transformers import BertConfig, Qwen2Config

    from nerwheel.model.hybrid import BertMoeQwen2Config, BertMoeQwen2Model

    torch.manual_seed(0)
    config = BertMoeQwen2Config(
        bert_config=BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64),
        qwen2_config=Qwen2Config(vocab_size=1, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2),
        **overrides,
    )
    return BertMoeQwen2Model(config)


def test_hybrid_forward_shapes_padding_and_aux_loss():
    model = _hybrid_encoder()
    ids = torch.randint(5, 40, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    model.train()
    out = model(ids, mask).last_hidden_state
    assert out.shape == (2, 9, 48) and model.aux_loss is not None and model.aux_loss.item() > 0
    model.eval()
    batched = model(ids, mask).last_hidden_state
    alone = model(ids[1:, :6], mask[1:, :6]).last_hidden_state
    torch.testing.assert_close(batched[1, :6], alone[0], atol=1e-5, rtol=1e-5)  # padding changes nothing
    frozen = _hybrid_encoder(freeze_moe=True)
    assert not any(p.requires_grad for p in frozen.moe.parameters())
    frozen.train()
    frozen(ids, mask)
    assert frozen.aux_loss is None  # a frozen router is not trained
    with pytest.raises(ValueError, match="top_k=5 must be between 1 and num_experts=4"):
        _hybrid_encoder(top_k=5)


def test_hybrid_reads_bert_and_qwen2_directories(tmp_path, tiny_model, address_data):
    """`hybrid.bert` a BERT folder (here a trained nerwheel folder), `hybrid.qwen2` a Qwen2 folder cut to 2 layers."""
    from safetensors.torch import load_file
    from transformers import Qwen2Config, Qwen2Model

    from nerwheel.model.backbones import load_backbone
    from nerwheel.model.config import ModelSettings

    qwen_dir = tmp_path / "qwen2"
    torch.manual_seed(3)
    Qwen2Model(Qwen2Config(vocab_size=300, hidden_size=48, intermediate_size=96, num_hidden_layers=3,
                           num_attention_heads=4, num_key_value_heads=2)).save_pretrained(qwen_dir)
    settings = ModelSettings(model_id="bert-moe-qwen2",
                             hybrid={"bert": str(tiny_model), "qwen2": str(qwen_dir), "qwen2_layers": 2})
    backbone = load_backbone(settings, texts=[r.text for r in address_data["train"]], sequence_length=64)
    encoder = backbone.encoder
    assert backbone.name == "bert-moe-qwen2" and backbone.info["pretrained"] is True
    assert len(encoder.qwen2.layers) == 2 and encoder.qwen2.embed_tokens.weight.shape[0] == 1
    saved_qwen = load_file(str(qwen_dir / "model.safetensors"))
    torch.testing.assert_close(encoder.qwen2.layers[1].mlp.up_proj.weight, saved_qwen["layers.1.mlp.up_proj.weight"])
    saved_bert = load_file(str(tiny_model / "model.safetensors"))
    torch.testing.assert_close(encoder.bert.encoder.layer[0].attention.self.query.weight,
                               saved_bert["bert.encoder.layer.0.attention.self.query.weight"])
    assert backbone.tokenizer.to_str() == backbone.tokenizer.from_file(str(tiny_model / "tokenizer.json")).to_str()


def test_hybrid_trains_and_exports_with_parity(hybrid_model, address_data, tmp_path):
    from nerwheel.stages.export import export

    card = ModelCard.read(hybrid_model)
    assert card.backbone == "bert-moe-qwen2" and card.decode == {"method": "beam", "beam_size": 4}
    assert card.metrics["test"]["overall"]["strict"]["f1"] >= 0.9
    assert card.training["model"]["hybrid"]["num_experts"] == HYBRID_MODEL["hybrid"]["num_experts"]
    report = export(hybrid_model, tmp_path / "onnx", eval_records=address_data["test"])
    assert report.parity["entities_identical"] and report.parity["max_abs_diff"] < 1e-4
    texts = [r.text for r in address_data["test"]]
    onnx = OnnxTagger(tmp_path / "onnx")
    assert onnx.decoding.method == "beam"
    assert onnx.predict(texts) == TorchTagger.from_dir(hybrid_model).predict(texts)
    assert M.evaluate(address_data["test"], onnx.predict(texts))["overall"]["strict"]["f1"] >= 0.9


def test_hybrid_config_is_checked_before_training(tmp_path):
    from nerwheel.model.config import ConfigError

    with pytest.raises(ConfigError, match="top_k=5 exceeds model.hybrid.num_experts=4"):
        tiny_config(tmp_path, "bad", model={"model_id": "bert-moe-qwen2", "hybrid": {"top_k": 5}})
