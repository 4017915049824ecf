"""Repository layout, versions and the offline (no Triton) deploy path."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nerwheel.serving.config import parse_config
from nerwheel.serving.deploy import DeployError, deploy
from nerwheel.serving.repository import ModelRepository, RepositoryError, build_repository


def test_build_cpu_repository_bundles_artifacts_and_the_shell(export_v1: Path, tmp_path: Path) -> None:
    repo = build_repository(export_v1, tmp_path / "repo", name="addr", version=4)
    files = sorted(p.name for p in (repo / "addr" / "4").iterdir())
    assert files == ["crf.npz", "model.onnx", "model.py", "nerwheel.json", "tokenizer.json"]
    shell = (repo / "addr" / "4" / "model.py").read_text()
    assert "from nerwheel.serving.backend import model_class" in shell and "def execute" not in shell
    cfg = parse_config((repo / "addr" / "config.pbtxt").read_text())
    assert cfg.name == "addr" and list(cfg.version_policy.specific.versions) == [4]


def test_build_gpu_repository(export_v1: Path, tmp_path: Path) -> None:
    repo = build_repository(export_v1, tmp_path / "repo", name="addr", version=1, variant="gpu")
    assert sorted(p.name for p in repo.iterdir()) == ["addr", "addr_decode", "addr_onnx", "addr_tokenize"]
    assert sorted(p.name for p in (repo / "addr_onnx" / "1").iterdir()) == ["model.onnx"]
    assert (repo / "addr_tokenize" / "1" / "tokenizer.json").is_file()
    assert (repo / "addr_decode" / "1" / "crf.npz").is_file()
    onnx = parse_config((repo / "addr_onnx" / "config.pbtxt").read_text())
    assert list(onnx.output[0].dims) == [-1, -1]
    assert parse_config((repo / "addr" / "config.pbtxt").read_text()).platform == "ensemble"


def test_versions_live_and_never_overwritten(export_v1: Path, tmp_path: Path) -> None:
    root = build_repository(export_v1, tmp_path / "repo", name="addr", version=2)
    repo = ModelRepository(str(root))
    assert repo.models() == ["addr"]
    assert repo.versions("addr") == [2] and repo.next_version("addr") == 3 and repo.live_versions("addr") == [2]
    with pytest.raises(RepositoryError, match="never overwritten"):
        repo.write_version("addr", 2, export_v1)
    assert repo.next_version("other") == 1 and repo.live_versions("other") == []


def test_offline_deploy_writes_next_version_and_points_config_at_it(export_v1: Path, export_v2: Path,
                                                                     tmp_path: Path) -> None:
    root = str(tmp_path / "repo")
    first = deploy(export_v1, root, name="addr")
    second = deploy(export_v2, root, name="addr")
    assert (first.status, first.version, second.status, second.version) == ("written", 1, "written", 2)
    assert second.previous_versions == [1] and second.live_versions == [2]
    repo = ModelRepository(root)
    assert repo.versions("addr") == [1, 2] and repo.live_versions("addr") == [2]
    assert (Path(root) / "addr" / "1" / "model.onnx").read_bytes() == (export_v1 / "model.onnx").read_bytes()
    assert set(second.files) == {f"addr/2/{f}" for f in
                                 ("crf.npz", "model.onnx", "model.py", "nerwheel.json", "tokenizer.json")}


def test_deploy_refuses_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    with pytest.raises(DeployError, match="neither an export folder"):
        deploy(tmp_path / "junk", str(tmp_path / "repo"))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.onnx").write_bytes(b"x")
    with pytest.raises(RepositoryError, match="missing tokenizer.json, nerwheel.json"):
        deploy(tmp_path / "half", str(tmp_path / "repo"))


def test_keep_prunes_old_versions_but_never_the_live_one(export_v1: Path, tmp_path: Path) -> None:
    root = str(tmp_path / "repo")
    reports = [deploy(export_v1, root, name="addr", keep=2, probe_texts=["杭州市西湖区"]) for _ in range(4)]
    assert [r.pruned for r in reports] == [[], [], [1], [2]]
    repo = ModelRepository(root)
    assert repo.versions("addr") == [3, 4] and repo.live_versions("addr") == [4]
    with pytest.raises(ValueError, match="keep must be >= 1"):
        repo.prune("addr", 0)
    # Rolled-back versions newer than the live one: the live version survives any keep.
    for v in (5, 6):
        repo.write_version("addr", v, tmp_path / "repo" / "addr" / "4")
    assert repo.prune("addr", 1) == [3, 5] and repo.versions("addr") == [4, 6]


def _deploy_at_once(export: Path, root: str, n: int) -> list:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: deploy(export, root, name="addr", probe_texts=["杭州市西湖区"]), range(n)))


@pytest.mark.parametrize("where", ["local", "s3"])
def test_concurrent_deploys_get_distinct_versions(where: str, export_v1: Path, tmp_path: Path,
                                                  request: pytest.FixtureRequest) -> None:
    """Deploys racing on one repository never share (or overwrite) a version number."""
    root = f"{request.getfixturevalue('s3_bucket')}/repo" if where == "s3" else str(tmp_path / "repo")
    reports = _deploy_at_once(export_v1, root, 4)
    assert [r.status for r in reports] == ["written"] * 4
    assert sorted(r.version for r in reports) == [1, 2, 3, 4]
    repo = ModelRepository(root)
    assert repo.versions("addr") == [1, 2, 3, 4] and repo.live_versions("addr")[0] in (1, 2, 3, 4)
    for r in reports:  # every version is whole: its own files, checksums as uploaded
        assert set(r.files) == {f"addr/{r.version}/{f}" for f in
                                ("crf.npz", "model.onnx", "model.py", "nerwheel.json", "tokenizer.json")}
        for rel, digest in r.files.items():
            assert repo.storage.sha256(f"{root}/{rel}") == digest


def test_a_claimed_but_unwritten_version_is_skipped(export_v1: Path, tmp_path: Path) -> None:
    """A deploy that died after claiming its number leaves a gap, never a reused number."""
    root = str(tmp_path / "repo")
    repo = ModelRepository(root)
    assert repo.claim_version("addr") == 1 and repo.versions("addr") == []
    assert deploy(export_v1, root, name="addr", probe_texts=["杭州市西湖区"]).version == 2
    assert repo.next_version("addr") == 3 and repo.versions("addr") == [2]
