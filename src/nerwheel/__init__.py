"""nerwheel: a data flywheel that keeps small, fast NER models improving.

Teachers (an LLM, an address knowledge base) label and synthesise data; a
BERT(+CRF) student learns from it, is evaluated, exported to ONNX and served by
Triton; live traffic feeds the next turn.
"""

from nerwheel.records import Entity, Record

__version__ = "0.1.0"
__all__ = ["Entity", "Record", "__version__"]
