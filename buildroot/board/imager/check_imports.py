#!/usr/bin/env python3
"""Check that the boot image's Python tree holds everything the agent imports.

    check_imports.py SITE_PACKAGES            static check: every import of our packages resolves in the tree
    check_imports.py SITE_PACKAGES --list     the dotted names of every module of the agent, one a line

The boot images ship ``imager`` (the client) and ``contract`` (what it shares with the server), and
never ``server_stub``. Each module's imports are read with ``ast`` (nothing is executed, so this runs on
the build host for any target), and an import of one of our packages that the tree lacks fails the
check, naming the module and the line. post-build.sh then also imports every listed module inside
the target when it can run the target's python (same architecture, root for chroot).
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

SHIPPED = ("imager", "contract")      # what a boot image carries
OURS = SHIPPED + ("server_stub",)     # imports of any of these must resolve inside the tree


def modules(site: Path) -> list[str]:
    """Every module of the shipped packages found in ``site``, as dotted names."""
    found = []
    for package in SHIPPED:
        for path in sorted((site / package).rglob("*.py")):
            parts = list(path.relative_to(site).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if parts[-1] != "__main__":
                found.append(".".join(parts))
    return found


def _resolves(site: Path, dotted: str) -> bool:
    base = site.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _imported(module: str, tree: ast.AST) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of each import; relative imports made absolute."""
    package = module.rsplit(".", 1)[0] if "." in module else module
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(anchor + ([target] if target else []))
            found.append((node.lineno, target, [alias.name for alias in node.names]))
    return found


def problems(site: Path) -> list[str]:
    missing = [f"{package}/ is not in {site}" for package in SHIPPED if not (site / package / "__init__.py").is_file()]
    for module in modules(site):
        path = site.joinpath(*module.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        for line, target, names in _imported(module, ast.parse(path.read_text(), str(path))):
            if target.split(".")[0] not in OURS:
                continue
            where = f"{path.relative_to(site)}:{line}"
            if target.split(".")[0] not in SHIPPED:
                missing.append(f"{where}: imports {target}, which the boot image does not carry")
            elif not _resolves(site, target):
                missing.append(f"{where}: imports {target}, missing from the image")
            elif site.joinpath(*target.split(".")).is_dir():  # from package import module
                missing += [f"{where}: imports {target}.{name}, missing from the image" for name in names
                            if not _defines(site, target, name)]
    return missing


def _defines(site: Path, package: str, name: str) -> bool:
    """``from package import name``: a submodule, or any name the package's __init__ mentions."""
    if _resolves(site, f"{package}.{name}"):
        return True
    init = site.joinpath(*package.split(".")) / "__init__.py"
    return name in init.read_text()


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 2
    site = Path(argv[0])
    if argv[1:] == ["--list"]:
        print("\n".join(modules(site)))
        return 0
    found = problems(site)
    for problem in found:
        print(f"check_imports: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
