"""The house rules a reader can count: no module over 400 lines, no function over 80 lines.

The import rules (layers, one importer per heavy package) are import-linter contracts in pyproject.toml, and the
style rules are ruff's; `.ci/run` runs both before the tests. These two limits are checked here, over every Python
file in the repository, so a god-file or a 300-line function fails the day it is written.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

from tests.conftest import REPO

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def python_files() -> list[Path]:
    """The Python files git knows about (tracked, or new and not ignored)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"], cwd=REPO,
                            capture_output=True, text=True)
    if listed.returncode != 0:  # not a git checkout (an unpacked sdist): every file but the usual build folders
        return sorted(p for p in REPO.rglob("*.py") if not {".venv", "build", "outputs"} & set(p.parts))
    return sorted(REPO / name for name in listed.stdout.split() if (REPO / name).is_file())


def long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [f"{path.relative_to(REPO)}:{node.lineno} {node.name}() is {node.end_lineno - node.lineno + 1} lines"
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]


def test_the_rules_see_the_packages():
    names = {str(p.relative_to(REPO)) for p in python_files()}
    assert {"app.py", "vista/cli.py", "vista_core/errors.py", "render/cameras.py", "tests/test_house_rules.py"} <= names


def test_no_module_is_over_400_lines():
    long = [f"{p.relative_to(REPO)} has {n} lines" for p in python_files()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert not long, "split these modules by concern:\n" + "\n".join(long)


def test_no_function_is_over_80_lines():
    long = [line for p in python_files() for line in long_functions(p)]
    assert not long, "split these functions into named steps:\n" + "\n".join(long)


def test_the_limits_catch_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    sample = REPO / "tests" / f".house-rules-{tmp_path.name}.py"
    sample.write_text(f"def too_long():\n{body}\n")
    try:
        assert long_functions(sample) and "too_long() is 81 lines" in long_functions(sample)[0]
    finally:
        sample.unlink()
