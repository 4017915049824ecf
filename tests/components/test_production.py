"""Which model the candidate is gated against: the one named, the version live in the repository, or none.

One home for the lookup (nerwheel.serving.production), used by the evaluate step on a cluster and in
`nerwheel run` alike. Repositories here are made by the tests, locally and on a real moto S3 server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("tritonclient")

from nerwheel.serving.production import find_production, live_version_uri  # noqa: E402
from nerwheel.serving.config import cpu_model_config, with_versions  # noqa: E402
from nerwheel.serving.repository import ModelRepository  # noqa: E402


def make_repository(uri: str, folder: Path, versions: tuple[int, ...], live: tuple[int, ...]) -> None:
    """Version folders (a file each: S3 has no empty folders) and a config.pbtxt that serves ``live``."""
    repo = ModelRepository(uri)
    for v in versions:
        staged = folder / str(v)
        staged.mkdir(parents=True)
        (staged / "model.onnx").write_bytes(b"onnx")
        repo.write_version("nerwheel", v, staged)
    repo.write_config("nerwheel", with_versions(cpu_model_config("nerwheel", live[-1]), list(live)))


def test_the_live_version_not_the_newest_is_production(tmp_path: Path) -> None:
    repo = str(tmp_path / "triton-repository")
    assert live_version_uri(repo, "nerwheel") is None  # no repository yet
    first = find_production("", repo, "nerwheel")
    assert (first.uri, first.how) == (None, "none")
    assert first.note == f"{repo} has no live version of 'nerwheel'"
    make_repository(repo, tmp_path / "staged", (1, 2, 3), live=(2,))  # 3 was written, then rolled back
    assert live_version_uri(repo, "nerwheel") == str(Path(repo) / "nerwheel" / "2")
    prod = find_production("", repo, "nerwheel")
    assert (prod.uri, prod.how, prod.note) == (str(Path(repo) / "nerwheel" / "2"), "live",
                                               f"version 2 of 'nerwheel', live in {repo}")
    assert find_production("", repo, "other").uri is None  # another model name has nothing live


def test_a_named_production_model_wins_and_the_lookup_can_be_turned_off(tmp_path: Path) -> None:
    repo = str(tmp_path / "repo")
    make_repository(repo, tmp_path / "staged", (1,), live=(1,))
    given = find_production(" s3://models/prod ", repo, "nerwheel")
    assert (given.uri, given.how, given.note) == ("s3://models/prod", "given", "production_model_uri s3://models/prod")
    off = find_production("", repo, "nerwheel", from_repository=False)
    assert (off.uri, off.how) == (None, "ignored") and "production_from_repository is off" in off.note
    nowhere = find_production("", "", "nerwheel")
    assert (nowhere.uri, nowhere.how) == (None, "none") and "repository_uri are both empty" in nowhere.note


def test_a_repository_with_versions_but_no_config_has_nothing_live(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "nerwheel" / "1").mkdir(parents=True)  # a deploy that died before writing config.pbtxt
    assert live_version_uri(str(repo), "nerwheel") is None


@pytest.mark.server
def test_live_version_on_s3_and_a_bucket_that_does_not_exist_yet(s3_server: str, tmp_path: Path) -> None:
    from nerwheel.storage import get_storage

    assert live_version_uri("s3://no-such-bucket-yet/triton-repository", "nerwheel") is None  # the first cluster run
    get_storage().ensure_bucket("prod-models")
    repo = "s3://prod-models/triton-repository"
    assert find_production("", repo, "nerwheel").how == "none"
    make_repository(repo, tmp_path / "staged", (1, 2), live=(2,))
    prod = find_production("", repo, "nerwheel")
    assert (prod.uri, prod.how) == (f"{repo}/nerwheel/2", "live")
    with get_storage().local_dir(prod.uri) as folder:  # what the evaluate step hands to load_predictor
        assert (folder / "model.onnx").read_bytes() == b"onnx"
    # the manifests give Triton the repository in its own form; the same string finds the same version
    from nerwheel.serving.server import triton_repository_url

    assert live_version_uri(triton_repository_url(repo, s3_server), "nerwheel") == f"{repo}/nerwheel/2"
    with pytest.raises(ValueError, match=r"names the S3 endpoint http://10.0.0.1:9000, but this task reaches S3 "
                                         rf"through {s3_server}; give it as {repo}"):
        live_version_uri(triton_repository_url(repo, "http://10.0.0.1:9000"), "nerwheel")


@pytest.mark.parametrize("where", ["given", "live"])
def test_a_production_model_that_cannot_run_fails_the_evaluate_step_first(where: str, tmp_path: Path) -> None:
    """Never a silent "first model": the step names the production model and stops before scoring anything."""
    pytest.importorskip("torch")
    from nerwheel.components.steps import evaluate

    repo = str(tmp_path / "repo")
    staged = tmp_path / "staged" / "1"
    staged.mkdir(parents=True)
    (staged / "ENSEMBLE.md").write_text("a GPU ensemble: the export is spread over its step models\n")
    ModelRepository(repo).write_version("nerwheel", 1, staged)
    ModelRepository(repo).write_config("nerwheel", with_versions(cpu_model_config("nerwheel", 1), [1]))
    given = str(tmp_path / "typo" / "model") if where == "given" else ""
    expected = given or str(Path(repo) / "nerwheel" / "1")
    with pytest.raises(FileNotFoundError, match=rf"production model {expected} \(.*\) cannot be evaluated: .*; set "
                                                r"production_model_uri to its export folder"):
        evaluate.run(model_path=str(tmp_path / "candidate-never-read"), eval_uri="", production_model_uri=given,
                     repository_uri=repo, model_name="nerwheel", production_from_repository=True,
                     scores_path=str(tmp_path / "s"), production_scores_path=str(tmp_path / "p"),
                     report_path=str(tmp_path / "r.html"))
    assert not (tmp_path / "s").exists() and not (tmp_path / "p").exists()
