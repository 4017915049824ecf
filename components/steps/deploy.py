"""Deploy step: publish the exported model to Triton and record the version in git.

Thin over :func:`nerwheel.serving.deploy.deploy` (new repository version, load,
verify against the export's own answers, roll back on mismatch) and
:func:`nerwheel.gitops.update_model_version` (the one-line overlay change).
"""

__all__ = ["run"]


def run(*, export_dir: str, scores_path: str, model_name: str, repository_uri: str, triton_url: str,
        gitops_repo_url: str, gitops_path: str, deployment_path: str, report_path: str,
        deployment_uri: str | None = None) -> dict:
    """Deploy ``export_dir`` as the next version of ``model_name`` in ``repository_uri``.

    An empty ``repository_uri`` writes the repository into the deployment artifact itself: its local
    ``deployment_path``, which the KFP launcher uploads to ``deployment_uri`` under the s3:// pipeline
    root after the task, where Triton can read it (so it cannot be loaded by this task). An empty
    ``triton_url`` writes and checks the version without loading it; an empty
    ``gitops_repo_url`` skips the GitOps commit. Returns the deployment record (also written to
    ``deployment_path`` as JSON). Raises when the new version could not be verified.
    """
    from pathlib import Path

    from nerwheel.components.data import read_json
    from nerwheel.errors import ConfigError, NerwheelError
    from nerwheel.serving.deploy import deploy

    from nerwheel import storage

    if repository_uri.strip():
        repository = published = repository_uri.strip()
    else:
        if triton_url.strip():
            raise ConfigError("triton_url is set but repository_uri is empty: Triton can only load a repository it "
                             "can read; set repository_uri (e.g. s3://bucket/triton-repository)")
        repository = str(Path(deployment_path) / "repository")
        published = storage.join(deployment_uri or deployment_path, "repository")
    report = deploy(export_dir, repository, name=model_name, triton_url=triton_url.strip() or None)
    record = {"deploy": report.to_dict(), "repository": published, "gitops": None,
              "metrics": read_json(scores_path).get("overall")}
    if not report.ok:
        _write(record, deployment_path, report_path)
        raise NerwheelError(f"deploy of {model_name} version {report.version} to {repository} ended "
                           f"'{report.status}': {report.error or report.mismatches}")
    if gitops_repo_url.strip():
        from nerwheel.gitops import update_model_version

        change = update_model_version(gitops_repo_url.strip(), report.version, path=gitops_path)
        record["gitops"] = change.record()
    _write(record, deployment_path, report_path)
    return record


def _write(record: dict, deployment_path: str, report_path: str) -> None:
    from pathlib import Path

    from nerwheel.components.data import write_json

    Path(deployment_path).mkdir(parents=True, exist_ok=True)
    write_json(Path(deployment_path) / "deployment.json", record)
    d = record["deploy"]
    lines = [
        f"# Deploy: {d['name']} version {d['version']} is **{d['status']}**",
        "",
        f"- repository: `{record['repository']}`",
        f"- previous versions: {d['previous_versions'] or 'none'}; live now: {d['live_versions']}",
        f"- {d['verification']}",
        f"- files written: {len(d['files'])}",
    ]
    if d.get("error"):
        lines.append(f"- error: {d['error']}")
    g = record.get("gitops")
    if g:
        lines.append(f"- GitOps: `{g['path']}` MODEL_VERSION {g['old']} -> {g['new']}, commit "
                     f"`{(g['commit'] or 'none (already set)')[:12]}` on {g['branch']} of {g['repo_url']}")
    Path(report_path).write_text("\n".join(lines) + "\n", encoding="utf-8")
