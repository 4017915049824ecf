"""nerwheel.storage against local folders and a real S3 protocol server (moto_server)."""

from __future__ import annotations

import hashlib
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nerwheel.storage import ChecksumMismatch, Storage, StorageError, is_s3, join, resolve_endpoint, split_s3


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- URIs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [("s3://bkt/a/b.txt", ("bkt", "a/b.txt")), ("s3://bkt", ("bkt", "")), ("s3://bkt/", ("bkt", ""))],
)
def test_split_s3(uri: str, expected: tuple[str, str]) -> None:
    assert split_s3(uri) == expected


@pytest.mark.parametrize("uri", ["s3://", "s3:///key", "/local/path"])
def test_split_s3_rejects(uri: str) -> None:
    with pytest.raises(StorageError):
        split_s3(uri)


def test_join_keeps_s3_slashes_and_local_paths() -> None:
    assert join("s3://bkt/root/", "a", "/b/", "c.txt") == "s3://bkt/root/a/b/c.txt"
    assert join("/tmp/x", "a", "b") == str(Path("/tmp/x/a/b"))
    assert is_s3("s3://b/k") and not is_s3("/s3/b")


def test_endpoint_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NERWHEEL_S3_ENDPOINT", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://aws-env")
    assert resolve_endpoint() == "http://aws-env"
    monkeypatch.setenv("NERWHEEL_S3_ENDPOINT", "http://nerwheel-env")
    assert resolve_endpoint() == "http://nerwheel-env"
    assert resolve_endpoint("http://arg") == "http://arg"


# -- local ---------------------------------------------------------------------------------------


def test_local_roundtrip_atomic_and_checksummed(tmp_path: Path) -> None:
    st = Storage()
    info = st.write_bytes(tmp_path / "a" / "b.bin", b"hello")
    assert info.sha256 == sha(b"hello") and info.size == 5
    assert st.read_bytes(tmp_path / "a" / "b.bin") == b"hello"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.bin"]  # no temporary sibling left behind
    st.write_text(tmp_path / "a" / "b.bin", "bye")
    assert st.read_text(tmp_path / "a" / "b.bin") == "bye"
    assert st.sha256(tmp_path / "a" / "b.bin") == sha(b"bye")
    with pytest.raises(StorageError, match="no such file"):
        st.read_bytes(tmp_path / "missing")


def test_local_failed_write_keeps_old_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = Storage()
    target = tmp_path / "f.txt"
    st.write_text(target, "old")

    def boom(*a: object, **k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        st.write_text(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_local_dirs(tmp_path: Path) -> None:
    st = Storage()
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.txt").write_text("bb")
    infos = st.upload_dir(src, tmp_path / "dst")
    assert {k: v.sha256 for k, v in infos.items()} == {"a.txt": sha(b"a"), "sub/b.txt": sha(b"bb")}
    assert st.children(tmp_path / "dst") == ["a.txt", "sub"]
    assert st.list(tmp_path / "dst") == [str(tmp_path / "dst" / "a.txt"), str(tmp_path / "dst" / "sub" / "b.txt")]
    with pytest.raises(StorageError, match="refusing to overwrite"):
        st.upload_dir(src, tmp_path / "dst")
    got = st.download_dir(tmp_path / "dst", tmp_path / "copy")
    assert sorted(p.relative_to(tmp_path / "copy").as_posix() for p in got) == ["a.txt", "sub/b.txt"]
    st.delete(tmp_path / "dst", recursive=True)
    assert not st.exists(tmp_path / "dst")


def _race_create(st: Storage, uri: str, writers: int = 8) -> list[bool]:
    """``writers`` threads create ``uri`` at once, each with its own bytes."""
    with ThreadPoolExecutor(writers) as pool:
        return list(pool.map(lambda i: st.create(uri, f"writer {i}".encode()), range(writers)))


def test_local_create_is_create_only(tmp_path: Path) -> None:
    st = Storage()
    won = _race_create(st, str(tmp_path / "claims" / "3.claim"))
    assert won.count(True) == 1
    assert st.read_text(tmp_path / "claims" / "3.claim") == f"writer {won.index(True)}"
    assert st.create(tmp_path / "claims" / "4.claim", b"") is True


# -- S3 (real protocol server) -----------------------------------------------------------------------


@pytest.mark.server
def test_s3_bytes_roundtrip_with_checksum_metadata(s3_server: str, s3_bucket: str) -> None:
    st = Storage(s3_server)
    info = st.write_bytes(f"{s3_bucket}/x/y.bin", b"payload")
    assert info.sha256 == sha(b"payload")
    head = st.s3.head_object(Bucket=split_s3(s3_bucket)[0], Key="x/y.bin")
    assert head["Metadata"]["sha256"] == sha(b"payload")
    assert st.read_bytes(f"{s3_bucket}/x/y.bin") == b"payload"
    assert st.exists(f"{s3_bucket}/x/y.bin") and st.exists(f"{s3_bucket}/x") and not st.exists(f"{s3_bucket}/nope")
    assert st.verify(f"{s3_bucket}/x/y.bin").size == 7


@pytest.mark.server
def test_s3_verify_detects_tampered_object(s3_server: str, s3_bucket: str, tmp_path: Path) -> None:
    st = Storage(s3_server)
    st.write_bytes(f"{s3_bucket}/model.onnx", b"good bytes")
    # Someone rewrites the object behind our back, keeping the old checksum metadata.
    st.s3.put_object(Bucket=split_s3(s3_bucket)[0], Key="model.onnx", Body=b"evil bytes",
                     Metadata={"sha256": sha(b"good bytes")})
    with pytest.raises(ChecksumMismatch, match="recorded"):
        st.verify(f"{s3_bucket}/model.onnx")
    with pytest.raises(ChecksumMismatch, match="do not match"):
        st.download_file(f"{s3_bucket}/model.onnx", tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []  # nothing half-downloaded is left


@pytest.mark.server
def test_s3_upload_verification_failure_deletes_object(
    s3_server: str, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = Storage(s3_server)
    src = tmp_path / "f.bin"
    src.write_bytes(b"abc")
    real_head = st._head

    def lying_head(uri: str, **kw: str | None) -> dict:  # the server reports a different size than we sent
        head = dict(real_head(uri, **kw) or {})
        head["ContentLength"] = 999
        return head

    monkeypatch.setattr(st, "_head", lying_head)
    with pytest.raises(ChecksumMismatch, match="size 999 != 3"):
        st.upload_file(src, f"{s3_bucket}/f.bin")
    monkeypatch.undo()
    assert not st.exists(f"{s3_bucket}/f.bin")


@pytest.mark.server
def test_s3_multipart_upload_checksum(s3_server: str, s3_bucket: str, tmp_path: Path) -> None:
    # 5 MiB is S3's minimum part size: 11 MiB makes a three-part upload.
    st = Storage(s3_server, multipart_chunksize=5 * 1024 * 1024)
    data = os.urandom(11 * 1024 * 1024)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    info = st.upload_file(src, f"{s3_bucket}/big.bin")
    assert info.sha256 == sha(data)
    assert st.sha256(f"{s3_bucket}/big.bin") == sha(data)
    st.download_file(f"{s3_bucket}/big.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == data


@pytest.mark.server
def test_s3_dirs_list_children_delete(s3_server: str, s3_bucket: str, tmp_path: Path) -> None:
    st = Storage(s3_server)
    src = tmp_path / "src"
    (src / "1").mkdir(parents=True)
    (src / "config.pbtxt").write_text("name: 'm'")
    (src / "1" / "model.onnx").write_bytes(b"onnx")
    infos = st.upload_dir(src, f"{s3_bucket}/repo/m")
    assert set(infos) == {"config.pbtxt", "1/model.onnx"}
    assert all(st.verify(i.uri).sha256 == i.sha256 for i in infos.values())
    assert st.children(f"{s3_bucket}/repo/m") == ["1", "config.pbtxt"]
    assert st.children(f"{s3_bucket}/repo") == ["m"]
    assert st.list(f"{s3_bucket}/repo") == [f"{s3_bucket}/repo/m/1/model.onnx", f"{s3_bucket}/repo/m/config.pbtxt"]
    with pytest.raises(StorageError, match="refusing to overwrite"):
        st.upload_dir(src, f"{s3_bucket}/repo/m")
    with st.local_dir(f"{s3_bucket}/repo/m") as local:
        assert (local / "1" / "model.onnx").read_bytes() == b"onnx"
    st.delete(f"{s3_bucket}/repo", recursive=True)
    assert st.list(f"{s3_bucket}/repo") == []


@pytest.mark.server
def test_s3_missing_object_errors_name_the_uri(s3_server: str, s3_bucket: str, tmp_path: Path) -> None:
    st = Storage(s3_server)
    with pytest.raises(StorageError, match=f"{s3_bucket}/nope"):
        st.read_bytes(f"{s3_bucket}/nope")
    with pytest.raises(StorageError, match="nothing there"):
        st.download_dir(f"{s3_bucket}/nope", tmp_path / "x")


def test_missing_objects_are_told_apart_from_unreadable_ones(tmp_path, s3_server):
    """``StorageNotFound`` means "not there"; other failures (here a bucket nobody may read) stay plain errors,
    so a repository reader never mistakes a permission problem for "never deployed"."""
    from nerwheel.storage import Storage, StorageError, StorageNotFound

    st = Storage(endpoint_url=s3_server)
    with pytest.raises(StorageNotFound):
        st.read_bytes(tmp_path / "absent.txt")
    st.ensure_bucket("s3://present")
    with pytest.raises(StorageNotFound):
        st.read_bytes("s3://present/absent.txt")
    with pytest.raises(StorageNotFound):
        st.read_bytes("s3://no-such-bucket-here/x.txt")
    bad = Storage(endpoint_url="http://127.0.0.1:9")  # nothing listens: a network failure, not a missing object
    with pytest.raises(StorageError) as info:
        bad.read_bytes("s3://present/absent.txt")
    assert not isinstance(info.value, StorageNotFound)


@pytest.mark.server
def test_s3_create_is_create_only(s3_server: str, s3_bucket: str) -> None:
    st = Storage(s3_server)
    won = _race_create(st, f"{s3_bucket}/m/3.claim")
    assert won.count(True) == 1  # the conditional PUT (If-None-Match: *) lets exactly one writer in
    assert st.read_text(f"{s3_bucket}/m/3.claim") == f"writer {won.index(True)}"
    with pytest.raises(StorageError):  # other errors are not "someone else was first"
        st.create("s3://no-such-bucket-" + uuid.uuid4().hex[:8] + "/k", b"x")


def _race_write(st: Storage, uri: str, writers: int = 8) -> list[str]:
    """``writers`` threads overwrite ``uri`` at once, each with its own bytes; returns each one's checksum."""
    with ThreadPoolExecutor(writers) as pool:
        return list(pool.map(lambda i: st.write_bytes(uri, f"writer {i}".encode() * (i + 1)).sha256, range(writers)))


def test_local_concurrent_writes_last_one_wins_none_fails(tmp_path: Path) -> None:
    """A writer whose file was renamed over by a later one did not fail: each checks its own bytes."""
    st = Storage()
    digests = _race_write(st, str(tmp_path / "config.pbtxt"))
    assert digests == [sha(f"writer {i}".encode() * (i + 1)) for i in range(8)]
    assert st.sha256(tmp_path / "config.pbtxt") in digests
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.pbtxt"]  # no temporary left behind


@pytest.mark.server
def test_s3_concurrent_writes_last_one_wins_none_deleted(s3_server: str, s3_bucket: str) -> None:
    """Verification after a PUT must not mistake a later writer's object for corruption (and delete it)."""
    st = Storage(s3_server)
    digests = _race_write(st, f"{s3_bucket}/m/config.pbtxt")
    assert digests == [sha(f"writer {i}".encode() * (i + 1)) for i in range(8)]
    assert st.verify(f"{s3_bucket}/m/config.pbtxt").sha256 in digests
