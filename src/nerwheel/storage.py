"""Local paths and ``s3://bucket/key`` behind one interface.

Every stage, the pipeline and ``deploy`` read and write artifacts through
:class:`Storage`, so the same code runs on a laptop (plain folders), against a
local S3 server in tests (moto), and against AWS S3, MinIO or Ceph in a
cluster. Two guarantees hold for both kinds of location:

* **Atomic writes.** A reader never sees half a file: locally we write a
  temporary sibling and ``os.replace`` it; on S3 a PUT is atomic per object,
  and an object whose verification fails is deleted again.
  :func:`write_json` is the one way a JSON document (a report, a card, a
  decision record) is written to a local file, with the same guarantee.
* **Checksums.** Every write records the SHA-256 of the bytes (:func:`sha256_file`
  is the one file digest). On S3 it is
  stored as object metadata (``x-amz-meta-sha256``) and sent as the S3
  ``ChecksumSHA256`` so the server rejects corrupted uploads; after the upload
  the object's size, metadata and server checksum are checked.
  :meth:`Storage.verify` re-reads an object and compares it to the stored
  checksum (what a pipeline uses to prove an artifact landed intact).

Credentials never pass through nerwheel: boto3 takes them from the standard
chain (environment, shared config, instance role, Kubernetes secret as env).
The endpoint comes from the ``endpoint_url`` argument, else
``NERWHEEL_S3_ENDPOINT``, else ``AWS_ENDPOINT_URL``, else AWS itself.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from nerwheel.errors import NerwheelError

__all__ = [
    "ChecksumMismatch",
    "ObjectInfo",
    "Storage",
    "StorageError",
    "StorageNotFound",
    "get_storage",
    "is_s3",
    "join",
    "resolve_endpoint",
    "sha256_file",
    "split_s3",
    "write_json",
]

ENDPOINT_ENV = ("NERWHEEL_S3_ENDPOINT", "AWS_ENDPOINT_URL")
SHA256_META = "sha256"  # S3 user metadata key (sent as x-amz-meta-sha256)
_CHUNK = 1 << 20
_REPLACED: dict[str, Any] = {}  # Storage._head's answer when an If-Match no longer holds


class StorageError(NerwheelError, RuntimeError):
    """A storage operation that cannot be completed (missing object, bad URI, refused overwrite)."""


class StorageNotFound(StorageError):
    """The object or file does not exist (as opposed to existing but unreadable: permissions, network)."""


class ChecksumMismatch(StorageError):
    """Stored bytes differ from what was written (or from the checksum recorded with them)."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What was written (or found): location, size in bytes and SHA-256 hex digest."""

    uri: str
    size: int
    sha256: str


# -- URIs ------------------------------------------------------------------------------------------


def is_s3(uri: str | os.PathLike[str]) -> bool:
    return str(uri).startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``; the key may be empty (bucket root)."""
    if not is_s3(uri):
        raise StorageError(f"not an s3:// URI: {uri!r}")
    rest = uri[len("s3://") :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise StorageError(f"s3 URI {uri!r} has no bucket; expected s3://bucket/key")
    return bucket, key


def join(base: str | os.PathLike[str], *parts: str) -> str:
    """Join path parts onto a local path or an s3:// URI (always ``/`` for S3)."""
    base = str(base)
    if is_s3(base):
        out = base.rstrip("/")
        for p in parts:
            p = str(p).strip("/")
            if p:
                out = f"{out}/{p}"
        return out
    return str(Path(base, *parts))


def resolve_endpoint(endpoint_url: str | None = None) -> str | None:
    """The S3 endpoint to use: the argument, else ``NERWHEEL_S3_ENDPOINT``, else ``AWS_ENDPOINT_URL``."""
    if endpoint_url:
        return endpoint_url
    for name in ENDPOINT_ENV:
        if os.environ.get(name):
            return os.environ[name]
    return None


def _local(uri: str | os.PathLike[str]) -> Path:
    s = str(uri)
    return Path(s[len("file://") :] if s.startswith("file://") else s)


def _read_error(uri: str, e: Exception) -> StorageError:
    """A failed S3 read as :class:`StorageNotFound` (no such key or bucket) or :class:`StorageError` (anything
    else: permissions, network, no answer at all)."""
    code = getattr(e, "response", {}).get("Error", {}).get("Code")
    missing = code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket")
    return (StorageNotFound if missing else StorageError)(f"cannot read {uri}: {e}")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a local file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _composite_sha256_b64(path: Path, part_size: int) -> str:
    """S3's checksum of a multipart upload: SHA-256 over the concatenated part digests."""
    digests = []
    with open(path, "rb") as f:
        for part in iter(lambda: f.read(part_size), b""):
            digests.append(hashlib.sha256(part).digest())
    return base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()


# -- the interface -------------------------------------------------------------------------------


class Storage:
    """Read, write, list and copy files and folders at local paths or ``s3://`` URIs.

    One instance holds one S3 client (created on first S3 use), so it is cheap
    to pass around and safe to use from several threads for reads.
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        *,
        region: str | None = None,
        client: Any = None,
        multipart_chunksize: int = 16 * 1024 * 1024,
    ) -> None:
        self.endpoint_url = resolve_endpoint(endpoint_url)
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self._client = client
        self.multipart_chunksize = multipart_chunksize

    # -- S3 plumbing ----------------------------------------------------------------------------
    @property
    def s3(self) -> Any:
        if self._client is None:
            try:
                import boto3
            except ImportError as e:  # pragma: no cover - depends on the install
                raise StorageError("s3:// locations need boto3: pip install 'nerwheel[s3]'") from e
            self._client = boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region)
        return self._client

    def _transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        size = self.multipart_chunksize
        return TransferConfig(multipart_threshold=size, multipart_chunksize=size)

    def _head(self, uri: str, if_match: str | None = None) -> dict[str, Any] | None:
        """The object's metadata; None when missing. With ``if_match`` (an ETag), :data:`_REPLACED`
        when the object is no longer that one (a later writer replaced it)."""
        from botocore.exceptions import ClientError

        bucket, key = split_s3(uri)
        try:
            extra = {"IfMatch": if_match} if if_match else {}
            return self.s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **extra)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            if if_match and code in ("412", "PreconditionFailed"):
                return _REPLACED
            raise

    def _check_uploaded(self, uri: str, local: Path | None, size: int, digest: str,
                        etag: str | None = None) -> ObjectInfo:
        """After an upload: size, recorded sha256 and (when S3 returns one) the server's checksum must match.

        ``etag``: the PUT's answer. When another writer replaced the object in
        between (last writer wins, as on any S3 key), ours is not there to
        check, and must not be deleted: the server already checked our bytes
        against the ``ChecksumSHA256`` the PUT carried.
        """
        head = self._head(uri, if_match=etag)
        if head is _REPLACED:
            return ObjectInfo(uri, size, digest)
        problems = []
        if head is None:
            problems.append("object is missing after upload")
        else:
            if head["ContentLength"] != size:
                problems.append(f"size {head['ContentLength']} != {size}")
            recorded = head.get("Metadata", {}).get(SHA256_META)
            if recorded != digest:
                problems.append(f"recorded sha256 {recorded} != {digest}")
            server = head.get("ChecksumSHA256")
            if server:
                server = re.sub(r"-\d+$", "", server)
                whole = base64.b64encode(bytes.fromhex(digest)).decode()
                if server != whole and local is not None and head.get("ChecksumType") != "FULL_OBJECT":
                    whole = _composite_sha256_b64(local, self.multipart_chunksize)
                if server != whole:
                    problems.append(f"server checksum {server} != {whole}")
        if problems:
            with contextlib.suppress(Exception):
                bucket, key = split_s3(uri)
                self.s3.delete_object(Bucket=bucket, Key=key)
            raise ChecksumMismatch(f"upload to {uri} failed verification (object deleted): {'; '.join(problems)}")
        return ObjectInfo(uri, size, digest)

    def check_bucket(self, uri: str) -> None:
        """Raise :class:`StorageNotFound` with one sentence (bucket, endpoint, fix) when ``uri``'s bucket is missing."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket = split_s3(uri)[0]
        where = self.endpoint_url or "AWS S3"
        try:
            self.s3.head_bucket(Bucket=bucket)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise StorageNotFound(
                    f"{uri}: the bucket {bucket!r} does not exist at {where}; create it (aws s3 mb s3://{bucket}"
                    f"{' --endpoint-url ' + self.endpoint_url if self.endpoint_url else ''}) or fix the URI"
                ) from None
            raise StorageError(f"{uri}: cannot use the bucket {bucket!r} at {where} ({code}: "
                               f"{e.response.get('Error', {}).get('Message', '')}); check the credentials") from None
        except BotoCoreError as e:
            raise StorageError(f"{uri}: cannot reach {where} ({e}); check the endpoint") from None

    def ensure_bucket(self, uri_or_bucket: str) -> None:
        """Create the bucket of ``uri_or_bucket`` if it does not exist (local S3 servers, first runs)."""
        from botocore.exceptions import ClientError

        bucket = split_s3(uri_or_bucket)[0] if is_s3(uri_or_bucket) else uri_or_bucket
        try:
            self.s3.head_bucket(Bucket=bucket)
        except ClientError:
            kw: dict[str, Any] = {}
            if self.region != "us-east-1":
                kw["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            self.s3.create_bucket(Bucket=bucket, **kw)

    # -- bytes and text -------------------------------------------------------------------------
    def read_bytes(self, uri: str | os.PathLike[str]) -> bytes:
        uri = str(uri)
        if is_s3(uri):
            from botocore.exceptions import BotoCoreError, ClientError

            bucket, key = split_s3(uri)
            try:
                return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except (BotoCoreError, ClientError) as e:  # BotoCoreError: no answer at all (endpoint down, DNS, TLS)
                raise _read_error(uri, e) from e
        path = _local(uri)
        if not path.is_file():
            raise StorageNotFound(f"cannot read {uri}: no such file")
        return path.read_bytes()

    def read_range(self, uri: str | os.PathLike[str], start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of a file or object (an S3 ranged GET: a shard reads only its part)."""
        uri = str(uri)
        if not 0 <= start <= end:
            raise StorageError(f"cannot read {uri}: bad byte range [{start}, {end})")
        if start == end:
            return b""
        if is_s3(uri):
            from botocore.exceptions import BotoCoreError, ClientError

            bucket, key = split_s3(uri)
            try:
                return self.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}")["Body"].read()
            except (BotoCoreError, ClientError) as e:
                raise _read_error(uri, e) from e
        path = _local(uri)
        if not path.is_file():
            raise StorageNotFound(f"cannot read {uri}: no such file")
        with open(path, "rb") as f:
            f.seek(start)
            return f.read(end - start)

    def iter_bytes(self, uri: str | os.PathLike[str], chunk_size: int = _CHUNK) -> Iterator[bytes]:
        """The content of a file or object in chunks, without holding it whole (one streaming pass)."""
        uri = str(uri)
        if is_s3(uri):
            from botocore.exceptions import BotoCoreError, ClientError

            bucket, key = split_s3(uri)
            try:
                body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
                while chunk := body.read(chunk_size):
                    yield chunk
            except (BotoCoreError, ClientError) as e:
                raise _read_error(uri, e) from e
            return
        path = _local(uri)
        if not path.is_file():
            raise StorageNotFound(f"cannot read {uri}: no such file")
        with open(path, "rb") as f:
            while chunk := f.read(chunk_size):
                yield chunk

    def read_text(self, uri: str | os.PathLike[str], encoding: str = "utf-8") -> str:
        return self.read_bytes(uri).decode(encoding)

    def write_bytes(self, uri: str | os.PathLike[str], data: bytes) -> ObjectInfo:
        """Write ``data`` atomically and verify it; returns its size and checksum."""
        uri = str(uri)
        digest = hashlib.sha256(data).hexdigest()
        if is_s3(uri):
            bucket, key = split_s3(uri)
            answer = self.s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=data,
                Metadata={SHA256_META: digest},
                ChecksumSHA256=base64.b64encode(bytes.fromhex(digest)).decode(),
            )
            return self._check_uploaded(uri, None, len(data), digest, etag=answer.get("ETag"))
        path = _local(uri)
        with _atomic_file(path, expect=(len(data), digest)) as f:
            f.write(data)
        return ObjectInfo(str(path), len(data), digest)

    def write_text(self, uri: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> ObjectInfo:
        return self.write_bytes(uri, text.encode(encoding))

    def create(self, uri: str | os.PathLike[str], data: bytes) -> bool:
        """Write ``data`` only if nothing is at ``uri`` yet; False when something already was.

        This is the one primitive two concurrent writers can use to agree on a
        name (a model version): exactly one of them gets True. Locally it is
        ``O_CREAT | O_EXCL``; on S3 a conditional PUT (``If-None-Match: *``),
        which AWS S3, MinIO and moto honour. A store that ignores the header
        lets both writers win, as a plain ``exists()`` check would.
        """
        uri = str(uri)
        if is_s3(uri):
            from botocore.exceptions import BotoCoreError, ClientError

            bucket, key = split_s3(uri)
            try:
                self.s3.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*",
                                   Metadata={SHA256_META: hashlib.sha256(data).hexdigest()})
            except ClientError as e:
                # 412: the object exists; 409: another conditional PUT of the same key is in flight.
                if e.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                    return False
                raise StorageError(f"cannot create {uri}: {e}") from e
            except BotoCoreError as e:  # no answer at all (endpoint down, DNS, TLS)
                raise StorageError(f"cannot create {uri}: {e}") from e
            return True
        path = _local(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True

    @staticmethod
    def _check_local(path: Path, size: int, digest: str, name: Path | None = None) -> ObjectInfo:
        """``path`` holds ``size`` bytes hashing to ``digest``; errors name ``name`` (the final path) if given."""
        actual = sha256_file(path)
        if actual != digest or path.stat().st_size != size:
            raise ChecksumMismatch(f"{name or path}: written file has sha256 {actual}, expected {digest}")
        return ObjectInfo(str(name or path), size, digest)

    # -- files ----------------------------------------------------------------------------------
    def upload_file(self, local_path: str | os.PathLike[str], uri: str | os.PathLike[str]) -> ObjectInfo:
        """Copy a local file to ``uri`` (local or S3) atomically, with checksum verification."""
        src = Path(local_path)
        uri = str(uri)
        digest, size = sha256_file(src), src.stat().st_size
        if is_s3(uri):
            bucket, key = split_s3(uri)
            self.s3.upload_file(
                str(src),
                bucket,
                key,
                ExtraArgs={"Metadata": {SHA256_META: digest}, "ChecksumAlgorithm": "SHA256"},
                Config=self._transfer_config(),
            )
            return self._check_uploaded(uri, src, size, digest)
        dst = _local(uri)
        with _atomic_file(dst, expect=(size, digest)) as f, open(src, "rb") as r:
            shutil.copyfileobj(r, f, _CHUNK)
        return ObjectInfo(str(dst), size, digest)

    def download_file(self, uri: str | os.PathLike[str], local_path: str | os.PathLike[str]) -> Path:
        """Copy ``uri`` to a local file atomically; S3 objects are checked against their recorded sha256."""
        uri, dst = str(uri), Path(local_path)
        if not is_s3(uri):
            src = _local(uri)
            if not src.is_file():
                raise StorageError(f"cannot read {uri}: no such file")
            with _atomic_file(dst) as f, open(src, "rb") as r:
                shutil.copyfileobj(r, f, _CHUNK)
            return dst
        from botocore.exceptions import ClientError

        bucket, key = split_s3(uri)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            self.s3.download_file(bucket, key, str(tmp), Config=self._transfer_config())
            head = self._head(uri) or {}
            recorded = head.get("Metadata", {}).get(SHA256_META)
            if recorded and sha256_file(tmp) != recorded:
                raise ChecksumMismatch(f"{uri}: downloaded bytes do not match the recorded sha256 {recorded}")
            os.replace(tmp, dst)
        except ClientError as e:
            raise StorageError(f"cannot download {uri}: {e}") from e
        finally:
            tmp.unlink(missing_ok=True)
        return dst

    def size(self, uri: str | os.PathLike[str]) -> int:
        """The size in bytes of a file or object; :class:`StorageNotFound` when there is none."""
        uri = str(uri)
        if is_s3(uri):
            head = self._head(uri)
            if head is None:
                raise StorageNotFound(f"cannot read {uri}: no such object")
            return int(head["ContentLength"])
        path = _local(uri)
        if not path.is_file():
            raise StorageNotFound(f"cannot read {uri}: no such file")
        return path.stat().st_size

    def exists(self, uri: str | os.PathLike[str]) -> bool:
        """True for an existing file/object, or a folder/prefix with anything under it."""
        uri = str(uri)
        if not is_s3(uri):
            return _local(uri).exists()
        if split_s3(uri)[1] and self._head(uri) is not None:
            return True
        return bool(self.list(uri, limit=1))

    def sha256(self, uri: str | os.PathLike[str]) -> str:
        """The recorded checksum of an S3 object (computed for local files)."""
        uri = str(uri)
        if not is_s3(uri):
            return sha256_file(_local(uri))
        head = self._head(uri)
        if head is None:
            raise StorageError(f"{uri}: no such object")
        recorded = head.get("Metadata", {}).get(SHA256_META)
        if not recorded:
            raise StorageError(f"{uri} has no recorded sha256 (not written through nerwheel.storage)")
        return recorded

    def verify(self, uri: str | os.PathLike[str]) -> ObjectInfo:
        """Re-read ``uri`` and check its bytes against the recorded sha256; raises :class:`ChecksumMismatch`."""
        uri = str(uri)
        if not is_s3(uri):
            path = _local(uri)
            return ObjectInfo(uri, path.stat().st_size, sha256_file(path))
        recorded = self.sha256(uri)
        bucket, key = split_s3(uri)
        h, size = hashlib.sha256(), 0
        for block in self.s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(_CHUNK):
            h.update(block)
            size += len(block)
        if h.hexdigest() != recorded:
            raise ChecksumMismatch(f"{uri}: stored bytes have sha256 {h.hexdigest()} but {recorded} was recorded")
        return ObjectInfo(uri, size, recorded)

    def delete(self, uri: str | os.PathLike[str], *, recursive: bool = False) -> None:
        uri = str(uri)
        if not is_s3(uri):
            path = _local(uri)
            if path.is_dir():
                if not recursive:
                    raise StorageError(f"{uri} is a folder; pass recursive=True to delete it")
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
            return
        bucket, key = split_s3(uri)
        keys = [split_s3(u)[1] for u in self.list(uri)] if recursive else [key]
        for i in range(0, len(keys), 1000):
            self.s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]})

    # -- folders --------------------------------------------------------------------------------
    def list(self, uri: str | os.PathLike[str], *, limit: int | None = None) -> list[str]:
        """All files under a folder/prefix (recursively), as sorted full paths/URIs."""
        uri = str(uri)
        if not is_s3(uri):
            root = _local(uri)
            if root.is_file():
                return [str(root)]
            if not root.is_dir():
                return []
            files = sorted(str(p) for p in root.rglob("*") if p.is_file())
            return files[:limit] if limit else files
        bucket, key = split_s3(uri)
        prefix = f"{key.rstrip('/')}/" if key else ""
        out: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                out.append(f"s3://{bucket}/{obj['Key']}")
                if limit and len(out) >= limit:
                    return out
        return sorted(out)

    def children(self, uri: str | os.PathLike[str]) -> list[str]:
        """Names of the immediate entries (files and folders) of a folder/prefix, sorted."""
        uri = str(uri)
        if not is_s3(uri):
            root = _local(uri)
            return sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        bucket, key = split_s3(uri)
        prefix = f"{key.rstrip('/')}/" if key else ""
        names: set[str] = set()
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
        for page in pages:
            names.update(p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", []))
            names.update(o["Key"][len(prefix) :] for o in page.get("Contents", []))
        return sorted(n for n in names if n)

    def upload_dir(
        self, local_dir: str | os.PathLike[str], uri: str | os.PathLike[str], *, overwrite: bool = False
    ) -> dict[str, ObjectInfo]:
        """Copy a local folder to ``uri``; returns ``{relative path: ObjectInfo}`` for every file.

        Locally the folder appears at once (copied to a temporary sibling, then
        renamed). On S3 every object is verified; refuse to write over an
        existing prefix unless ``overwrite``.
        """
        src, uri = Path(local_dir), str(uri)
        if not src.is_dir():
            raise StorageError(f"{src} is not a folder")
        if not overwrite and self.exists(uri):
            raise StorageError(f"{uri} already exists; refusing to overwrite it")
        files = sorted(p for p in src.rglob("*") if p.is_file())
        if not is_s3(uri):
            dst = _local(uri)
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.tmp-{uuid.uuid4().hex[:8]}")
            try:
                shutil.copytree(src, tmp)
                infos = {p.relative_to(src).as_posix(): self._check_local(
                    tmp / p.relative_to(src), p.stat().st_size, sha256_file(p)) for p in files}
                if overwrite and dst.exists():
                    shutil.rmtree(dst)
                os.replace(tmp, dst)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp)
            return {rel: ObjectInfo(str(dst / rel), i.size, i.sha256) for rel, i in infos.items()}
        return {p.relative_to(src).as_posix(): self.upload_file(p, join(uri, p.relative_to(src).as_posix()))
                for p in files}

    def download_dir(self, uri: str | os.PathLike[str], local_dir: str | os.PathLike[str]) -> list[Path]:
        """Copy every file under ``uri`` into ``local_dir`` (created), keeping relative paths."""
        uri, dst = str(uri), Path(local_dir)
        files = self.list(uri)
        if not files:
            raise StorageError(f"{uri}: nothing there to download")
        base = uri.rstrip("/") if is_s3(uri) else str(_local(uri))
        out = []
        for f in files:
            rel = f[len(base) :].lstrip("/")
            out.append(self.download_file(f, dst / rel))
        return out

    @contextlib.contextmanager
    def local_dir(self, uri: str | os.PathLike[str]) -> Iterator[Path]:
        """A local folder with the content of ``uri``: the folder itself, or a temporary download of it."""
        uri = str(uri)
        if not is_s3(uri):
            yield _local(uri)
            return
        with tempfile.TemporaryDirectory(prefix="nerwheel-") as tmp:
            self.download_dir(uri, tmp)
            yield Path(tmp)


@contextlib.contextmanager
def _atomic_file(path: Path, expect: tuple[int, str] | None = None) -> Iterator[IO[bytes]]:
    """Write to a temporary sibling, fsync, then rename over ``path`` (readers see old or new, never half).

    ``expect=(size, sha256)`` checks the temporary file before the rename:
    checked afterwards, a concurrent writer's rename would look like corruption.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if expect is not None:
            Storage._check_local(tmp, *expect, name=path)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | os.PathLike[str], obj: Any, *, sort_keys: bool = False) -> Path:
    """Write ``obj`` as indented UTF-8 JSON (plus a newline) to a local file, atomically; parents are made.

    Values JSON has no type for (a ``Path``, a ``datetime``) are written as their ``str``.
    """
    p = Path(path)
    data = json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=sort_keys, default=str) + "\n"
    with _atomic_file(p) as f:
        f.write(data.encode("utf-8"))
    return p


_DEFAULT: dict[str | None, Storage] = {}


def get_storage(endpoint_url: str | None = None) -> Storage:
    """A shared :class:`Storage` per endpoint (the S3 client is reused)."""
    key = resolve_endpoint(endpoint_url)
    if key not in _DEFAULT:
        _DEFAULT[key] = Storage(key)
    return _DEFAULT[key]
