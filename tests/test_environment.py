"""environment.yml (what Binder builds) agrees with pyproject.toml on the package set, and the
`notebooks` extra gives what the README's local set-up and the tests need (JupyterLab, Voila)."""

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
}
#: What the README's local set-up, `jupyter lab notebooks/` and notebook 08's Voila line need.
NOTEBOOK_TOOLS = {"jupyterlab", "voila", "ipykernel"}
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


def requirements(texts: list[str]) -> dict[str, Requirement]:
    """Canonical name -> requirement."""
    return {canonicalize_name(Requirement(t).name): Requirement(t) for t in texts}


def conda_name(requirement: Requirement) -> str:
    name = canonicalize_name(requirement.name)
    return CONDA_NAME.get(name, name)


@pytest.mark.parametrize("group", ["dependencies", "notebooks extra"])
def test_every_requirement_is_in_the_environment_with_a_compatible_bound(
        env: dict, project: dict, group: str) -> None:
    specs = conda_specs(env)
    texts = (project["dependencies"] if group == "dependencies"
             else project["optional-dependencies"]["notebooks"])
    for text in texts:
        req = Requirement(text)
        name = conda_name(req)
        assert name in specs, f"{req.name} ({name} on conda-forge) is missing in environment.yml"
        bound = lower_bound(specs[name])
        assert bound is not None, f"environment.yml: give {name} a '>=' bound like {text!r}"
        assert bound in req.specifier, \
            f"environment.yml: {name}{specs[name]} allows versions pyproject.toml excludes ({text})"


def test_the_environment_holds_nothing_unexplained(env: dict, project: dict) -> None:
    declared = {conda_name(r) for r in requirements(
        project["dependencies"] + project["optional-dependencies"]["notebooks"]).values()}
    unexplained = set(conda_specs(env)) - declared - set(EXTRA)
    assert not unexplained, f"add these to pyproject.toml or to EXTRA here: {unexplained}"


def test_python_bounds_agree(env: dict, project: dict) -> None:
    assert lower_bound(conda_specs(env)["python"]) in SpecifierSet(project["requires-python"])


def test_the_notebooks_extra_holds_jupyterlab_and_its_dashboard_server(project: dict) -> None:
    extra = requirements(project["optional-dependencies"]["notebooks"])
    assert set(extra) == NOTEBOOK_TOOLS
    assert Version("4.0") in extra["jupyterlab"].specifier  # the widgets' JupyterLab 4 front end


def test_the_test_extra_holds_the_notebooks_extra_with_the_same_bounds(project: dict) -> None:
    # the tests run the notebooks on kernels, in JupyterLab and in Voila
    extras = project["optional-dependencies"]
    test, notebooks = requirements(extras["test"]), requirements(extras["notebooks"])
    missing = set(notebooks) - set(test)
    assert not missing, f"add {sorted(missing)} to the test extra"
    for name, req in notebooks.items():
        assert test[name].specifier == req.specifier, (str(test[name]), str(req))


def test_the_readmes_install_lines_name_extras_that_exist(project: dict) -> None:
    readme = (ROOT / "README.md").read_text()
    named = re.findall(r'pip install -e "\.\[([a-z]+)\]"', readme)
    assert {"test", "notebooks"} <= set(named), named
    assert set(named) <= set(project["optional-dependencies"]), named
    (local,) = [line for line in readme.splitlines() if line.startswith("- **Locally**")]
    assert 'pip install -e ".[notebooks]"' in local and "jupyter lab notebooks/" in local


def test_pytorch_is_the_cpu_build(env: dict) -> None:
    assert "pytorch-cpu" in conda_specs(env), "Binder has no GPU: ask for conda-forge's CPU build"


def test_psp_lite_is_installed_from_the_repository(env: dict) -> None:
    lines = [line.split("#", 1)[0].strip() for line in pip_lines(env)]
    assert lines in (["-e ."], ["."]), \
        f"the pip section should install only the repository itself, got {lines}"
    assert "pip" in conda_specs(env)
