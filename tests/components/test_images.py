"""Every stage image: pinned base, installs nerwheel with the stage's extras, non-root, no credentials, and
provides what its component runs (sh + python3 + kfp's executor + every package the component imports).

The CPU stages share one parametrised Dockerfile (images/stage: ARG BASE, EXTRAS, APT_PACKAGES); train has its
CUDA one. Each check reads the Dockerfile a stage is built from with the stage's build arguments from
components/images.py applied, so it checks that stage's image. No Docker engine exists here, so the
Dockerfiles are read, not built.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("kfp")

from nerwheel.components import STAGES, load  # noqa: E402
from nerwheel.components.images import (  # noqa: E402
    CPU_DOCKERFILE,
    SERVING_DOCKERFILE,
    STAGE_EXTRAS,
    STAGE_IMAGES,
    build_commands,
    image,
    image_name,
    serving_image,
)

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "images"
SECRETISH = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL)", re.IGNORECASE)
_ARG_REF = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


def instructions(dockerfile: Path, build_args: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped; with ``build_args``, every
    ``${ARG}`` of an ARG instruction is replaced by the build argument, else by the ARG's default."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    if build_args is None:
        return out
    values: dict[str, str] = {}
    for word, args in out:
        if word == "ARG":
            name, _, default = args.partition("=")
            values[name] = build_args.get(name, default)
    return [(w, _ARG_REF.sub(lambda m: values.get(m.group(1), m.group(0)), a) if w != "ARG" else a) for w, a in out]


def stage_dockerfile(stage: str) -> Path:
    return REPO / STAGE_IMAGES[stage].dockerfile


def stage_instructions(stage: str) -> list[tuple[str, str]]:
    """The stage's Dockerfile as the stage's build resolves it."""
    return instructions(stage_dockerfile(stage), STAGE_IMAGES[stage].build_args())


def test_every_stage_and_only_stages_have_an_image() -> None:
    assert set(STAGE_IMAGES) == set(STAGES) and set(STAGE_EXTRAS) == set(STAGES)
    used = {STAGE_IMAGES[s].dockerfile for s in STAGES} | {SERVING_DOCKERFILE}
    on_disk = {str(p.relative_to(REPO)) for p in IMAGES.glob("*/Dockerfile")}
    assert used == on_disk, "every Dockerfile is built, and every stage's Dockerfile exists"
    # only training (and distillation, which is training) is CUDA
    assert {s for s in STAGES if STAGE_IMAGES[s].dockerfile != CPU_DOCKERFILE} == {"train", "distill"}


@pytest.mark.parametrize("stage", STAGES)
def test_base_image_is_pinned(stage: str) -> None:
    froms = [args for word, args in stage_instructions(stage) if word == "FROM"]
    assert len(froms) == 1, "one stage, one base"
    ref = froms[0].split()[0]
    assert "$" not in ref, f"{ref}: the base must resolve from the ARG's pinned default"
    assert "@sha256:" in ref or re.search(r":\d+(\.\d+)+[-\w.]*$", ref), f"{ref}: pin an exact version or digest"
    assert not ref.endswith(":latest")
    if STAGE_IMAGES[stage].dockerfile != CPU_DOCKERFILE:  # train and distill: the CUDA image
        assert ref.startswith(("docker.io/nvidia/cuda:", "docker.io/pytorch/pytorch:")), ref
        assert "cuda" in ref or "cudnn" in ref, ref
    else:
        assert ref.startswith("docker.io/library/python:3.11.") and "slim" in ref, ref
    # fully qualified: podman refuses a short name where no unqualified-search registries are set (Debian's default)
    assert ref.split("/")[0] == "docker.io", ref


def test_the_cpu_dockerfile_takes_base_and_extras_and_refuses_a_build_without_extras() -> None:
    ins = instructions(REPO / CPU_DOCKERFILE)
    args = {a.partition("=")[0]: a.partition("=")[2] for w, a in ins if w == "ARG"}
    assert {"BASE", "EXTRAS", "APT_PACKAGES"} <= set(args) and args["EXTRAS"] == ""
    assert [a for w, a in ins if w == "FROM"] == ["${BASE}"]
    runs = " ".join(a for w, a in ins if w == "RUN")
    assert 'test -n "${EXTRAS}" ||' in runs and "exit 1" in runs


@pytest.mark.parametrize("stage", STAGES)
def test_installs_nerwheel_with_the_stage_extras(stage: str) -> None:
    ins = stage_instructions(stage)
    runs = " ".join(args for word, args in ins if word == "RUN")
    installs = re.findall(r'pip install [^&;]*?"\.\[([a-z0-9,]+)\]"', runs)
    assert len(installs) == 1, f"{stage_dockerfile(stage)}: expected one pip install of the package with extras"
    assert tuple(installs[0].split(",")) == STAGE_EXTRAS[stage]
    copies = [args for word, args in ins if word == "COPY"]
    for needed in ("pyproject.toml", "src", "components", "pipelines", "serving"):
        assert any(args.split()[0] == needed for args in copies), f"{stage_dockerfile(stage)} does not copy {needed}"
    if "train" in STAGE_EXTRAS[stage] and STAGE_IMAGES[stage].dockerfile == CPU_DOCKERFILE:
        # the CPU torch is installed when the extras hold train, before nerwheel's own install
        # from the CPU index, or from a folder mounted at build time (TORCH_FIND_LINKS) on machines without it
        runs = re.sub(r"\s+", " ", runs)
        case = re.search(r'case ",([a-z0-9,]+)," in \*,train,\*\) if \[ -n "" \]; then pip install --find-links "" '
                         r'torch==2\.13\.0; else pip install --index-url "\S+" torch==2\.13\.0; fi ;;', runs)
        assert case and case.group(1) == ",".join(STAGE_EXTRAS[stage]), "CPU images install the pinned CPU torch first"
        assert runs.index("torch==2.13.0") < runs.index('pip install ".['), "torch before nerwheel"


@pytest.mark.parametrize("stage", STAGES)
def test_dependencies_are_a_layer_of_their_own_listing_the_stage_extras(stage: str) -> None:
    """The dependency layer comes before the sources are copied (a code change keeps it cached), and its
    requirement list, produced by the Dockerfile's own command, is pyproject's dependencies plus the extras'."""
    ins = stage_instructions(stage)
    words = [w for w, _ in ins]
    run_deps = next(i for i, (w, a) in enumerate(ins) if w == "RUN" and "requirements.txt" in a)
    first_src = next(i for i, (w, a) in enumerate(ins) if w == "COPY" and a.split()[0] == "src")
    assert words.index("COPY") < run_deps < first_src
    assert ins[words.index("COPY")][1].split()[0] == "pyproject.toml"
    command = re.search(r'(python3 -c ".*?") > /tmp/requirements\.txt', ins[run_deps][1]).group(1)
    listed = subprocess.run(["sh", "-c", command.replace("python3", sys.executable, 1)], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.split("\n")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]

    def own(extra: str) -> list[str]:  # an extra's lines, its nested nerwheel[...] extras' lines after the stage's
        return [r for r in extras[extra] if not r.startswith("nerwheel[")]

    nested = [n for e in STAGE_EXTRAS[stage] for r in extras[e] if r.startswith("nerwheel[") for n in r[9:-1].split(",")]
    expected = list(dict.fromkeys(project["dependencies"] + [r for e in (*STAGE_EXTRAS[stage], *nested) for r in own(e)]))
    listed = [x for x in listed if x]
    # pip would look a `nerwheel[...]` line up on the package index (another project, or none): never listed
    assert not [x for x in listed if x.startswith("nerwheel")]
    assert listed == expected


def test_deploy_image_has_git_for_the_gitops_commit() -> None:
    assert "git" in STAGE_IMAGES["deploy"].apt_packages
    runs = " ".join(args for word, args in stage_instructions("deploy") if word == "RUN")
    assert 'if [ -n "git ca-certificates" ]; then apt-get update && apt-get install --yes ' \
           "--no-install-recommends git ca-certificates" in re.sub(r"\s+", " ", runs)


@pytest.mark.parametrize("stage", STAGES)
def test_runs_as_a_non_root_user(stage: str) -> None:
    ins = stage_instructions(stage)
    users = [args for word, args in ins if word == "USER"]
    assert users, f"{stage_dockerfile(stage)}: no USER instruction"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"{stage_dockerfile(stage)} ends as {users[-1]}"
    assert [w for w, _ in ins][-3:].count("USER") >= 1, "USER comes after every install step"
    last_user = max(i for i, (w, _) in enumerate(ins) if w == "USER")
    assert not [w for w, _ in ins[last_user:] if w == "RUN"], "nothing runs as root after USER"


@pytest.mark.parametrize("stage", STAGES)
def test_no_credentials_are_baked_in(stage: str) -> None:
    for name, value in STAGE_IMAGES[stage].build_args().items():
        assert not SECRETISH.search(name) and not SECRETISH.search(value), f"build arg {name}={value}"
    for word, args in stage_instructions(stage):
        if word in ("ENV", "ARG", "LABEL"):
            assert not SECRETISH.search(args), f"{stage_dockerfile(stage)}: {word} {args} looks like a credential"
        if word in ("COPY", "ADD"):
            assert not re.search(r"\.aws|\.ssh|\.netrc|\.env\b|\.pem|id_rsa|credentials", args), args
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("**") if "**" in ignore else 0] == "**", "the build context starts from nothing"
    for pattern in ("**/.env", "**/.aws", "**/*.pem", "**/.netrc"):
        assert pattern in ignore


def test_build_commands_come_from_the_table_and_the_readme_uses_them() -> None:
    commands = {argv[argv.index("-t") + 1]: argv for argv in build_commands()}
    for stage in STAGES:
        argv = commands[image(stage)]
        assert argv[:4] == ["docker", "build", "-f", STAGE_IMAGES[stage].dockerfile] and argv[-1] == "."
        given = dict(argv[i + 1].split("=", 1) for i in range(len(argv)) if argv[i] == "--build-arg")
        assert given == STAGE_IMAGES[stage].build_args()
    assert any(SERVING_DOCKERFILE in argv for argv in commands.values())
    out = subprocess.run([sys.executable, "-m", "nerwheel.components.images"], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert len(out) == len(STAGES) + 1 and all(line.startswith("docker build -f images/") for line in out)
    assert "python -m nerwheel.components.images" in (IMAGES / "README.md").read_text()


@pytest.mark.parametrize("stage", STAGES)
def test_component_command_is_one_the_image_provides(stage: str) -> None:
    component = load(stage)
    container = component.component_spec.implementation.container
    assert container.image == image(stage)
    assert container.image.rsplit(":", 1)[0].endswith("/" + image_name(stage))
    assert image_name(stage).endswith(stage.replace("_", "-"))
    assert container.command[:2] == ["sh", "-ec"]
    script = container.command[2]
    assert "python3 -m kfp.dsl.executor_main" in script and "pip install" not in script
    assert "mktemp" in script and "printf" in script  # coreutils + sh: in every Debian/Ubuntu base
    ins = stage_instructions(stage)
    base = next(args for word, args in ins if word == "FROM")
    if not base.startswith("docker.io/library/python:"):
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

    ins = instructions(IMAGES / "triton" / "Dockerfile", {})  # the defaults: the cluster image
    (base,) = [args for word, args in ins if word == "FROM"]
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d{2}\.\d{2}-py3", base), base
    runs = re.sub(r"\s+", " ", " ".join(args for word, args in ins if word == "RUN"))
    # kb: lexicon-feature models compute KB matches
    assert re.search(r'case "image" in image\) pip install "\.\[serve,kb\]" ;;', runs)
    # the variant for build machines without the NVIDIA image: the wheel's tritonserver in a venv on PATH
    assert 'python3 -m venv /opt/venv && /opt/venv/bin/pip install ".[serve,kb]" ;;' in runs.split("wheel)", 1)[1]
    users = [args for word, args in ins if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert not [args for word, args in ins if word in ("ENV", "ARG") and SECRETISH.search(args)]
    deployment = yaml.safe_load((REPO / "manifests" / "base" / "triton-deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"].rsplit(":", 1)[0].endswith("/nerwheel-triton")
    assert container["command"] == ["tritonserver"]
    uid = int(users[-1].split(":")[0])
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid


def test_build_machine_options_reach_the_build_command_only() -> None:
    """scripts/images.sh build: a local base, the CPU torch wheel folder and the CA bundle are build-time mounts and
    arguments; a stage without the train extra gets no wheel folder."""
    from nerwheel.components.containers import PODMAN_FLAGS, BuildOptions, Engine, build_argv

    podman = Engine("/usr/bin/podman", PODMAN_FLAGS)
    opts = BuildOptions(base="localhost/nerwheel-base:bookworm", wheels="/opt/wheels", ca_bundle="/etc/ca.crt")
    argv = build_argv("export", podman, opts)
    assert argv[:2] == ["/usr/bin/podman", "build"] and argv[2:2 + len(PODMAN_FLAGS)] == list(PODMAN_FLAGS)
    assert "BASE=localhost/nerwheel-base:bookworm" in argv and "TORCH_FIND_LINKS=/tmp/nerwheel-wheels" in argv
    assert "/opt/wheels:/tmp/nerwheel-wheels:ro" in argv and "/etc/ca.crt:/etc/ssl/certs/ca-certificates.crt:ro" in argv
    assert argv[-3:] == ["-t", image("export"), "."]
    shard = build_argv("shard", podman, opts)
    assert not [a for a in shard if "wheels" in a] and "EXTRAS=s3,kfp" in shard
    triton = build_argv("triton", podman, opts)
    assert "SERVER=wheel" in triton and triton[-2] == serving_image()


def test_images_script_failures_are_one_line_and_exit_1(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no podman, no docker
    res = subprocess.run([sys.executable, "-m", "nerwheel.components.containers", "build", "annotate"],
                         capture_output=True, text=True, env=env, cwd=REPO)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == ["Error: no container engine: install podman (apt-get install podman "
                                               "runc) or docker; looked for podman, docker"]


def test_a_stage_check_alone_is_only_for_stages_fed_by_parameters(tmp_path: Path) -> None:
    from nerwheel.components.containers import Engine
    from nerwheel.components.image_check import STAGE_CHECKS, run_stage_check
    from nerwheel.errors import ConfigError

    assert set(STAGE_CHECKS) <= set(STAGES)
    with pytest.raises(ConfigError, match="--stage 'train': .* one of shard, annotate; the others run in the whole"):
        run_stage_check(Engine("podman"), "train", out_dir=tmp_path)
    assert not list(tmp_path.iterdir()), "refused before writing anything"


def test_a_task_whose_container_failed_is_not_taken_for_a_success(tmp_path: Path) -> None:
    """kfp's DockerRunner reports SUCCESS for a container that is gone before its status is read (podman removes
    it at once); the check goes by the executor's own executor_output.json instead."""
    from types import SimpleNamespace

    from nerwheel.components.containers import ImageError
    from nerwheel.components.image_check import _outputs

    out = tmp_path / "task" / "annotated"
    out.mkdir(parents=True)
    task = SimpleNamespace(outputs={"annotated": SimpleNamespace(path=str(out))})
    with pytest.raises(ImageError, match="no executor_output.json beside"):
        _outputs(task, "annotated")
    with pytest.raises(ImageError, match="no output Output"):
        _outputs(task, "annotated", "Output")
    (out.parent / "executor_output.json").write_text("{}")
    assert _outputs(task, "annotated") == [task.outputs["annotated"]]


def test_build_report_keeps_every_image_built_across_runs_and_before_a_failure(tmp_path: Path) -> None:
    """images.sh build IMAGE, run image by image (as on a shared build machine), adds up to one table; an image that
    fails to build stops the run but keeps the images built before it in the report."""
    from nerwheel.components.containers import (PODMAN_FLAGS, BuildOptions, Engine, ImageError, build_images,
                                                record_build)

    engine_exe = tmp_path / "podman"  # builds succeed except gate's; inspect answers a size
    engine_exe.write_text('#!/bin/sh\ncase "$*" in *nerwheel-gate*) echo "no space" >&2; exit 3;; esac\n'
                          '[ "$1" = image ] && echo 12000000\nexit 0\n')
    engine_exe.chmod(0o755)
    engine = Engine(str(engine_exe), PODMAN_FLAGS)
    opts = BuildOptions(base="localhost/nerwheel-base:bookworm", wheels=str(tmp_path))
    report = tmp_path / "report.json"

    def build(*targets: str) -> None:
        build_images(targets, engine, opts, log_dir=tmp_path / "logs", echo=lambda m: None,
                     on_result=lambda r: record_build(report, engine, r))

    build("train")
    build("triton", "shard")
    with pytest.raises(ImageError, match=r"(?s)gate: build failed \(exit 3\).*no space"):
        build("annotate", "gate", "export")
    build("shard")  # a rebuild replaces its entry
    images = json.loads(report.read_text())["build"]["images"]
    assert [i["target"] for i in images] == ["shard", "annotate", "train", "triton"]
    by = {i["target"]: i for i in images}
    assert by["train"]["variant"] == "base localhost/nerwheel-base:bookworm, CPU torch from the wheel folder"
    assert by["triton"]["variant"] == ("base localhost/nerwheel-base:bookworm, tritonserver from the "
                                       "nvidia-pytriton wheel")
    assert by["annotate"]["variant"] == "base localhost/nerwheel-base:bookworm"
    assert by["shard"]["size_bytes"] == 12_000_000
    plain = build_images(["merge"], engine, BuildOptions(), log_dir=tmp_path / "logs",
                         echo=lambda m: None)
    assert plain[0].variant == "the Dockerfile's defaults"


def test_the_wheel_triton_image_has_the_libpython_its_python_backend_stub_links() -> None:
    """SERVER=wheel on a plain Debian base: the pytriton wheel's triton_python_backend_stub needs the shared
    libpython3.11.so.1.0, which python3 alone does not bring (seen: the stub did not start, the model never
    loaded); the image installs libpython3.11 where the base lacks it. The NVIDIA variant is left as it is."""
    def runs(args: dict[str, str]) -> str:
        ins = instructions(IMAGES / "triton" / "Dockerfile", args)
        return re.sub(r"\s+", " ", " ".join(a for w, a in ins if w == "RUN"))

    wheel = runs({"SERVER": "wheel", "BASE": "localhost/nerwheel-base:bookworm"})
    branch = wheel.split("wheel)", 1)[1].split(";;", 1)[0]
    check, install = branch.index('ldconfig -p | grep -q "libpython3\\.11\\.so\\.1\\.0"'), branch.index(
        "apt-get install --yes --no-install-recommends libpython3.11")
    assert check < install < branch.index("python3 -m venv /opt/venv")
    assert "libpython" not in runs({}).split("image)", 1)[1].split(";;", 1)[0]


def test_the_serving_check_names_a_triton_container_that_exited_at_once(tmp_path: Path) -> None:
    """images.sh check: a Triton container that exits (as when its python backend stub could not load) fails the
    check at once with the container's log, instead of waiting out the 600 s readiness budget on a server that is
    gone; the container is removed afterwards."""
    import time

    from nerwheel.components.containers import ImageError
    from nerwheel.components.image_check import _serve

    calls = tmp_path / "calls"
    engine_exe = tmp_path / "podman"
    engine_exe.write_text(f'#!/bin/sh\necho "$1" >> {calls}\ncase "$1" in\n  inspect) echo false;;\n'
                          '  logs) echo "libpython3.11.so.1.0: cannot open shared object file";;\nesac\nexit 0\n')
    engine_exe.chmod(0o755)
    from nerwheel.components.containers import PODMAN_FLAGS, Engine

    t0 = time.monotonic()
    with pytest.raises(ImageError, match=r"(?s)the Triton image exited .*libpython3\.11\.so\.1\.0: cannot open"):
        _serve(Engine(str(engine_exe), PODMAN_FLAGS), str(tmp_path / "repo"), ["x"], tmp_path / "export",
               "nerwheel", lambda m: None, {})
    assert time.monotonic() - t0 < 30
    assert calls.read_text().split() == ["run", "inspect", "logs", "stop", "rm"]


def test_the_served_version_is_the_last_one_a_turn_deployed() -> None:
    """images.sh check serves the repository's live version: a second turn whose gate refused deploys nothing, so
    the first turn's model stays live and is the one served and compared (seen: a refused second turn skipped the
    Triton image altogether); no deployed turn at all leaves nothing to serve."""
    from types import SimpleNamespace

    from nerwheel.components.image_check import live_turn

    def turn(version: int | None) -> SimpleNamespace:
        deployed = version is not None
        return SimpleNamespace(repository="/r" if deployed else None, export_dir="/e" if deployed else None,
                               version=version)

    first, refused, second = turn(1), turn(None), turn(2)
    assert live_turn([first, refused]) is first
    assert live_turn([first, second]) is second
    assert live_turn([refused, refused]) is None and live_turn([]) is None


def test_a_check_starts_from_an_empty_pipeline_root(tmp_path: Path) -> None:
    """A second images.sh check must not find the first one's deployed model live (its first turn would then be a
    feedback turn gated against it): the pipeline root is emptied, and left writable for the images' uid 10001."""
    from nerwheel.components.image_check import fresh_root

    old = tmp_path / "pipeline-root" / "triton-repository" / "nerwheel" / "1"
    old.mkdir(parents=True)
    (old / "model.onnx").write_bytes(b"onnx")
    (tmp_path / "run.log").write_text("earlier run")
    root = fresh_root(tmp_path)
    assert root == tmp_path / "pipeline-root" and not list(root.iterdir())
    assert root.stat().st_mode & 0o777 == 0o777
    assert (tmp_path / "run.log").read_text() == "earlier run"
    assert fresh_root(tmp_path / "new") == tmp_path / "new" / "pipeline-root"
