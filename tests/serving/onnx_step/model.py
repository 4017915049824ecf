"""Test stand-in for Triton's onnxruntime backend (absent from the nvidia-pytriton build here).

A python-backend model that runs the version folder's ``model.onnx`` with ONNX
Runtime on CPU: the same graph, inputs and outputs as the GPU layout's
``{name}_onnx`` model, so the real ensemble around it can be loaded and hot
swapped in the real tritonserver.
"""

import json
from pathlib import Path

import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        folder = Path(args["model_repository"]) / args["model_version"]
        self.session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        # the config's inputs: input_ids, attention_mask, and lexicon for a model with lexicon features
        config_inputs = json.loads(args["model_config"])["input"]
        self.inputs = [i["name"] for i in config_inputs]
        # as the onnxruntime backend checks them at load: the same inputs, every fixed graph dimension in the
        # config (batch first; a symbolic dimension matches anything)
        graph = {i.name: [d if isinstance(d, int) else -1 for d in i.shape] for i in self.session.get_inputs()}
        if sorted(graph) != sorted(self.inputs):
            raise ValueError(f"config inputs {self.inputs}, graph inputs {sorted(graph)}")
        for i in config_inputs:
            want = [-1, *(int(d) for d in i["dims"])]
            if len(want) != len(graph[i["name"]]) or any(g not in (-1, w) for g, w in zip(graph[i["name"]], want)):
                raise ValueError(f"input {i['name']}: config dims {want}, graph {graph[i['name']]}")

    def execute(self, requests):
        responses = []
        for request in requests:
            feeds = {n: pb_utils.get_input_tensor_by_name(request, n).as_numpy()
                     for n in self.inputs}
            (emissions,) = self.session.run(["emissions"], feeds)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("emissions", emissions)]))
        return responses
