"""Run a classifier folder's own transformers pipeline where nerwheel cannot be imported; print its answers as JSON.

Started by test_classify_hf.py as ``python hf_classify_run.py < request.json``.
"""

import json
import sys

sys.modules["nerwheel"] = None  # any `import nerwheel...` now fails: the folder's own code must carry everything

import torch  # noqa: E402
from transformers import pipeline  # noqa: E402

request = json.load(sys.stdin)
torch.set_num_threads(1)
folder = request["model"]
clf = pipeline("text-classification", model=folder, trust_remote_code=True)
try:
    pipeline("text-classification", model=folder)
    refused = ""
except ValueError as exc:
    refused = str(exc)
pairs = request["pairs"]
json.dump({
    "pipeline_class": type(clf).__name__,
    "answers": clf([{"message": m, "context": c} for c, m in pairs]),
    "hf_pair_form": clf([{"text": c, "text_pair": m} if c else m for c, m in pairs]),
    "one": clf({"message": pairs[0][1], "context": pairs[0][0]}),
    "message_alone": clf(pairs[0][1]),
    "refused_without_trust": refused,
}, sys.stdout, ensure_ascii=False)
