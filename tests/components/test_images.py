"""Every stage image: pinned base, installs nerwheel with the stage's extras, non-root, no credentials, and
provides what its component runs (sh + python3 + kfp's executor + every package the component imports).

No Docker engine exists here, so the Dockerfiles are read, not built.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("kfp")

from nerwheel.components import STAGES, load  # noqa: E402
from nerwheel.components.images import STAGE_EXTRAS, image, image_name  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "images"
SECRETISH = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL)", re.IGNORECASE)


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_every_stage_and_only_stages_have_an_image() -> None:
    stage_dirs = {p.parent.name for p in IMAGES.glob("*/Dockerfile")}
    assert set(STAGES) <= stage_dirs
    assert stage_dirs - set(STAGES) <= {"triton"}  # the serving image is the only non-stage one
    assert set(STAGE_EXTRAS) == set(STAGES)


@pytest.mark.parametrize("stage", STAGES)
def test_base_image_is_pinned(stage: str) -> None:
    froms = [args for word, args in instructions(IMAGES / stage / "Dockerfile") if word == "FROM"]
    assert len(froms) == 1, "one stage, one base"
    ref = froms[0].split()[0]
    assert "@sha256:" in ref or re.search(r":\d+(\.\d+)+[-\w.]*$", ref), f"{ref}: pin an exact version or digest"
    assert not ref.endswith(":latest")
    if stage == "train":
        assert ref.startswith(("nvidia/cuda:", "pytorch/pytorch:")) and ("cuda" in ref or "cudnn" in ref), ref
    else:
        assert ref.startswith("python:3.11.") and "slim" in ref, ref


@pytest.mark.parametrize("stage", STAGES)
def test_installs_nerwheel_with_the_stage_extras(stage: str) -> None:
    runs = " ".join(args for word, args in instructions(IMAGES / stage / "Dockerfile") if word == "RUN")
    installs = re.findall(r'pip install [^&;]*?"\.\[([a-z0-9,]+)\]"', runs)
    assert len(installs) == 1, f"images/{stage}: expected one pip install of the package with extras"
    assert tuple(installs[0].split(",")) == STAGE_EXTRAS[stage]
    copies = [args for word, args in instructions(IMAGES / stage / "Dockerfile") if word == "COPY"]
    for needed in ("pyproject.toml", "src", "components", "pipelines", "serving"):
        assert any(args.split()[0] == needed for args in copies), f"images/{stage} does not copy {needed}"
    if "train" in STAGE_EXTRAS[stage] and stage != "train":
        assert re.search(r"torch==2\.13\.0", runs), "CPU images install the pinned CPU torch first"


@pytest.mark.parametrize("stage", STAGES)
def test_runs_as_a_non_root_user(stage: str) -> None:
    ins = instructions(IMAGES / stage / "Dockerfile")
    users = [args for word, args in ins if word == "USER"]
    assert users, f"images/{stage}: no USER instruction"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"images/{stage} ends as {users[-1]}"
    assert [w for w, _ in ins][-3:].count("USER") >= 1, "USER comes after every install step"
    last_user = max(i for i, (w, _) in enumerate(ins) if w == "USER")
    assert not [w for w, _ in ins[last_user:] if w == "RUN"], "nothing runs as root after USER"


@pytest.mark.parametrize("stage", STAGES)
def test_no_credentials_are_baked_in(stage: str) -> None:
    for word, args in instructions(IMAGES / stage / "Dockerfile"):
        if word in ("ENV", "ARG", "LABEL"):
            assert not SECRETISH.search(args), f"images/{stage}: {word} {args} looks like a credential"
        if word in ("COPY", "ADD"):
            assert not re.search(r"\.aws|\.ssh|\.netrc|\.env\b|\.pem|id_rsa|credentials", args), args
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("**") if "**" in ignore else 0] == "**", "the build context starts from nothing"
    for pattern in ("**/.env", "**/.aws", "**/*.pem", "**/.netrc"):
        assert pattern in ignore


@pytest.mark.parametrize("stage", STAGES)
def test_component_command_is_one_the_image_provides(stage: str) -> None:
    component = load(stage)
    container = component.component_spec.implementation.container
    assert container.image == image(stage)
    assert container.image.rsplit(":", 1)[0].endswith("/" + image_name(stage)) and image_name(stage).endswith(stage)
    assert container.command[:2] == ["sh", "-ec"]
    script = container.command[2]
    assert "python3 -m kfp.dsl.executor_main" in script and "pip install" not in script
    assert "mktemp" in script and "printf" in script  # coreutils + sh: in every Debian/Ubuntu base
    ins = instructions(IMAGES / stage / "Dockerfile")
    base = next(args for word, args in ins if word == "FROM")
    if not base.startswith("python:"):
        # A CUDA base has no python3 of its own: the image must install one and put it first on PATH.
        runs = " ".join(args for word, args in ins if word == "RUN")
        assert "python3" in runs and "venv" in runs
        assert any(word == "ENV" and "PATH=/opt/venv/bin" in args for word, args in ins)
    assert "kfp" in STAGE_EXTRAS[stage], "kfp.dsl.executor_main comes from the kfp extra"


def _requirements_closure(extras: tuple[str, ...]) -> set[str]:
    """Canonical names of every distribution `pip install "nerwheel[extras]"` brings (from pyproject + metadata)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        todo += [Requirement(r) for r in project["optional-dependencies"][extra]]
    seen: set[str] = {"nerwheel"}
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name == "nerwheel":
            for extra in req.extras:
                todo += [Requirement(r) for r in project["optional-dependencies"][extra]]
            continue
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in ("", *req.extras)):
                todo.append(sub)
    return seen


#: nerwheel modules a component may reach only on a path its stage never takes, with the reason.
OPTIONAL_PATHS: dict[str, dict[str, str]] = {
    # serving.deploy exports a *trained model folder* first; the pipeline always hands deploy an export folder.
    "deploy": {"nerwheel.stages.export": "deploy receives the export stage's ONNX folder"},
    # predict can also wrap a Triton URL; evaluate scores model folders only (production_model_uri is a folder).
    "evaluate": {"nerwheel.serving.client": "production_model_uri is a folder or s3:// prefix, never a Triton URL"},
}

def _dynamic_imports() -> dict[str, list[str]]:
    """``module:attribute`` targets a stage loads by name (importlib), which no import statement shows."""
    from nerwheel.serving.config import ServingOptions

    # serving.deploy computes the offline reference answers with the tagger the served model will use.
    return {"deploy": [ServingOptions().tagger]}


DYNAMIC_IMPORTS = _dynamic_imports()

_PROBE = r"""
import ast, importlib, importlib.util, json, sys
from importlib import metadata
from pathlib import Path

root, starts = Path(sys.argv[1]), json.loads(sys.argv[2])  # {stage: [[start modules], [optional modules]]}


def optional_import(node, parents):
    # an import inside `try: ... except ImportError` is a soft dependency
    for p in parents:
        if isinstance(p, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                or isinstance(h.type, ast.Tuple) and any(getattr(e, "id", "") in ("ImportError", "ModuleNotFoundError")
                                                          for e in h.type.elts) for h in p.handlers):
            return True
    return False


def type_checking(node):
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(path, attr=None):
    # (module, attribute) pairs a module file imports. With attr, only module-level imports plus those inside
    # that top-level class/function and the module's own top-level functions/classes it refers to.
    tree = ast.parse(Path(path).read_text())
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))}
    wanted = set(defs) if attr is None else set()
    todo = [attr] if attr in defs else []
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted.add(name)
        todo += [n.id for n in ast.walk(defs[name]) if isinstance(n, ast.Name) and n.id in defs]
    out = set()
    def walk(node, parents):
        if type_checking(node):
            return
        if parents == [tree] and node in defs.values() and node.name not in wanted:
            return
        if isinstance(node, ast.Import) and not optional_import(node, parents):
            out.update((a.name, None) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and not optional_import(node, parents):
            out.update((node.module, a.name) for a in node.names)
        for child in ast.iter_child_nodes(node):
            walk(child, parents + [node])
    walk(tree, [])
    return out


def is_module(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def reached(starts, optional):
    third_party, done, todo = set(), set(), list(starts)
    while todo:
        key = todo.pop()
        name, _, attr = key.partition(":")
        if key in done or name in optional:
            continue
        done.add(key)
        mod = importlib.import_module(name)
        path = getattr(mod, "__file__", None)
        if not path or not Path(path).resolve().is_relative_to(root):
            continue
        for module, what in imports(path, attr or None):
            top = module.split(".")[0]
            if top == "nerwheel":
                if what and is_module(f"{module}.{what}"):
                    todo.append(f"{module}.{what}")
                else:
                    todo.append(f"{module}:{what}" if what and what != "*" else module)
            elif top not in sys.stdlib_module_names and top != "__future__":
                third_party.add(top)
    return third_party

dists = metadata.packages_distributions()
print(json.dumps({stage: sorted({d for t in reached(start, set(opt)) for d in dists.get(t, [t])})
                  for stage, (start, opt) in starts.items()}))
"""


@pytest.fixture(scope="module")
def reached_packages() -> dict[str, list[str]]:
    """Third-party distributions each component reaches (one interpreter for all stages: imports are slow)."""
    starts = {stage: [[f"nerwheel.components.{stage}", *DYNAMIC_IMPORTS.get(stage, [])],
                      sorted(OPTIONAL_PATHS.get(stage, {}))] for stage in STAGES}
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(REPO), json.dumps(starts)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("stage", STAGES)
def test_every_package_the_component_imports_is_installed_in_its_image(
        stage: str, reached_packages: dict[str, list[str]]) -> None:
    """Follow every nerwheel import (module level and inside functions) from the component file, collect the
    third-party packages imported on the way, and check that the stage image's extras install each of them."""
    from packaging.utils import canonicalize_name

    needed = {canonicalize_name(d) for d in reached_packages[stage]} - {"nerwheel"}
    assert "kfp" in needed  # the probe sees the component's own imports
    provided = _requirements_closure(STAGE_EXTRAS[stage])
    missing = sorted(needed - provided)
    assert not missing, (f"components/{stage}.py reaches imports of {missing}, which its image does not install; "
                         f"add them to the extras {STAGE_EXTRAS[stage]} in pyproject.toml or to images/{stage}")


def test_registry_and_tag_come_from_one_place(tmp_path: Path) -> None:
    env = {"NERWHEEL_IMAGE_REGISTRY": "registry.example.com/ml/", "NERWHEEL_IMAGE_TAG": "2026.1"}
    code = "from nerwheel.components import load; print(load('train').component_spec.implementation.container.image)"
    import os

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}).stdout.strip()
    assert out == "registry.example.com/ml/nerwheel-train:2026.1"


def test_serving_image_runs_the_manifests_tritonserver() -> None:
    """images/triton: pinned Triton base (it provides `tritonserver`), nerwheel installed, non-root, no secrets;
    and it is the image the Deployment runs with the command the manifests give."""
    import yaml

    ins = instructions(IMAGES / "triton" / "Dockerfile")
    (base,) = [args for word, args in ins if word == "FROM"]
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d{2}\.\d{2}-py3", base), base
    runs = " ".join(args for word, args in ins if word == "RUN")
    assert re.search(r'pip install "\.\[serve\]"', runs)
    users = [args for word, args in ins if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert not [args for word, args in ins if word in ("ENV", "ARG") and SECRETISH.search(args)]
    deployment = yaml.safe_load((REPO / "manifests" / "base" / "triton-deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"].rsplit(":", 1)[0].endswith("/nerwheel-triton")
    assert container["command"] == ["tritonserver"]
    uid = int(users[-1].split(":")[0])
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid
