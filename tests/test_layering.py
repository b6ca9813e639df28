"""The package reads top to bottom (CLI -> pipeline -> hub, recipes -> audit -> training -> models, compat ->
pruning, distill, data -> utils): no import cycle, counting imports inside functions, and the engine never reaches up
into the layers that use it. Read with ``ast`` by scripts/check_import_cycles.py (nothing is imported)."""

from __future__ import annotations

from pathlib import Path

from helpers import load_script

ROOT = Path(__file__).resolve().parent.parent


def _graph() -> dict[str, set[str]]:
    script = load_script(ROOT / "scripts" / "check_import_cycles.py")
    modules = script.module_files(ROOT)
    graph = {name: script.imports_of(name, path, is_package, modules, True, False)
             for name, (path, is_package) in modules.items()}
    return graph, script.cycles


def test_no_import_cycle_even_through_imports_inside_functions():
    graph, cycles = _graph()
    assert len(graph) > 100
    assert cycles(graph) == []


def test_the_engine_imports_nothing_from_the_layers_above_it():
    graph, _ = _graph()
    above = ("hfprune.cli", "hfprune.pipeline", "hfprune.recipes", "hfprune.hub", "hfprune.audit", "hfprune.training")
    for module, targets in graph.items():
        if module.startswith(("hfprune.pruning", "hfprune.utils")):
            reaching_up = sorted(t for t in targets if t.startswith(above))
            assert reaching_up == [], f"{module} imports {reaching_up}"
