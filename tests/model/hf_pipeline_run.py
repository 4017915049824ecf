"""Run a model folder's own transformers code where nerwheel cannot be imported; print what it answers as JSON.

Started by test_hf_parity.py as ``python hf_pipeline_run.py < request.json``.
The request names model folders and texts; the answer holds, per folder, the
pipeline's entities for every text, its n-best readings, the model class's
``decode`` tags for the short texts, and what loading without
``trust_remote_code`` says; for each folder under ``refused``, what loading it
with ``trust_remote_code=True`` raises.
"""

import json
import sys

sys.modules["nerwheel"] = None  # any `import nerwheel...` now fails: the folder's own code must carry everything

import torch  # noqa: E402
from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline  # noqa: E402

request = json.load(sys.stdin)
torch.set_num_threads(1)
answer = {}
for folder in request["models"]:
    ner = pipeline("token-classification", model=folder, trust_remote_code=True)
    model = AutoModelForTokenClassification.from_pretrained(folder, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    span = model.config.nerwheel["head"] == "span"
    decoded = []
    for text in request["short_texts"]:
        batch = tokenizer([text], return_tensors="pt")
        if span:  # no tag path: decode() must refuse, saying where spans come from
            try:
                model.decode(batch["input_ids"], batch["attention_mask"])
                decoded.append("decoded")
            except ValueError as exc:
                decoded.append(str(exc))
        else:
            decoded.append(model.decode(batch["input_ids"], batch["attention_mask"])[0])
    try:
        pipeline("token-classification", model=folder)
        refused = ""
    except ValueError as exc:
        refused = str(exc)
    answer[folder] = {
        "pipeline_class": type(ner).__name__, "model_class": type(model).__name__,
        "entities": ner(request["texts"]), "one": ner(request["texts"][0]),
        "decoded": decoded, "refused_without_trust": refused,
    }
    if span:
        answer[folder]["nested_extensions"] = ner(request["texts"], nested=True, extensions=True)
    else:
        answer[folder]["n_best"] = ner(request["texts"][:4], n_best=3)
for folder in request.get("refused", []):  # folders the pipeline must refuse, even with trust_remote_code=True
    try:
        pipeline("token-classification", model=folder, trust_remote_code=True)
        answer[folder] = {"refused_with_trust": ""}
    except Exception as exc:  # noqa: BLE001 - what the user sees is the answer
        answer[folder] = {"refused_with_trust": f"{type(exc).__name__}: {exc}"}
json.dump(answer, sys.stdout, ensure_ascii=False)
