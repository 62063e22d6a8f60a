"""scheduler/ and messages/ never import Flask; importing the packages has no side effects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _modules_under(package: str) -> list[str]:
    base = ROOT / package
    return sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in base.rglob("*.py")
        if path.name != "__main__.py"
    )


@pytest.mark.parametrize("package", ["scheduler", "messages"])
def test_package_never_imports_flask(package: str, tmp_path: Path) -> None:
    modules = [m.removesuffix(".__init__") for m in _modules_under(package)]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'flask' or m.startswith('flask.'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"{package} pulled in {result.stdout.strip()}"


def test_importing_packages_creates_no_files_and_prints_nothing(tmp_path: Path) -> None:
    code = "import bot, bot.models, bot.services.importer, scheduler, messages, bot.cli"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert result.stdout == "" and result.stderr == ""
    assert list(tmp_path.iterdir()) == []
