"""Small export folders for serving tests, built here (no training, no ../shared).

:func:`fabricate_export` writes exactly the export contract
(docs/architecture.md): ``model.onnx`` (``input_ids``/``attention_mask`` ->
``emissions``), ``crf.npz``, ``tokenizer.json``, ``nerwheel.json``, from an
embedding + linear layer with seeded random weights. Different seeds give
models that answer differently, which is what version tests need.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LABELS = ("city", "district", "prov", "road", "roadno")
TEXTS = (
    "浙江省杭州市余杭区文一西路969号",
    "北京市海淀区中关村大街27号中关村大厦15层1501室",
    "广东省深圳市南山区科技园南区深南大道10000号",
    "上海市浦东新区张江镇碧波路690号3号楼",
    "四川省成都市武侯区人民南路四段1号",
    "江苏省南京市鼓楼区中山北路30号",
    "湖北省武汉市洪山区珞喻路1037号",
)


def fabricate_export(out: Path, *, seed: int = 0, sequence_length: int = 32, stride: int = 8) -> Path:
    import torch
    from torch import nn

    from nerwheel.decode import CrfParams
    from nerwheel.labels import TagSet
    from nerwheel.model.card import ModelCard
    from nerwheel.model.tiny import char_vocab, tiny_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer(char_vocab(TEXTS))
    tokenizer.save(str(out / "tokenizer.json"))
    tagset = TagSet(LABELS, "BIO")
    num_tags = len(tagset.tags)

    class Toy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(tokenizer.get_vocab_size(), 16)
            self.out = nn.Linear(16, num_tags)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.out(self.emb(input_ids) * attention_mask.unsqueeze(-1).float())

    torch.manual_seed(seed)
    model = Toy().eval()
    ids = torch.ones(2, 8, dtype=torch.long)
    torch.onnx.export(
        model, (ids, torch.ones_like(ids)), str(out / "model.onnx"),
        input_names=["input_ids", "attention_mask"], output_names=["emissions"],
        dynamic_axes={n: {0: "batch", 1: "seq"} for n in ("input_ids", "attention_mask", "emissions")},
        opset_version=17, dynamo=False,
    )
    rng = np.random.default_rng(seed)
    CrfParams(
        rng.normal(size=(num_tags, num_tags)).astype(np.float32),
        rng.normal(size=num_tags).astype(np.float32),
        rng.normal(size=num_tags).astype(np.float32),
    ).save(str(out / "crf.npz"))
    ModelCard.new(tagset, backbone="fixture", sequence_length=sequence_length, stride=stride,
                  name=f"fixture-{seed}").write(out)
    return out
