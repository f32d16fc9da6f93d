"""The lint step holds the line: ruff's complexity limits and the import contracts both bite.

Each test lints a copy of this repository's pyproject.toml, agent/ and scripts/simulator in a
temporary directory, with deliberate violations added where a test says so, with the same commands
scripts/test runs: `python -m ruff check` and `lint-imports --no-cache`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Next to the interpreter, not resolved: the virtualenv's bin/, not the system's.
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))
CONTRACTS = {
    c["id"]: c["name"]
    for c in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the linted part of the repository, laid out as the repository is."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy2(REPO / "pyproject.toml", root)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "agent", root / "agent", ignore=skip)
    # scripts/ and tests/ are real packages beside agent/ in the repository, so they are here.
    shutil.copytree(REPO / "scripts" / "simulator", root / "scripts" / "simulator", ignore=skip)
    shutil.copy2(REPO / "scripts" / "__init__.py", root / "scripts")
    (root / "tests" / "support").mkdir(parents=True)
    shutil.copy2(REPO / "tests" / "__init__.py", root / "tests")
    shutil.copy2(REPO / "tests" / "support" / "__init__.py", root / "tests" / "support")
    return root


def _run(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    # Without PYTHONPATH, so that the copy's agent/ is the one analysed, never the repository's.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        argv, cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _ruff(root: Path, *paths: str) -> subprocess.CompletedProcess[str]:
    return _run(root, sys.executable, "-m", "ruff", "check", "--no-cache", *paths)


def _add(root: Path, rel: str, source: str) -> None:
    (root / rel).write_text(textwrap.dedent(source).lstrip())


def _branchy(name: str, branches: int) -> str:
    """A function of `branches` independent ifs: McCabe complexity branches + 1."""
    body = "".join(f"    if x > {i}:\n        total += {i + 1}\n" for i in range(branches))
    return f"def {name}(x: int) -> int:\n    total = 0\n{body}    return total\n"


def _many_returns(name: str, returns: int) -> str:
    body = "".join(f"    if x == {i}:\n        return {i * 10}\n" for i in range(returns - 1))
    return f"def {name}(x: int) -> int:\n{body}    return -1\n"


def _long(name: str, statements: int) -> str:
    """A function of `statements` simple statements, the return included."""
    body = "".join(f"    x += {i}\n" for i in range(statements - 2))
    return f"def {name}(x: int) -> int:\n    x += 0\n{body}    return x\n"


def _def_lines(source: str) -> dict[int, str]:
    return {
        n: line.split()[1].split("(")[0]
        for n, line in enumerate(source.splitlines(), start=1)
        if line.startswith("def ")
    }


def test_ruff_fails_on_functions_past_the_complexity_limits(tree: Path) -> None:
    parts = [
        '"""Functions at and past the limits of [tool.ruff.lint] (mccabe, pylint)."""\n',
        _branchy("at_the_limit", 11),  # complexity 12, 11 branches: allowed
        _branchy("knotted", 13),  # complexity 14, 13 branches
        _many_returns("answers_too_often", 7),
        _long("goes_on_and_on", 55),
    ]
    source = "\n\n".join(parts)
    _add(tree, "agent/ingest/knotted.py", source)

    result = _run(
        tree,
        *(sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "json"),
        "agent/ingest/knotted.py",
    )

    assert result.returncode == 1, result.stderr
    functions = _def_lines(source)
    found = {(functions[d["location"]["row"]], d["code"]) for d in json.loads(result.stdout)}
    assert found == {
        ("knotted", "C901"),
        ("knotted", "PLR0912"),
        ("answers_too_often", "PLR0911"),
        ("goes_on_and_on", "PLR0915"),
    }


def _broken_sections(output: str) -> dict[str, str]:
    """lint-imports' report of each broken contract, by contract name."""
    _, _, report = output.partition("Broken contracts\n----------------\n")
    lines = report.splitlines()
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for i, line in enumerate(lines):
        underline = lines[i + 1] if i + 1 < len(lines) else ""
        if line and underline == "-" * len(line):
            current = sections.setdefault(line, [])
        elif line and set(line) != {"-"}:
            current.append(line)
    return {name: "\n".join(body) for name, body in sections.items()}


# One deliberate violation per contract: (module added, its import, the import reported).
VIOLATIONS = {
    "layers": ("agent/core/upward.py", "from agent import sync", "agent.core.upward -> agent.sync"),
    "requests": ("agent/ingest/web.py", "import requests", "agent.ingest.web -> requests"),
    "sql": ("agent/camera/sql.py", "import sqlite3", "agent.camera.sql -> sqlite3"),
    "pyudev": ("agent/devices/raw.py", "import pyudev", "agent.devices.raw -> pyudev"),
    "rich": ("agent/cli/bar.py", "import rich", "agent.cli.bar -> rich"),
    "pyrage": ("agent/custody/keys.py", "import pyrage", "agent.custody.keys -> pyrage"),
    "tooling": (
        "agent/ingest/fake_camera.py",
        "from scripts.simulator.cameras import CameraSpec",
        "agent.ingest.fake_camera -> scripts",
    ),
}


def test_lint_imports_fails_naming_each_broken_contract(tree: Path) -> None:
    assert set(VIOLATIONS) == set(CONTRACTS)  # a new contract gets its violation here
    for rel, statement, _ in VIOLATIONS.values():
        _add(tree, rel, f'"""A deliberate violation."""\n\n{statement}\n')
    _add(
        tree,
        "agent/health/late.py",
        '''
        """Test support imported lazily, inside a function: still an import of the tests."""


        def f() -> object:
            from tests.support import volumes

            return volumes
        ''',
    )

    result = _run(tree, LINT_IMPORTS, "--no-cache")

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"Contracts: 0 kept, {len(CONTRACTS)} broken." in result.stdout
    broken = _broken_sections(result.stdout)
    for contract, (_, _, reported) in VIOLATIONS.items():
        assert f"{CONTRACTS[contract]} BROKEN" in result.stdout
        assert reported in broken[CONTRACTS[contract]]
    assert "agent.health.late -> tests" in broken[CONTRACTS["tooling"]]


def test_the_tree_as_it_is_passes_both(tree: Path) -> None:
    ruff = _ruff(tree, "agent", "scripts/simulator")
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr

    contracts = _run(tree, LINT_IMPORTS, "--no-cache")
    assert contracts.returncode == 0, contracts.stdout + contracts.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in contracts.stdout
