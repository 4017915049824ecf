"""The package list in pyproject.toml is explicit (because of the folder mapping): keep it complete."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> tuple[set[str], dict[str, str]]:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return set(cfg["packages"]), cfg["package-dir"]


def test_every_package_folder_is_declared():
    declared, mapping = _declared()
    found = set()
    for prefix, folder in mapping.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            if any(part.startswith((".", "_")) for part in rel.parts):
                continue
            found.add(".".join([prefix, *rel.parts]))
    missing = sorted(found - declared)
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_mapped_namespaces_import_from_their_folders():
    import nerwheel.components
    import nerwheel.pipelines
    import nerwheel.serving

    assert Path(nerwheel.serving.__file__).parent == ROOT / "serving"
    assert Path(nerwheel.pipelines.__file__).parent == ROOT / "pipelines"
    assert Path(nerwheel.components.__file__).parent == ROOT / "components"


def test_the_architecture_doc_states_the_namespace_mapping_pyproject_makes():
    """docs/architecture.md tells users where components/, pipelines/ and serving/ live in `nerwheel`."""
    _, mapping = _declared()
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for package, folder in mapping.items():
        assert f"| `{folder.rstrip('/')}/` | `{package}` |" in doc, f"docs/architecture.md: add `{folder}/` -> {package}"
