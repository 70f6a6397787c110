"""environment.yml (what Binder builds) agrees with pyproject.toml on the package set."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
#: PyPI name -> conda-forge name where the two differ.
CONDA_NAME = {"torch": "pytorch"}
#: What the environment holds beyond psp_lite's runtime dependencies, and why.
EXTRA = {
    "python": "the interpreter (bounded by requires-python)",
    "pip": "installs psp_lite itself",
    "pytorch-cpu": "selects conda-forge's CPU build of pytorch",
    "jupyterlab": "Binder's interface (bounded by the test extra)",
}
SPEC = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(.*)$")


@pytest.fixture(scope="module")
def project() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]


@pytest.fixture(scope="module")
def env() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def conda_specs(env: dict) -> dict[str, str]:
    """conda package name -> its version constraint ('' for none)."""
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name, constraint = SPEC.match(dep.strip()).groups()
            out[name.lower()] = constraint.strip()
    return out


def pip_lines(env: dict) -> list[str]:
    return [line for dep in env["dependencies"] if isinstance(dep, dict)
            for line in dep.get("pip", [])]


def lower_bound(constraint: str) -> Version | None:
    """The version of a single `>=X` conda constraint, else None."""
    m = re.fullmatch(r">=\s*([0-9][0-9A-Za-z.]*)", constraint)
    return Version(m.group(1)) if m else None


def test_conda_forge_only(env: dict) -> None:
    assert env["channels"][0] == "conda-forge"
    assert set(env["channels"]) <= {"conda-forge", "nodefaults"}


def test_every_runtime_dependency_is_in_the_environment_with_a_compatible_bound(
        env: dict, project: dict) -> None:
    specs = conda_specs(env)
    for text in project["dependencies"]:
        req = Requirement(text)
        name = CONDA_NAME.get(canonicalize_name(req.name), canonicalize_name(req.name))
        assert name in specs, f"{req.name} ({name} on conda-forge) is missing in environment.yml"
        bound = lower_bound(specs[name])
        assert bound is not None, f"environment.yml: give {name} a '>=' bound like {text!r}"
        assert bound in req.specifier, \
            f"environment.yml: {name}{specs[name]} allows versions pyproject.toml excludes ({text})"


def test_the_environment_holds_nothing_unexplained(env: dict, project: dict) -> None:
    runtime = {CONDA_NAME.get(canonicalize_name(Requirement(t).name),
                              canonicalize_name(Requirement(t).name))
               for t in project["dependencies"]}
    unexplained = set(conda_specs(env)) - runtime - set(EXTRA)
    assert not unexplained, f"add these to pyproject.toml or to EXTRA here: {unexplained}"


def test_python_and_jupyterlab_bounds_agree(env: dict, project: dict) -> None:
    specs = conda_specs(env)
    assert lower_bound(specs["python"]) in SpecifierSet(project["requires-python"])
    (lab,) = [Requirement(t) for t in project["optional-dependencies"]["test"]
              if canonicalize_name(Requirement(t).name) == "jupyterlab"]
    assert lower_bound(specs["jupyterlab"]) in lab.specifier


def test_pytorch_is_the_cpu_build(env: dict) -> None:
    assert "pytorch-cpu" in conda_specs(env), "Binder has no GPU: ask for conda-forge's CPU build"


def test_psp_lite_is_installed_from_the_repository(env: dict) -> None:
    lines = [line.split("#", 1)[0].strip() for line in pip_lines(env)]
    assert lines in (["-e ."], ["."]), \
        f"the pip section should install only the repository itself, got {lines}"
    assert "pip" in conda_specs(env)
