"""Report import cycles among hfprune's modules (exit 1 when there is one).

    python scripts/check_import_cycles.py            # module-level imports: cycles that can break an import
    python scripts/check_import_cycles.py --lazy     # also imports inside functions (layering cycles)
    python scripts/check_import_cycles.py --typing   # also ``if TYPE_CHECKING:`` imports

Reads the source with ``ast`` (nothing is imported). A child module importing its own package is not a cycle.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def module_files(root: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    modules = {}
    for path in (root / "hfprune").rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def imports_of(name: str, path: Path, is_package: bool, modules: dict, lazy: bool, typing: bool) -> set[str]:
    def known(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.body if typing else node.orelse)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if lazy:
                    visit(node.body)
            elif isinstance(node, ast.Import):
                found.update(filter(None, (known(alias.name) for alias in node.names)))
            elif isinstance(node, ast.ImportFrom):
                base = name.split(".") if is_package else name.split(".")[:-1]
                prefix = ".".join(base[: len(base) - node.level + 1]) if node.level else ""
                source = ".".join(filter(None, (prefix, node.module)))
                for alias in node.names:  # ``from pkg import module`` imports the module
                    target = f"{source}.{alias.name}"
                    found.update(filter(None, (target if target in modules else known(source),)))
            else:
                for child in ("body", "orelse", "finalbody", "handlers"):
                    block = getattr(node, child, None)
                    if isinstance(block, list):
                        visit(block)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return {m for m in found if m != name and not name.startswith(m + ".")}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    result: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in graph:
        if node not in index:
            connect(node)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lazy", action="store_true", help="also count imports inside functions")
    parser.add_argument("--typing", action="store_true", help="also count TYPE_CHECKING imports (implies --lazy)")
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    modules = module_files(root)
    graph = {name: imports_of(name, path, is_package, modules, args.lazy or args.typing, args.typing)
             for name, (path, is_package) in modules.items()}
    found = cycles(graph)
    for component in found:
        print("cycle: " + " <-> ".join(component))
        for module in component:
            for target in sorted(graph[module] & set(component)):
                print(f"    {module} -> {target}")
    print(f"{len(found)} cycle(s) among {len(graph)} modules")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
