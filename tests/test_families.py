"""``hfprune sweep --families``: structured, weight and combined pruning at equal parameter count on a tiny BERT and a
few SST-2 sentences (attacks replaced by constructed results as in test_sweep), and the CSR sparse kernel."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import PNG_MAGIC, tiny_recipe

from hfprune.errors import ConfigError
from hfprune.pipeline.families import family_levels
from hfprune.pipeline.sweep import REPORT_DIR, run_sweep
from hfprune.recipes.families_spec import FAMILIES

torch.set_num_threads(1)


def test_family_levels_set_the_pruning_fields(tiny_model_dir, tmp_path):
    recipe = tiny_recipe(tiny_model_dir, tmp_path / "run")
    levels = family_levels(recipe, ["structured", "weight", "combined"], [0.9, 0.5])
    assert [level.name for level in levels] == [
        "levels/structured-0.50", "levels/weight-0.50", "levels/combined-0.50", "levels/structured-0.90",
        "levels/weight-0.90", "levels/combined-0.90"]
    by_name = {level.name: level.pruning for level in levels}
    assert (by_name["levels/structured-0.90"].head_sparsity, by_name["levels/structured-0.90"].ffn_sparsity,
            by_name["levels/structured-0.90"].weight_sparsity) == (0.9, 0.9, 0.0)
    assert (by_name["levels/weight-0.50"].head_sparsity, by_name["levels/weight-0.50"].weight_sparsity) == (0.0, 0.5)
    combined = by_name["levels/combined-0.90"]
    assert combined.head_sparsity == combined.ffn_sparsity == combined.weight_sparsity
    assert combined.head_sparsity == pytest.approx(1 - math.sqrt(0.1))
    assert (1 - combined.head_sparsity) * (1 - combined.weight_sparsity) == pytest.approx(0.1)
    assert levels[0].pruning.scoring == recipe.pruning.scoring  # everything else from the recipe


def test_combined_with_a_fixed_pattern_puts_the_rest_on_units(tiny_model_dir, tmp_path):
    recipe = tiny_recipe(tiny_model_dir, tmp_path / "run", weight_method="2:4", weight_sparsity=0.5)
    structured, level = family_levels(recipe, ["structured", "combined"], [0.9])
    assert level.pruning.weight_sparsity == 0.5 and level.pruning.head_sparsity == pytest.approx(0.8)
    # no weights pruned: the default weight method, so a 2:4 recipe (which fixes weight_sparsity = 0.5) stays valid
    assert (structured.pruning.weight_method, structured.pruning.weight_sparsity) == ("movement", 0.0)
    with pytest.raises(ConfigError, match=r"^sweep.param_sparsities: weight_method '2:4' alone removes 0.5"):
        family_levels(recipe, ["combined"], [0.3])
    with pytest.raises(ConfigError, match=r"^--families \(weight at parameter sparsity 0.9\): pruning.weight_sparsity"):
        family_levels(recipe, ["weight"], [0.9])


def test_families_are_validated_naming_the_key(tiny_model_dir, tmp_path):
    from hfprune.recipes.schema import Recipe
    from tests.test_sweep import tiny_payload

    payload = tiny_payload(tiny_model_dir, tmp_path / "run")
    payload["sweep"] = {"families": ["structured", "wieght"]}
    with pytest.raises(ConfigError, match=r"^sweep.families\[1\]: expected one of \['combined', 'structured', "
                       r"'weight'\], got 'wieght'$"):
        Recipe.from_dict(payload)
    payload["sweep"] = {"families": ["weight"], "param_sparsities": [0.0, 0.5]}
    with pytest.raises(ConfigError, match=r"^sweep.param_sparsities\[0\]: expected a number in \(0, 1\)"):
        Recipe.from_dict(payload)
    recipe = tiny_recipe(tiny_model_dir, tmp_path / "run")
    with pytest.raises(ConfigError, match=r"^--families\[0\]: expected one of"):
        family_levels(recipe, ["unstructured"], [0.5])
    assert sorted(FAMILIES) == ["combined", "structured", "weight"]


def test_sparse_kernel_logits_equal_dense_kernel_logits(tiny_inputs):
    from hfprune.pruning.weight.matrices import prunable_matrices
    from hfprune.pruning.weight.sparse_kernel import CsrLinear, to_sparse_kernel
    from tests.conftest import tiny_model

    for arch in ("bert", "gpt2"):
        model = tiny_model(arch)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for matrix in prunable_matrices(model):
                matrix.weight.mul_(torch.rand(matrix.weight.shape, generator=generator) > 0.7)
        sparse = to_sparse_kernel(model)
        assert sum(isinstance(m, CsrLinear) for m in sparse.modules()) == len(prunable_matrices(model)) == {
            "bert": 12, "gpt2": 8}[arch]  # q, k, v, o, FFN in, out (GPT-2: fused q|k|v)
        with torch.no_grad():
            expected, got = model(**tiny_inputs).logits, sparse(**tiny_inputs).logits
        assert torch.allclose(expected, got, atol=1e-5), (arch, (expected - got).abs().max())
        nonzero = sum(int(m.weight.values().numel()) for m in sparse.modules() if isinstance(m, CsrLinear))
        assert nonzero == sum(int(torch.count_nonzero(m.weight)) for m in prunable_matrices(model))


def test_families_sweep_equal_parameters_report_and_resume(tiny_model_dir, tmp_path, counted):
    out = tmp_path / "run"
    recipe = tiny_recipe(tiny_model_dir, out, scoring="magnitude", weight_method="magnitude")
    # p = 0.75: structured removes 6 of 8 heads and 72 of 96 neurons, combined s = w = 1 - sqrt(0.25) = 0.5 (4 heads,
    # 48 neurons): whole units of the tiny model, so every family hits p exactly; on MiniLM (72 heads, 9,216 neurons)
    # rounding to whole units costs < 0.1 percentage points
    p = 0.75
    result = run_sweep(recipe, families=["structured", "weight", "combined"], param_sparsities=[p])
    assert counted == {"train_dense": 1, "prune_and_distill": 3, "attack": 4}
    assert result.computed == ["levels/structured-0.75", "levels/weight-0.75", "levels/combined-0.75"]
    dense_total = result.dense.sparsity["weights_total"]
    assert dense_total == 2 * (4 * 32 * 32 + 2 * 32 * 48)  # q, k, v, o and FFN in/out of 2 layers
    shares = {s.name: s.sparsity["weights_kept"] / dense_total for s in result.levels}
    for name, share in shares.items():
        assert share == pytest.approx(1 - p, abs=1e-3), (name, share)
    report = json.loads((out / REPORT_DIR / "report.json").read_text())
    check = report["equal_parameters"]["0.75"]
    assert check["equal"] and check["spread"] == pytest.approx(max(shares.values()) - min(shares.values()))
    eff = result.efficiency
    structured, weight = eff["structured-0.75"], eff["weight-0.75"]
    assert "sparse_ms" not in structured["latency"]["batches"]["1"]  # no zeroed weights: no CSR kernel
    assert weight["latency"]["batches"]["1"]["sparse_max_abs_diff"] < 1e-4
    assert weight["compressed_bytes"] < weight["safetensors_bytes"]  # values + bitmask beat dense at 50%
    assert structured["safetensors_bytes"] < structured["dense_safetensors_bytes"]  # physically smaller
    markdown = (out / REPORT_DIR / "report.md").read_text()
    table = markdown.split("## Families at equal parameter count")[1]
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[1].startswith("| **dense (reference)** | 0 | 100.0% |")
    weight_row = next(r for r in rows if r.startswith("| weight | 0.75 |"))
    cells = [c.strip() for c in weight_row.strip("|").split("|")]
    assert cells[2] == f"{100 * shares['weight-0.75']:.1f}%"
    assert cells[6] == f"{weight['compressed_bytes'] / 1e6:.1f}"
    assert all(cells), weight_row  # every column filled from a measured number
    assert "equal within 1" in markdown
    assert (out / REPORT_DIR / "plots" / "families.png").read_bytes()[:8] == PNG_MAGIC

    again = run_sweep(recipe, families=["structured", "weight", "combined"], param_sparsities=[p])
    assert again.computed == [] and counted["prune_and_distill"] == 3
    assert again.efficiency == result.efficiency  # read back, not re-measured


def test_cli_modes_are_exclusive_and_checked(tiny_model_dir, tmp_path, capsys):
    import argparse

    import yaml

    from hfprune.cli import sweep as sweep_command
    from hfprune.pipeline.sweep import plan_levels
    from tests.test_sweep import tiny_payload

    recipe = tiny_recipe(tiny_model_dir, tmp_path / "run")
    with pytest.raises(ConfigError, match=r"^--families: .*expected no --sparsities or --apply-to"):
        plan_levels(recipe, sparsities=[0.5], families=["weight"])
    with pytest.raises(ConfigError, match=r"^--param-sparsities: only with --families"):
        plan_levels(recipe, param_sparsities=[0.5])
    assert plan_levels(recipe)[1] is False  # no sweep.families: the ordinary sweep
    payload = tiny_payload(tiny_model_dir, tmp_path / "run")
    payload["sweep"] = {"families": ["weight", "structured"], "param_sparsities": [0.5]}
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump(payload))
    parser = argparse.ArgumentParser(prog="hfprune")
    sweep_command.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sweep", str(recipe_file), "--check"])
    assert args.handler(args) == 0  # the recipe's families
    assert "2 levels (levels/weight-0.50, levels/structured-0.50)" in capsys.readouterr().out
    args = parser.parse_args(["sweep", str(recipe_file), "--check", "--families", "combined", "--param-sparsities",
                              "0.5,0.9"])
    assert args.handler(args) == 0
    assert "2 levels (levels/combined-0.50, levels/combined-0.90)" in capsys.readouterr().out
    args = parser.parse_args(["sweep", str(recipe_file), "--check", "--sparsities", "0.3"])
    assert args.handler(args) == 0  # --sparsities given: the ordinary sweep, the recipe's families ignored
    assert "1 levels (levels/sparsity-0.30)" in capsys.readouterr().out
    args = parser.parse_args(["sweep", str(recipe_file), "--families", "weight,", "--check"])
    with pytest.raises(ConfigError, match=r"^--families: expected a comma-separated list without empty items"):
        args.handler(args)


def test_equal_parameter_check_flags_a_family_off_target():
    from hfprune.pipeline.families import equal_parameter_check
    from hfprune.pipeline.results import StageResult

    def stage(name: str, kept: int) -> StageResult:
        level = float(name.split("-")[1]) if "-" in name else None
        return StageResult(name=name, kind="pruned" if level else "dense", level=level, fingerprint="x", settings={},
                           model_dir="model", quality={}, sparsity={"weights_kept": kept, "weights_total": 1000},
                           audit={}, seconds={})

    dense = stage("dense", 1000)
    check = equal_parameter_check(dense, [stage("structured-0.50", 500), stage("weight-0.50", 500),
                                          stage("combined-0.50", 508), stage("weight-0.90", 100),
                                          stage("structured-0.90", 130)])
    assert check["0.50"]["remaining"] == {"structured": 0.5, "weight": 0.5, "combined": 0.508}
    assert check["0.50"]["spread"] == pytest.approx(0.008) and check["0.50"]["equal"]
    assert check["0.90"]["spread"] == pytest.approx(0.03) and not check["0.90"]["equal"]


def test_a_family_name_registered_twice_names_the_rule_holding_it():
    from hfprune.recipes.families_spec import register_family

    with pytest.raises(ConfigError, match=r"^family 'weight': already registered by _weight$"):
        register_family("weight")(lambda base, p: {})
    assert FAMILIES["weight"].__name__ == "_weight"
