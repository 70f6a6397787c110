"""Every notebook opens with Colab/Binder badges for itself and a Colab setup cell, no outputs.

The badges are recomputed here from pyproject.toml's [project.urls] Repository, independently of
scripts/notebook_header.py, which writes them (and is tested on temporary copies below).
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import subprocess
import sys
import types
from contextlib import redirect_stdout
from pathlib import Path

import nbformat
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]
PINNED = re.compile(r"\b(numpy|torch|matplotlib)\s*(==|>=|<=|~=|!=|<|>|@)")
MARKDOWN_LINK = re.compile(r"\]\((https?://[^)\s]+)\)")


def _load_writer() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("notebook_header",
                                                  ROOT / "scripts" / "notebook_header.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


writer = _load_writer()
REAL_FIND_SPEC = importlib.util.find_spec


def repository() -> tuple[str, str]:
    """(URL, 'owner/name') from pyproject.toml, parsed here on its own."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        url = tomllib.load(f)["project"]["urls"]["Repository"].rstrip("/").removesuffix(".git")
    m = re.fullmatch(r"https://github\.com/([^/]+/[^/]+)", url)
    assert m, f"pyproject's Repository must be a GitHub address, got {url!r}"
    return url, m.group(1)


def tagged(nb: nbformat.NotebookNode, tag: str) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if tag in c.get("metadata", {}).get("tags", [])]


def first_code_after_setup(nb: nbformat.NotebookNode) -> int | None:
    setup = tagged(nb, writer.SETUP_TAG)
    return next((i for i, c in enumerate(nb.cells) if c.cell_type == "code" and i not in setup),
                None)


# ----------------------------------------------------------------------------- the notebooks


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_badges_point_at_this_notebook(path: Path) -> None:
    url, slug = repository()
    nb = nbformat.read(path, as_version=4)
    assert tagged(nb, writer.HEADER_TAG) == [0], \
        f"{path.name}: run `python scripts/notebook_header.py` (no badge cell on top)"
    header = nb.cells[0]
    assert header.cell_type == "markdown"
    links = set(MARKDOWN_LINK.findall(header.source))
    colab = f"https://colab.research.google.com/github/{slug}/blob/main/notebooks/{path.name}"
    binder = f"https://mybinder.org/v2/gh/{slug}/HEAD?labpath=notebooks%2F{path.name}"
    assert {colab, binder} <= links, f"{path.name}: badges do not match {url}; rerun the script"
    assert "Open In Colab" in header.source and "Launch Binder" in header.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_setup_cell_installs_psp_lite_in_colab_only_without_pins(path: Path) -> None:
    url, _ = repository()
    nb = nbformat.read(path, as_version=4)
    (index,) = tagged(nb, writer.SETUP_TAG)
    cell = nb.cells[index]
    assert cell.cell_type == "code"
    after = first_code_after_setup(nb)
    assert after is None or index < after, \
        "the setup cell must run before any other code cell (psp_lite is imported there)"
    source = cell.source
    assert '"google.colab" in sys.modules' in source
    assert f"psp-lite @ git+{url}" in source
    assert not PINNED.search(source), f"{path.name}: the setup cell pins a Colab package"
    assert "describe(" in source and "Change runtime type" in source
    # boilerplate a student runs but need not read: collapsed in JupyterLab and in Colab
    assert cell.metadata["jupyter"]["source_hidden"] is True
    assert cell.metadata["cellView"] == "form" and source.startswith("# @title Setup")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_stored_without_outputs(path: Path) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    dirty = [i for i, c in enumerate(raw["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them " \
                      "(python scripts/notebook_header.py does)"


def test_readme_series_table_has_every_notebooks_badges() -> None:
    _, slug = repository()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        colab = f"https://colab.research.google.com/github/{slug}/blob/main/notebooks/{path.name}"
        binder = f"https://mybinder.org/v2/gh/{slug}/HEAD?labpath=notebooks%2F{path.name}"
        assert colab in readme and binder in readme, \
            f"README's series table lacks {path.name}'s badges: run scripts/notebook_header.py"


def test_headers_are_up_to_date() -> None:
    if not NOTEBOOKS:
        pytest.skip("no notebooks yet")
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "notebook_header.py"),
                             "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# ----------------------------------------------------------------------------- the writer


README = """# x

<!-- series-table:start (written by scripts/notebook_header.py) -->
| # | notebook | what it teaches | open | CPU time, smoke | CPU time, default |
|---|---|---|---|---|---|
| 08 | (coming) | The explorer | — | — | — |
| 09 | (coming) | A placeholder | — | — | — |
| 10 | [10_gone](notebooks/10_gone.ipynb) | Removed since | badges | 1 s | 2 s |
<!-- series-table:end -->

## after
"""


def _sample(tmp_path: Path) -> tuple[Path, Path]:
    """A notebooks folder with one authored notebook (with outputs and a stale header), a
    pyproject.toml and a README.md with a series table beside it."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    stale = nbformat.v4.new_markdown_cell("[old badges](https://example.org/x)",
                                          metadata={"tags": [writer.HEADER_TAG]})
    title = nbformat.v4.new_markdown_cell("# 09 · A title\n\nWhat you will learn.")
    banner = nbformat.v4.new_code_cell(
        "from psp_lite.experiments import banner\n\nprint(banner())")
    banner.outputs = [nbformat.v4.new_output("stream", text="SMOKE RUN\n")]
    banner.execution_count = 3
    nb.cells = [stale, title, banner, nbformat.v4.new_code_cell("x = 1")]
    path = folder / "09_sample notebook.ipynb"
    nbformat.write(nb, path)
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\n\n[project.urls]\n'
                         'Repository = "https://github.com/someone/elsewhere.git"\n')
    (tmp_path / "README.md").write_text(README, encoding="utf-8")
    return folder, pyproject


def _args(folder: Path, pyproject: Path) -> list[str]:
    return ["--notebooks", str(folder), "--pyproject", str(pyproject),
            "--readme", str(folder.parent / "README.md")]


def test_writer_inserts_cells_clears_outputs_and_is_idempotent(tmp_path: Path) -> None:
    folder, pyproject = _sample(tmp_path)
    args = _args(folder, pyproject)
    assert writer.main([*args, "--check"]) == 1
    assert writer.main(args) == 0
    path = next(folder.glob("*.ipynb"))
    once, readme_once = path.read_bytes(), (tmp_path / "README.md").read_bytes()
    assert writer.main(args) == 0
    assert path.read_bytes() == once, "a second run must change nothing"
    assert (tmp_path / "README.md").read_bytes() == readme_once
    assert writer.main([*args, "--check"]) == 0

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    kinds = [(c.cell_type, c.metadata.get("tags", [])) for c in nb.cells]
    assert kinds == [("markdown", [writer.HEADER_TAG]), ("markdown", []),
                     ("code", [writer.SETUP_TAG]), ("code", []), ("code", [])]
    assert "example.org" not in nb.cells[0].source
    name = "09_sample%20notebook.ipynb"
    assert (f"https://colab.research.google.com/github/someone/elsewhere/blob/main/notebooks/{name}"
            in nb.cells[0].source)
    assert (f"https://mybinder.org/v2/gh/someone/elsewhere/HEAD?labpath=notebooks%2F{name}"
            in nb.cells[0].source)
    assert "psp-lite @ git+https://github.com/someone/elsewhere\"" in nb.cells[2].source
    assert all(c.outputs == [] and c.execution_count is None
               for c in nb.cells if c.cell_type == "code")


def test_writer_writes_the_readme_series_table(tmp_path: Path) -> None:
    folder, pyproject = _sample(tmp_path)
    readme = tmp_path / "README.md"
    writer.main(_args(folder, pyproject))
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# x\n") and text.endswith("## after\n")
    rows = [line for line in text.splitlines() if line.startswith("| 0") or line.startswith("| 1")]
    assert [r.split("|")[1].strip() for r in rows] == ["08", "09"], \
        "placeholder 08 kept, 09 replaced by the notebook, the vanished 10 dropped"
    assert "(coming) | The explorer" in rows[0]
    row = rows[1]
    assert "[09_sample notebook](notebooks/09_sample%20notebook.ipynb) | A title |" in row
    assert "https://mybinder.org/v2/gh/someone/elsewhere/HEAD?labpath=notebooks%2F09_sample" in row
    assert row.endswith("| not measured | see notebook |")
    readme.write_text(text.replace("not measured | see notebook", "12 s | 3 min"))
    writer.main(_args(folder, pyproject))
    assert "| 12 s | 3 min |" in readme.read_text(encoding="utf-8"), "hand-written times kept"


def test_writer_follows_the_url_in_pyproject(tmp_path: Path) -> None:
    folder, pyproject = _sample(tmp_path)
    args = _args(folder, pyproject)
    writer.main(args)
    pyproject.write_text(pyproject.read_text().replace("someone/elsewhere", "moved/here"))
    assert writer.main([*args, "--check"]) == 1
    writer.main(args)
    nb = nbformat.read(next(folder.glob("*.ipynb")), as_version=4)
    assert len(tagged(nb, writer.HEADER_TAG)) == 1 and len(tagged(nb, writer.SETUP_TAG)) == 1
    assert "moved/here" in nb.cells[0].source and "someone" not in nb.cells[0].source


def test_writer_rejects_a_non_github_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="github.com"):
        writer.badge_urls("https://gitlab.com/a/b", "x.ipynb")


def _run_setup(monkeypatch: pytest.MonkeyPatch, *, colab: bool,
               installed: bool) -> tuple[str, list]:
    """Run the setup cell's code here, as if in Colab or not, with pip replaced by a recorder."""
    calls: list = []
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: REAL_FIND_SPEC(name, *a) if installed else None)
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    out = io.StringIO()
    with redirect_stdout(out):
        exec(writer.setup_source("https://github.com/someone/elsewhere"), {})
    return out.getvalue(), calls


def test_setup_cell_outside_colab_installs_nothing_and_names_the_device(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    text, calls = _run_setup(monkeypatch, colab=False, installed=False)
    assert calls == []
    assert text.startswith("device: ") and "Change runtime type" not in text


def test_setup_cell_in_colab_installs_from_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    text, calls = _run_setup(monkeypatch, colab=True, installed=False)
    assert calls == [[sys.executable, "-m", "pip", "install", "-q",
                      "psp-lite @ git+https://github.com/someone/elsewhere"]]
    cpu_only = importlib.import_module("psp_lite.device").pick_device().type == "cpu"
    assert ("Runtime > Change runtime type" in text) == cpu_only
    _, calls = _run_setup(monkeypatch, colab=True, installed=True)
    assert calls == [], "a second run in the same Colab session installs nothing"


def test_writer_states_class_time_from_the_metadata(tmp_path: Path) -> None:
    folder, pyproject = _sample(tmp_path)
    path = next(folder.glob("*.ipynb"))
    nb = nbformat.read(path, as_version=4)
    nb.metadata[writer.MINUTES_KEY] = {"core": 10, "going_further": 15}
    nbformat.write(nb, path)
    writer.main(_args(folder, pyproject))
    header = nbformat.read(path, as_version=4).cells[0].source
    assert "core: about 10 min; going further: about 15 min" in header
    assert "Open In Colab" in header.splitlines()[0], "the badges stay on the first line"
    assert writer.main([*_args(folder, pyproject), "--check"]) == 0
