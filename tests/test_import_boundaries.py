"""The layers of DESIGN.md §1, checked on the source: every import of every module, including
the hidden ones (importlib.import_module("..."), __import__("..."), a relative import), is read
with `ast` and held against the rules below. Each rule is also shown to catch a violation.

- messages/ is pure: no Flask, no SQLAlchemy, nothing from bot/ or scheduler/;
- scheduler/ never imports Flask, nor the web app;
- services never import the scheduler or the web app (or Flask);
- models import nothing above them: no services, web, transport or scheduler (nor Flask).

And importing the packages has no side effects (no files, no output)."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_DYNAMIC_IMPORTERS = {"import_module", "__import__"}


@dataclass(frozen=True)
class Rule:
    name: str
    # Modules the rule applies to: these, and everything under them.
    subjects: tuple[str, ...]
    # What they may not import: these, and everything under them.
    forbidden: tuple[str, ...]


RULES = (
    Rule(
        "messages/ is pure",
        ("messages",),
        ("flask", "flask_login", "flask_wtf", "werkzeug", "sqlalchemy", "bot", "scheduler"),
    ),
    Rule("scheduler/ never imports Flask", ("scheduler",), ("flask", "werkzeug", "bot.web")),
    Rule(
        "services never import the scheduler or the web app",
        ("bot.services",),
        ("scheduler", "bot.web", "flask", "flask_login", "flask_wtf", "werkzeug"),
    ),
    Rule(
        "models import nothing above them",
        ("bot.models",),
        ("bot.services", "bot.web", "bot.transport", "bot.cli", "scheduler", "flask"),
    ),
)


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def imported_names(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module `source` (the text of `module`) imports, by any of the means above."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names.add(target)
            # `from bot import services` imports bot.services.
            names.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called in _DYNAMIC_IMPORTERS and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names.add(first.value)
    return names


def violations(rule: Rule, modules: dict[str, tuple[str, bool]]) -> list[str]:
    """`module: imported` for each import of `modules` ({name: (source, is_package)}) that
    `rule` forbids."""
    found = []
    for module, (source, is_package) in sorted(modules.items()):
        if not _under(module, rule.subjects):
            continue
        for name in sorted(imported_names(source, module, is_package=is_package)):
            if _under(name, rule.forbidden):
                found.append(f"{module}: {name}")
    return found


def _project_modules() -> dict[str, tuple[str, bool]]:
    modules = {}
    for package in ("bot", "scheduler", "messages"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            modules[name] = (path.read_text(encoding="utf-8"), is_package)
    return modules


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_the_source_keeps_the_rule(rule: Rule) -> None:
    assert violations(rule, _project_modules()) == []


# One violating snippet per rule, in every form an import can take: each must be caught.
_VIOLATIONS = [
    ("messages/ is pure", "messages.crisis", "from bot.models import Participant"),
    ("messages/ is pure", "messages.crisis", "import sqlalchemy"),
    ("messages/ is pure", "messages.crisis", "from flask import request"),
    ("scheduler/ never imports Flask", "scheduler.tick", "import flask"),
    ("scheduler/ never imports Flask", "scheduler.tick", "from bot.web import participants"),
    ("scheduler/ never imports Flask", "scheduler.tick", "from bot import web"),
    (
        "services never import the scheduler or the web app",
        "bot.services.settings_editing",
        "import importlib\nplanner = importlib.import_module('scheduler.plan')",
    ),
    (
        "services never import the scheduler or the web app",
        "bot.services.x",
        "from importlib import import_module\nimport_module('scheduler')",
    ),
    (
        "services never import the scheduler or the web app",
        "bot.services.x",
        "def f():\n    return __import__('scheduler.send')",
    ),
    (
        "services never import the scheduler or the web app",
        "bot.services.x",
        "def f():\n    from scheduler.plan import plan\n    return plan",
    ),
    (
        "services never import the scheduler or the web app",
        "bot.services.x",
        "from ..web import ui",
    ),
    ("models import nothing above them", "bot.models.flags", "from bot.services import flags"),
    ("models import nothing above them", "bot.models.flags", "from ..services.audit import record"),
    ("models import nothing above them", "bot.models.flags", "import scheduler.plan"),
]


@pytest.mark.parametrize(("rule_name", "module", "source"), _VIOLATIONS)
def test_the_checker_catches_a_violation(rule_name: str, module: str, source: str) -> None:
    rule = next(rule for rule in RULES if rule.name == rule_name)
    assert violations(rule, {module: (source, False)}) != []


def test_the_checker_does_not_flag_allowed_imports() -> None:
    allowed = {
        "bot.services.x": ("from bot.models import Flag\nfrom ..db import is_postgresql", False),
        "bot.models.flags": ("from .base import Base\nfrom sqlalchemy import Index", False),
        "messages.crisis": ("import re\nfrom .normalize import fold", False),
        "scheduler.tick": ("from bot.services.delivery import apply_early_callbacks", False),
    }
    assert all(violations(rule, allowed) == [] for rule in RULES)


def _modules_under(package: str) -> list[str]:
    base = ROOT / package
    return sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in base.rglob("*.py")
        if path.name != "__main__.py"
    )


@pytest.mark.parametrize("package", ["scheduler", "messages"])
def test_package_never_imports_flask(package: str, tmp_path: Path) -> None:
    # At run time too: what the modules import, however they import it.
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
