"""Test material for the embedding task (tests/tasks/embed, tests/serving): a small knowledge base and a tiny encoder.

The paragraphs are original (about a made-up bicycle shop), several sentences
each, so inverse cloze has queries to take and splitting has stops to find.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

PARAGRAPHS = [
    "自行车的链条需要定期清洁和上油。骑行五百公里左右应该检查一次链条。链条生锈会让变速不顺畅。",
    "轮胎气压要按照胎壁上标注的范围来打。气压太低容易扎胎，气压太高抓地力会变差。冬天气温低时要经常检查气压。",
    "刹车片磨损到标记线以后必须更换。下雨天刹车距离会变长，下坡时要提前减速。碟刹比圈刹在雨天更可靠。",
    "车座的高度以脚跟踩在踏板最低点时膝盖刚好伸直为准。车座太低会让膝盖疼痛。车座太高骑行时臀部会左右摇晃。",
    "我们店铺提供免费的新车调试服务。购车后三十天内可以随时到店调整变速和刹车。调试不收取任何费用。",
    "头盔在摔车时能保护头部，骑行时一定要佩戴。头盔受过一次严重撞击后就应该更换。选购头盔时要试戴，确认不晃动。",
    "夜间骑行必须打开前灯和尾灯。反光背心能让汽车司机更早看到骑行者。灯的电量要在出门前充满。",
    "山地车适合在土路和山路上骑，车胎宽，有避震前叉。公路车车身轻，轮胎窄，适合在平整的公路上高速骑行。通勤用的城市车一般带挡泥板和货架。",
    "电动助力车的电池充满一次大约可以骑六十公里。电池不要在零度以下的环境里充电。长期不用时电池要保持一半左右的电量。",
    "骑长途之前要准备补胎工具、打气筒和备用内胎。每小时补充一次水分，少量多次地喝。感到头晕时应马上停车休息。",
    "变速器调不准时，链条会在飞轮之间来回跳动。可以先转动后拨的微调螺丝，每次转半圈再试骑。调不好时请带到店里处理。",
    "车架的尺寸要根据身高来选，身高一米七左右一般选中号车架。车架太大上下车不方便。车架太小骑久了腰背会酸。",
    "The shop opens at nine in the morning. Repairs are usually ready the next day. Call us before you come on holidays.",
    "Clean the frame with mild soap and water. Never use a pressure washer on the bearings. Dry the chain after washing.",
]


def char_counter(texts):
    """One token per non-space character (offsets into each text): a tokenizer any test can reason about."""
    return [[(i, i + 1) for i, ch in enumerate(t) if not ch.isspace()] for t in texts]


def tiny_encoder_dir(path: Path, texts: Iterable[str], *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Save a randomly initialised BERT and its character tokenizer as a Hugging Face folder at ``path``."""
    import torch
    from transformers import BertModel

    from nerwheel.model.backbones import save_tokenizer
    from nerwheel.model.tiny import SPECIAL_TOKENS, char_vocab, tiny_config, tiny_tokenizer

    torch.manual_seed(seed)
    tok = tiny_tokenizer(char_vocab(texts))
    config = tiny_config(tok.get_vocab_size(), hidden_size=hidden, num_layers=layers, num_heads=2,
                         intermediate_size=hidden * 2, max_positions=128)
    BertModel(config).save_pretrained(path)
    save_tokenizer(tok, dict(SPECIAL_TOKENS), path, max_length=128)
    return path


def tiny_embed_export(out: Path, texts: Iterable[str], *, seed: int, prompts: dict[str, str] | None = None) -> Path:
    """An ONNX export (``embed export``) of an untrained tiny encoder: enough to test serving, not retrieval."""
    from nerwheel.tasks.embed.export import export_encoder
    from nerwheel.tasks.embed.model import load_encoder

    texts = list(texts)
    model = load_encoder(str(tiny_encoder_dir(out / "hf", texts, seed=seed)), prompts=prompts or {})
    model.save(str(out / "st"))
    return export_encoder(out / "st", out / "onnx").out_dir
