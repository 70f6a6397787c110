"""Write the Colab/Binder badges and the setup cell at the top of every notebook.

The repository's address is read from one place: pyproject.toml's [project.urls] Repository.
Per notebook this inserts, or brings up to date, two cells recognized by their metadata tags:

  psp-lite-header  markdown, first cell: "Open in Colab" and "Launch Binder" badges for this file,
                   and, where the notebook's metadata has `psp_lite_minutes` ({"core": N,
                   "going_further": M}), a line "core: about N min; going further: about M min"
                   (how long a class takes over the notebook's core and its optional rest)
  psp-lite-setup   code, just before the notebook's first other code cell, its source collapsed
                   (boilerplate a student runs but need not read): in Colab installs
                   psp_lite from the repository (no pins of numpy, torch or matplotlib), elsewhere
                   does nothing; then names the device and tells a Colab user without a GPU how
                   to switch to one

and clears every code cell's outputs and execution count (notebooks are stored without outputs).
It also rewrites the series table in README.md (between the `series-table` markers): one row per
notebook with its title and badges; the CPU-time columns, written by hand, are kept, and so are
placeholder rows (no notebook link) for numbers that have no notebook yet.
A file already in that state is not rewritten, so running this twice changes nothing.

    python scripts/notebook_header.py            # write the cells
    python scripts/notebook_header.py --check    # exit 1 if a notebook is missing or stale
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

import nbformat
from nbformat import NotebookNode

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomli (a dependency of pytest there)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
HEADER_TAG = "psp-lite-header"
SETUP_TAG = "psp-lite-setup"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
BINDER_BADGE = "https://mybinder.org/badge_logo.svg"
TABLE_START = "<!-- series-table:start (written by scripts/notebook_header.py) -->"
TABLE_END = "<!-- series-table:end -->"
TABLE_HEAD = ("| # | notebook | what it teaches | open | CPU time, smoke | CPU time, default |\n"
              "|---|---|---|---|---|---|")

SETUP_SOURCE = '''\
# @title Setup (run it; nothing to read): in Colab it installs psp_lite
# Setup. In Colab: install psp_lite from the repository (Colab's own numpy, torch and
# matplotlib are kept). Anywhere else psp_lite is already installed and this does nothing.
import importlib.util
import subprocess
import sys

IN_COLAB = "google.colab" in sys.modules
PSP_LITE = "{requirement}"
if IN_COLAB and importlib.util.find_spec("psp_lite") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", PSP_LITE], check=True)
    importlib.invalidate_caches()

# Imported only now: in Colab it exists only after the install above.
from psp_lite.device import describe, pick_device  # noqa: E402

print(f"device: {{describe(pick_device())}}")
if IN_COLAB and pick_device().type == "cpu":
    print("No GPU in this Colab runtime. To get one: Runtime > Change runtime type > "
          "Hardware accelerator: GPU (e.g. T4) > Save, then run the notebook again from "
          "the top. Everything also runs on the CPU, only slower.")'''


def repository_url(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The repository's address from pyproject.toml's [project.urls] Repository."""
    with pyproject.open("rb") as f:
        urls = tomllib.load(f).get("project", {}).get("urls", {})
    url = urls.get("Repository")
    if not url:
        raise SystemExit(f"{pyproject}: no [project.urls] Repository entry.")
    return url.rstrip("/").removesuffix(".git")


def github_slug(url: str) -> str:
    """'owner/name' of a https://github.com/owner/name address."""
    parsed = urlparse(url)
    parts = [p for p in parsed.path.split("/") if p]
    if parsed.netloc.lower() not in ("github.com", "www.github.com") or len(parts) != 2:
        raise ValueError("the Repository URL must be https://github.com/<owner>/<name> (Colab "
                         f"and Binder open notebooks from GitHub), got {url!r}.")
    return "/".join(parts)


def badge_urls(url: str, filename: str) -> tuple[str, str]:
    """(Colab, Binder) links that open notebooks/<filename> of the repository at `url`."""
    slug, name = github_slug(url), quote(filename)
    return (f"https://colab.research.google.com/github/{slug}/blob/main/notebooks/{name}",
            f"https://mybinder.org/v2/gh/{slug}/HEAD?labpath=notebooks%2F{name}")


MINUTES_KEY = "psp_lite_minutes"


def minutes_line(minutes: dict | None) -> str:
    """'core: about 10 min; going further: about 15 min' from {"core": 10, "going_further": 15}."""
    if not minutes:
        return ""
    return (f"core: about {minutes['core']} min; "
            f"going further: about {minutes['going_further']} min")


def header_source(url: str, filename: str, minutes: dict | None = None) -> str:
    """The markdown of the badge cell (and the class-time line, given `minutes`)."""
    colab, binder = badge_urls(url, filename)
    badges = (f"[![Open In Colab]({COLAB_BADGE})]({colab}) "
              f"[![Launch Binder]({BINDER_BADGE})]({binder})")
    line = minutes_line(minutes)
    return f"{badges}\n\n**{line}**" if line else badges


def setup_source(url: str) -> str:
    """The code of the setup cell: Colab install of psp_lite from `url`, then the device."""
    return SETUP_SOURCE.format(requirement=f"psp-lite @ git+{url}")


def _tagged(cell: NotebookNode, tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", [])


def _new_cell(nb: NotebookNode, kind: str, source: str, tag: str) -> NotebookNode:
    make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
    cell = make(source, metadata={"tags": [tag]})
    if (nb.nbformat, nb.nbformat_minor) >= (4, 5):
        cell["id"] = tag  # a fixed id keeps the output identical from run to run
    else:
        cell.pop("id", None)
    return cell


def update(nb: NotebookNode, url: str, filename: str) -> NotebookNode:
    """`nb` with fresh header and setup cells and without outputs (a new notebook object)."""
    nb = nbformat.from_dict(nb)
    cells = [c for c in nb.cells if not (_tagged(c, HEADER_TAG) or _tagged(c, SETUP_TAG))]
    for cell in cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    first_code = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
    setup = _new_cell(nb, "code", setup_source(url), SETUP_TAG)
    setup.metadata["cellView"] = "form"  # collapsed: in Colab to its title, in JupyterLab to ...
    setup.metadata["jupyter"] = {"source_hidden": True}
    cells.insert(first_code, setup)
    cells.insert(0, _new_cell(nb, "markdown",
                              header_source(url, filename, nb.metadata.get(MINUTES_KEY)),
                              HEADER_TAG))
    nb.cells = cells
    return nb


def notebook_title(nb: NotebookNode) -> str:
    """The notebook's first '# ' heading without its number ('01 · Weight decay' -> 'Weight
    decay'), or '' if it has none."""
    for cell in nb.cells:
        if cell.cell_type != "markdown" or _tagged(cell, HEADER_TAG):
            continue
        for line in cell.source.splitlines():
            if line.startswith("# "):
                return re.sub(r"^\d+\s*[·:.\-–—]?\s*", "", line[2:].strip())
    return ""


def _cells(row: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def series_table(url: str, notebooks: dict[str, NotebookNode], old: str = "") -> str:
    """The README's series table: a row per notebook, hand-written times and placeholders kept."""
    times: dict[str, list[str]] = {}
    placeholders: dict[str, str] = {}
    for row in old.splitlines()[2:]:
        cells = _cells(row)
        if len(cells) != 6:
            continue
        linked = re.search(r"\(notebooks/([^)]+\.ipynb)\)", cells[1])
        if linked:
            times[unquote(linked.group(1))] = cells[4:]
        else:
            placeholders[cells[0]] = row.strip()
    rows: dict[tuple[str, str], str] = {}
    for name, nb in notebooks.items():
        number = re.match(r"\d+", name)
        key = number.group(0) if number else name
        placeholders.pop(key, None)
        colab, binder = badge_urls(url, name)
        title = notebook_title(nb).replace("|", "\\|") or name
        smoke, default = times.get(name, ["not measured", "see notebook"])
        rows[key, name] = (f"| {key} | [{Path(name).stem}](notebooks/{quote(name)}) | {title} "
                           f"| [![Open In Colab]({COLAB_BADGE})]({colab}) "
                           f"[![Launch Binder]({BINDER_BADGE})]({binder}) | {smoke} | {default} |")
    rows.update({(key, ""): row for key, row in placeholders.items()})
    return "\n".join([TABLE_HEAD, *(rows[k] for k in sorted(rows))])


def update_readme(readme: Path, url: str, notebooks: dict[str, NotebookNode], *,
                  check: bool) -> bool:
    """Rewrite README's series table (or only compare, with `check`); True if it was stale."""
    text = readme.read_text(encoding="utf-8")
    if TABLE_START not in text or TABLE_END not in text:
        raise SystemExit(f"{readme}: no series table markers ({TABLE_START} ... {TABLE_END}).")
    head, rest = text.split(TABLE_START, 1)
    old, tail = rest.split(TABLE_END, 1)
    fresh = f"{head}{TABLE_START}\n{series_table(url, notebooks, old.strip())}\n{TABLE_END}{tail}"
    if fresh != text and not check:
        readme.write_text(fresh, encoding="utf-8")
    return fresh != text


def process(path: Path, url: str, *, check: bool) -> bool:
    """Bring one notebook up to date (or only compare, with `check`); True if it was stale."""
    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    fresh = update(nb, url, path.name)
    stale = fresh != nb
    if stale and not check:
        out = nbformat.writes(fresh)
        path.write_text(out if out.endswith("\n") else out + "\n", encoding="utf-8")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if any notebook's header is missing or stale")
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks",
                        help="folder of the notebooks (default: the repository's notebooks/)")
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md",
                        help="README holding the series table ('none' to leave it alone)")
    args = parser.parse_args(argv)
    url = repository_url(args.pyproject)
    paths = sorted(args.notebooks.glob("*.ipynb"))
    if not paths:
        print(f"no notebooks in {args.notebooks}", file=sys.stderr)
        return 1
    stale = [p.name for p in paths if process(p, url, check=args.check)]
    if str(args.readme) != "none":
        notebooks = {p.name: nbformat.read(p, as_version=4) for p in paths}
        if update_readme(args.readme, url, notebooks, check=args.check):
            stale.append(f"{args.readme.name} (series table)")
    for name in stale:
        print(f"{'stale' if args.check else 'updated'}: {name}")
    if args.check and stale:
        print("run: python scripts/notebook_header.py", file=sys.stderr)
        return 1
    print(f"{len(paths)} notebooks, {len(stale)} files {'stale' if args.check else 'updated'}; "
          f"repository {url}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
