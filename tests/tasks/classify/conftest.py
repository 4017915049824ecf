"""Fixtures for the classifier tests: the hand-written message set (classify_messages.py), one trained tiny
classifier, one export. Training happens once per session (a few seconds on one core)."""

from __future__ import annotations

from pathlib import Path

import pytest
from classify_messages import train_tiny_classifier, write_message_files


@pytest.fixture(scope="session")
def message_files(tmp_path_factory) -> dict[str, Path]:
    return write_message_files(tmp_path_factory.mktemp("messages"))


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory, message_files) -> Path:
    return train_tiny_classifier(message_files["train"], tmp_path_factory.mktemp("classifiers"))


@pytest.fixture(scope="session")
def tiny_classifier_export(tmp_path_factory, tiny_classifier, message_files):
    from nerwheel.tasks.classify.export import export
    from nerwheel.tasks.classify.formats import read_messages

    gold = read_messages(message_files["eval"]).records
    out = tmp_path_factory.mktemp("classifier-exports") / "tiny"
    return out, export(tiny_classifier, out, "int8", eval_records=gold)
