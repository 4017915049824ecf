"""Serving fixtures: small export folders and ONE real Triton for the whole session.

The server reads two repositories at once, a local folder and an ``s3://``
prefix on the session's moto server, so local and S3 deploys share it. Model
names are unique per test (a model name must be unique across repositories).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from serving_exports import export_model, train_tiny


@pytest.fixture(scope="session")
def model_v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained ``tiny`` model folder (``nerwheel train`` output)."""
    return train_tiny(tmp_path_factory.mktemp("models"), seed=1)


@pytest.fixture(scope="session")
def export_v1(model_v1: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_model(model_v1, tmp_path_factory.mktemp("export") / "v1")


@pytest.fixture(scope="session")
def export_v2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second model that answers differently: trained without ``roadno`` labels."""
    model = train_tiny(tmp_path_factory.mktemp("models"), seed=2, drop=["roadno"])
    return export_model(model, tmp_path_factory.mktemp("export") / "v2")


@pytest.fixture(scope="session")
def export_lexicon(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export of a model trained with knowledge-base lexicon features (a third ONNX input, ``lexicon``)."""
    model = train_tiny(tmp_path_factory.mktemp("models"), seed=3, model={"lexicon": {"enabled": True}})
    return export_model(model, tmp_path_factory.mktemp("export") / "lexicon")


@dataclass
class TritonSession:
    server: Any
    local_repo: Path
    s3_repo: str
    s3_endpoint: str

    @property
    def url(self) -> str:
        return self.server.grpc_url


@pytest.fixture(scope="session")
def triton(
    triton_launcher: Callable[..., Any], s3_server: str, tmp_path_factory: pytest.TempPathFactory
) -> TritonSession:
    from nerwheel.storage import Storage

    local = tmp_path_factory.mktemp("repository")
    bucket = f"models-{uuid.uuid4().hex[:8]}"
    storage = Storage(s3_server)
    storage.ensure_bucket(bucket)
    s3_repo = f"s3://{bucket}/triton"
    # Triton refuses to start on a repository path that does not exist; S3 has no empty folders.
    storage.write_text(f"{s3_repo}/README.md", "nerwheel test repository\n")
    server = triton_launcher([local, s3_repo], s3_endpoint=s3_server)
    return TritonSession(server, local, s3_repo, s3_server)


@pytest.fixture
def model_name(request: pytest.FixtureRequest) -> str:
    """A model name unique to the test (Triton model names must be unique across its repositories)."""
    return f"{request.node.name.removeprefix('test_')[:40].replace('[', '_').replace(']', '')}_{uuid.uuid4().hex[:6]}"
