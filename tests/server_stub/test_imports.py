"""Every server module imports on its own (no cycle that only some import order hides), and the client and
the server share code only through contract/."""
import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def modules(package):
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.mark.parametrize("module", list(modules("server_stub")))
def test_each_server_module_imports_alone_in_a_fresh_interpreter(module):
    # __main__ runs the CLI when imported: it is loaded the way it is used
    argv = ["-m", "server_stub", "--help"] if module.endswith(".__main__") else ["-c", f"import {module}"]
    done = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


def imported_packages(path):
    """The top-level package of every import in the file (relative imports stay inside their package)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


@pytest.mark.parametrize("package, forbidden", [("imager", "server_stub"), ("server_stub", "imager"),
                                                ("contract", "imager"), ("contract", "server_stub")])
def test_a_package_never_imports_the_other_side(package, forbidden):
    offenders = [str(path.relative_to(ROOT)) for path in sorted((ROOT / package).rglob("*.py"))
                 if forbidden in set(imported_packages(path))]
    assert offenders == []
