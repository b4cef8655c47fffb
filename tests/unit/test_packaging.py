"""What ``pip install .`` (not editable) carries: every data file the code reads at run time.

CI installs in editable mode, where files outside the packages are still
found through the source tree; a plain install only has what the package
data globs in ``pyproject.toml`` list, so both are checked here.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

import unseen
from unseen import demo

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("unseen",)
# Documentation next to the code (benchmarks/README.md, its plots): read by people, not the code.
DOCUMENTS = {".md", ".png"}


def _package_data_globs() -> list[str]:
    # tomllib is 3.11+; the project supports 3.10, and this one line is plain TOML.
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[tool.setuptools.package-data]", 1)[1]
    match = re.search(r'^"\*" = (\[.*?\])$', section, re.MULTILINE)
    assert match, "pyproject.toml: no package-data for every package"
    return list(ast.literal_eval(match.group(1)))


def test_demo_models_live_inside_the_installed_package():
    package = Path(unseen.__file__).resolve().parent
    assert demo.MODELS.resolve().is_relative_to(package)
    assert sorted(p.name for p in demo.MODELS.glob("*.json")) == ["credit.json", "fraud.json"]


def test_every_data_file_in_a_package_is_declared_as_package_data():
    globs = _package_data_globs()
    undeclared = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.suffix != ".py"
        and path.suffix not in DOCUMENTS
        and not any(fnmatch.fnmatch(path.name, g) for g in globs)
    ]
    assert not undeclared, f"not shipped by a non-editable install: {undeclared}"


def test_the_distribution_installs_only_the_unseen_namespace():
    # What `pip install .` puts into site-packages: setuptools' own package discovery
    # over the repository, with the include patterns pyproject.toml gives it.
    from setuptools import find_packages

    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[tool.setuptools.packages.find]", 1)[1]
    match = re.search(r"^include = (\[.*?\])$", section, re.MULTILINE)
    assert match, "pyproject.toml: no package include patterns"
    found = find_packages(where=str(ROOT), include=ast.literal_eval(match.group(1)))
    assert found and "unseen" in found and "unseen.engine.query" in found
    assert {name.split(".")[0] for name in found} == {"unseen"}, found
