"""Which model is in production: the one named, or the version live in the Triton repository.

The gate compares a candidate with *the model users are served*. On a cluster
the weekly recurring run has no one to pass ``production_model_uri``, so when
it is empty the live version of ``model_name`` in ``repository_uri`` (the
repository Triton reads and deploy writes) is production: its version folder
holds an export (``model.onnx``, ``nerwheel.json``, the tokenizer), which
:func:`nerwheel.stages.predict.load_predictor` runs. Only a repository with no
live version makes the candidate the first model. The local ``nerwheel run``
and a cluster run both get this through the evaluate step; this module is the
one place that decides it. It is serving knowledge (what Triton serves), so it
lives beside the repository reader, not in the KFP wrapper layer.

Which version is live is read by :func:`nerwheel.serving.repository.live_version`
(the repository's own ``config.pbtxt`` reader), never parsed here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["Production", "find_production", "live_version_uri"]


@dataclass(frozen=True)
class Production:
    """Where the production model is (``uri``; ``None`` = none), how that was decided, in one sentence."""

    uri: str | None
    how: Literal["given", "live", "none", "ignored"]
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def live_version_uri(repository: str, name: str) -> str | None:
    """The folder of the version of ``name`` live in a Triton repository, if any.

    ``repository`` is a local folder, ``s3://bucket/prefix`` or Triton's ``s3://http://host:port/bucket/prefix``
    form (what ``manifests/`` give Triton); the folder returned is in nerwheel's form, read through the tasks'
    own S3 endpoint. A repository that does not exist yet (no folder, or on S3 no bucket) has no live version;
    refused access is an error, never a reason to promote a "first" model.
    """
    from nerwheel import storage
    from nerwheel.errors import ConfigError
    from nerwheel.serving.repository import live_version, resolve_repository

    uri, endpoint = resolve_repository(repository)
    ours = storage.resolve_endpoint()
    if endpoint and endpoint.rstrip("/") != (ours or "").rstrip("/"):
        raise ConfigError(f"repository {repository!r} names the S3 endpoint {endpoint}, but this task reaches S3 "
                         f"through {ours or 'AWS'}; give it as {uri} (the endpoint comes from the environment)")
    s3_errors: tuple[type[Exception], ...] = ()
    if storage.is_s3(uri):
        from botocore.exceptions import ClientError

        s3_errors = (ClientError,)
    try:
        if not storage.get_storage().exists(storage.join(uri, name, "config.pbtxt")):
            return None
    except s3_errors as e:
        if e.response.get("Error", {}).get("Code") == "NoSuchBucket":
            return None
        raise
    version = live_version(uri, name)
    return storage.join(uri, name, str(version)) if version is not None else None


def find_production(production_model_uri: str, repository_uri: str, model_name: str, *,
                    from_repository: bool = True) -> Production:
    """Decide which model the candidate is gated against.

    An explicit ``production_model_uri`` wins. Otherwise, with ``from_repository``,
    the version of ``model_name`` live in ``repository_uri``; with neither, there
    is no production model and the candidate is the first.
    """
    given, repository = production_model_uri.strip(), repository_uri.strip()
    if given:
        return Production(given, "given", f"production_model_uri {given}")
    if not from_repository:
        return Production(None, "ignored", "production_model_uri is empty and the live version was not looked up "
                                           "(production_from_repository is off)")
    if not repository:
        return Production(None, "none", "production_model_uri and repository_uri are both empty")
    live = live_version_uri(repository, model_name)
    if live is None:
        return Production(None, "none", f"{repository} has no live version of {model_name!r}")
    version = live.rstrip("/").rsplit("/", 1)[-1]
    return Production(live, "live", f"version {version} of {model_name!r}, live in {repository}")
