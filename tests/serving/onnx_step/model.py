"""Test stand-in for Triton's onnxruntime backend (absent from the nvidia-pytriton build here).

A python-backend model that runs the version folder's ``model.onnx`` with ONNX
Runtime on CPU: the same graph, inputs and outputs as the GPU layout's
``{name}_onnx`` model, so the real ensemble around it can be loaded and hot
swapped in the real tritonserver.
"""

from pathlib import Path

import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        folder = Path(args["model_repository"]) / args["model_version"]
        self.session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])

    def execute(self, requests):
        responses = []
        for request in requests:
            feeds = {n: pb_utils.get_input_tensor_by_name(request, n).as_numpy()
                     for n in ("input_ids", "attention_mask")}
            (emissions,) = self.session.run(["emissions"], feeds)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("emissions", emissions)]))
        return responses
