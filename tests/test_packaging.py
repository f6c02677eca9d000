"""What a non-editable install ships (README's first command is ``pip install '.[embedded]'``,
not ``-e``): every package folder under core/, plugins/ and suites/ is listed in
pyproject.toml's ``packages``, so no built-in plugin is missing from a wheel. An editable
install (the tests' venv) finds unlisted folders anyway, which is why this needs its own test."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> the package it installs as (pyproject.toml, package-dir)
PACKAGE_DIR = {"core": "hbench", "plugins": "hbench.plugins", "suites": "hbench.suites"}


def _package_folders() -> set[str]:
    names = set()
    for folder, pkg in PACKAGE_DIR.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            if "__pycache__" in rel or "fixtures" in rel:
                continue
            names.add(".".join([pkg, *rel]))
    return names


def test_package_dir_matches_the_layout() -> None:
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert tool["package-dir"] == {pkg: folder for folder, pkg in PACKAGE_DIR.items()}


def test_every_package_folder_is_listed() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    missing = sorted(_package_folders() - listed)
    assert not missing, f"pyproject.toml [tool.setuptools] packages lacks {missing}: a wheel would not ship them"
    gone = sorted(listed - _package_folders())
    assert not gone, f"pyproject.toml lists packages with no folder: {gone}"


def test_builtin_plugins_are_all_shipped() -> None:
    from hbench.plugin_manager import BUILTIN_PLUGINS

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert set(BUILTIN_PLUGINS) <= listed, f"built-in plugins not shipped: {sorted(set(BUILTIN_PLUGINS) - listed)}"
