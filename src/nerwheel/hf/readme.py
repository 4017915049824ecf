"""``README.md`` of a model folder: the Hugging Face model card, written from ``nerwheel.json``.

Says what the model is (language, labels, head, backbone), how well it does
on its own dev set, how it was trained, and how to load it with and without
nerwheel. Everything in it comes from the card, so it cannot drift from the
model it describes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["model_card_markdown"]


def _f(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, (int, float)) else "–"


def _front_matter(card: Any) -> list[str]:
    lines = ["---"]
    if card.language:
        lines.append(f"language: {card.language}")
    lines += ["library_name: transformers", "pipeline_tag: token-classification",
              f"tags: [nerwheel, ner, {card.head}" + ("]" if card.head == "span" else f", {card.scheme.lower()}]")]
    strict = (card.metrics.get("dev") or {}).get("overall", {}).get("strict")
    if strict:
        lines += ["model-index:", f"- name: {card.name or 'nerwheel'}", "  results:",
                  "  - task: {type: token-classification}",
                  "    dataset: {type: custom, name: dev split of the training data}",
                  "    metrics:", f"    - {{type: f1, name: strict span F1, value: {strict['f1']}}}",
                  f"    - {{type: precision, name: strict span precision, value: {strict['precision']}}}",
                  f"    - {{type: recall, name: strict span recall, value: {strict['recall']}}}"]
    return [*lines, "---", ""]


def _metrics(card: Any) -> list[str]:
    dev = card.metrics.get("dev") or {}
    o = dev.get("overall") or {}
    if not o:
        return ["No dev-set metrics were recorded for this model.", ""]
    n = card.data.get("dev_records", dev.get("n_records", "?"))
    lines = [f"On its dev set ({n} records, never trained on; seqeval-style strict span matching):", "",
             "| | precision | recall | F1 |", "|---|---|---|---|"]
    for mode in ("strict", "exact", "partial", "type"):
        if mode in o:
            lines.append(f"| {mode} | {_f(o[mode]['precision'])} | {_f(o[mode]['recall'])} | {_f(o[mode]['f1'])} |")
    if "token_accuracy" in o:
        lines.append(f"\nToken accuracy {_f(o['token_accuracy'])}.")
    per_type = dev.get("per_type") or {}
    if per_type:
        lines += ["", "| label | strict F1 | support |", "|---|---|---|"]
        for label, m in sorted(per_type.items(), key=lambda kv: -kv[1]["strict"].get("support", 0)):
            lines.append(f"| {label} | {_f(m['strict']['f1'])} | {m['strict'].get('support', '–')} |")
    test = (card.metrics.get("test") or {}).get("overall", {}).get("strict")
    if test:
        lines += ["", f"On the held-out test file: strict F1 {_f(test['f1'])} (P {_f(test['precision'])}, "
                  f"R {_f(test['recall'])})."]
    return [*lines, ""]


def _training(card: Any) -> list[str]:
    t = card.training or {}
    resolved = t.get("resolved") or {}
    m = card.metrics
    if card.head == "span":
        sp = card.span
        lines = [f"- backbone: `{card.backbone}`; span head (spans up to {sp.get('max_width')} tokens, threshold "
                 f"{sp.get('threshold')}, {'nested' if sp.get('nested') else 'flat'} target spans by default)"]
    else:
        lines = [f"- backbone: `{card.backbone}`; head: {card.head} over {card.scheme} tags; decode: "
                 f"{card.decode.get('method', 'viterbi')}" + (f" (beam {card.decode.get('beam_size')})"
                                                              if card.decode.get("method") == "beam" else "")]
    if resolved:
        lines.append(f"- learning rate {resolved.get('learning_rate')}, at most {resolved.get('epochs')} epochs "
                     f"({resolved.get('source', 'config')})")
    if m.get("epochs_run"):
        lines.append(f"- {m['epochs_run']} epochs run, best epoch {m.get('best_epoch')}"
                     + (" (early stop)" if m.get("stopped_early") else "")
                     + (f", {m['training_seconds']} s" if m.get("training_seconds") is not None else ""))
    tr = t.get("training") or {}
    if tr:
        lines.append(f"- windows of {card.sequence_length} tokens, stride {card.stride}; batch size "
                     f"{tr.get('batch_size')}; seed {tr.get('seed')}")
    data = card.data or {}
    if data.get("train_records") is not None:
        src = (data.get("train_file") or {}).get("path")
        lines.append(f"- data: {data['train_records']} training records, {data.get('dev_records')} dev records"
                     + (f" (from `{src}`)" if src else "") + f"; train sha256 `{str(data.get('train_sha256'))[:16]}…`")
    if card.parent:
        lines.append(f"- continued from `{card.parent.get('path')}` ({card.parent.get('name')}, dev strict F1 "
                     f"{_f(card.parent.get('dev_strict_f1'))})")
    lines.append("- trained with `nerwheel train`; `nerwheel.json` in this folder holds the full record (resolved "
                 "config, data fingerprints, metrics per type)")
    return [*lines, ""]


def _use(card: Any, cli: list[str], python: list[str], same: str, model_class: str) -> list[str]:
    """The "Use it" section: ``cli`` lines, ``python`` lines after the pipeline, what the pipeline shares, the class."""
    return [
        "### With nerwheel", "", "```bash", *cli, "```", "",
        "### With transformers only (no nerwheel needed)", "",
        "```python",
        "from transformers import pipeline",
        'ner = pipeline("token-classification", model="THIS_FOLDER", trust_remote_code=True)',
        'ner("浙江省杭州市西湖区文三路100号")     # [{"start": 0, "end": 3, "label": "prov", "text": "浙江省", ...}, ...]',
        *python, "```", "",
        "The folder carries its own code (`modeling_nerwheel.py`, `pipeline_nerwheel.py` and the `nerwheel_*.py` "
        "modules they import), hence `trust_remote_code=True`. The pipeline returns exactly what `nerwheel predict` "
        f"returns: the same tokenizer, sliding windows of {card.sequence_length} tokens (stride {card.stride}) for "
        f"long texts, {same}.", "",
        "`AutoModelForTokenClassification.from_pretrained(folder, trust_remote_code=True)` gives the model class: "
        + model_class, "",
    ]


def _use_tagger(card: Any) -> list[str]:
    return _use(card, [
        "nerwheel predict --model THIS_FOLDER texts.txt            # span JSONL: {text, entities: [{start, end, label, text, score}]}",
        "nerwheel predict --model THIS_FOLDER texts.txt --n-best 3 # plus the 3 best readings with P(path | text)",
        "nerwheel export --model THIS_FOLDER                       # ONNX (parity-checked), then `nerwheel deploy` to Triton",
    ], ['ner(texts, n_best=3)                    # the 3 best readings per text, each {"score", "entities"}'],
        "the CRF transitions and the tagging scheme's constraints, the same search",
        "`logits` are the per-token emissions, `.decode(input_ids, attention_mask)` the constrained tag path. "
        "Without `trust_remote_code`, `AutoModelForTokenClassification` loads the stock class of the encoder family "
        "(when transformers has one): emissions only, the `crf.*` weights reported as unused, and its argmax is not "
        "this model's output; `pipeline(...)` refuses instead of ignoring the CRF.")


def _use_span(card: Any) -> list[str]:
    return _use(card, [
        "nerwheel predict --model THIS_FOLDER texts.txt                        # flat target spans, span JSONL",
        "nerwheel predict --model THIS_FOLDER texts.txt --nested --extensions  # nested spans, plus extension labels",
        "nerwheel export --model THIS_FOLDER                                   # ONNX (parity-checked), then `nerwheel deploy`",
    ], ["ner(texts, nested=True, extensions=True)  # as --nested --extensions"],
        "the same span selection (`score` is the span's probability)",
        "`logits` are the span scores, `[batch, tokens, max_width * labels]`. Without `trust_remote_code` there is "
        "no span head to load: `AutoModel` gives the encoder alone, and `pipeline(...)` refuses.")


def model_card_markdown(card: Any) -> str:
    """The model card of ``card`` (a :class:`nerwheel.model.card.ModelCard`) as Markdown with YAML front matter."""
    labels = ", ".join(f"`{label}`" for label in card.labels)
    lang = {"zh": "Chinese", "en": "English"}.get(card.language or "", card.language or "")
    what = ("span extractor, overlapping and nested spans included," if card.head == "span" else
            f"tagger with a {'CRF' if card.head == 'crf' else 'softmax'} head")
    lines = _front_matter(card) + [
        f"# {card.name or 'nerwheel NER model'}", "",
        f"A {lang + ' ' if lang else ''}named-entity {what} ({len(card.labels)} labels: {labels}), trained by "
        f"nerwheel from the `{card.backbone}` backbone. Entities come back as character offsets into the text "
        "(`end` exclusive).", "",
        "## Metrics", "", *_metrics(card),
        "## How it was trained", "", *_training(card),
        "## Use it", "", *(_use_span(card) if card.head == "span" else _use_tagger(card)),
    ]
    return "\n".join(lines)


def classifier_card_markdown(card: Any) -> str:
    """The model card of a classifier (a ``ClassifierCard``): classes, dev scores, training, how to load it."""
    labels = ", ".join(f"`{label}`" for label in card.labels)
    dev = card.metrics.get("dev") or {}
    o = dev.get("overall") or {}
    lines = ["---", "library_name: transformers", "pipeline_tag: text-classification",
             "tags: [nerwheel, text-classification]"]
    if o:
        lines += ["model-index:", f"- name: {card.name or 'nerwheel'}", "  results:",
                  "  - task: {type: text-classification}",
                  "    dataset: {type: custom, name: dev split of the training data}", "    metrics:",
                  f"    - {{type: f1, name: macro F1, value: {o['macro']['f1']}}}",
                  f"    - {{type: accuracy, name: accuracy, value: {o['accuracy']}}}"]
    lines += ["---", "", f"# {card.name or 'nerwheel message classifier'}", "",
              f"A message classifier ({len(card.labels)} classes: {labels}), trained by nerwheel from the "
              f"`{card.backbone}` backbone. It reads a message with its optional context (the previous turn) as a "
              f"sentence pair, context first, truncated to {card.max_length} tokens.", "", "## Metrics", ""]
    if o:
        lines += [f"On its dev set ({dev.get('n_records', '?')} messages, never trained on): macro F1 "
                  f"{_f(o['macro']['f1'])} (P {_f(o['macro']['precision'])}, R {_f(o['macro']['recall'])}), "
                  f"accuracy {_f(o['accuracy'])}.", "", "| class | F1 | support |", "|---|---|---|"]
        for label, m in sorted((dev.get("per_class") or {}).items(), key=lambda kv: -kv[1].get("support", 0)):
            lines.append(f"| {label} | {_f(m['f1'])} | {m.get('support', '–')} |")
        test = (card.metrics.get("test") or {}).get("overall") or {}
        if test:
            lines += ["", f"On the held-out test file: macro F1 {_f(test['macro']['f1'])}, accuracy "
                      f"{_f(test['accuracy'])}."]
    else:
        lines.append("No dev-set metrics were recorded for this model.")
    m, data = card.metrics, card.data or {}
    lines += ["", "## How it was trained", "",
              f"- backbone: `{card.backbone}`; learning rate {(card.training or {}).get('resolved_learning_rate')}"]
    if m.get("evaluations"):
        lines.append(f"- {m['evaluations']} evaluations, best step {m.get('best_step')}"
                     + (" (early stop)" if m.get("stopped_early") else "")
                     + (f", {m['training_seconds']} s" if m.get("training_seconds") is not None else ""))
    if data.get("train_records") is not None:
        lines.append(f"- data: {data['train_records']} training messages, {data.get('dev_records')} dev messages")
    lines += ["- trained with `nerwheel train --task classify`; `nerwheel.json` in this folder holds the full record",
              "", "## Use it", "", "### With nerwheel", "", "```bash",
              "nerwheel predict --task classify --model THIS_FOLDER messages.jsonl   # label and probabilities per message",
              "nerwheel export --task classify --model THIS_FOLDER                   # ONNX (parity-checked), then deploy",
              "```", "", "### With transformers only (no nerwheel needed)", "", "```python",
              "from transformers import pipeline",
              'clf = pipeline("text-classification", model="THIS_FOLDER", trust_remote_code=True)',
              'clf("the message")                                    # {"label", "score", "probabilities"}',
              'clf({"message": "the message", "context": "the turn before"})',
              "```", "",
              "The pipeline (`pipeline_classify.py` and the `nerwheel_*.py` modules it imports, hence "
              "`trust_remote_code=True`) returns exactly what nerwheel predicts: the same pair encoding and "
              f"truncation to {card.max_length} tokens, the same softmax. The model itself is the stock "
              "`AutoModelForSequenceClassification` class (`config.id2label` names the classes).", ""]
    return "\n".join(lines)
