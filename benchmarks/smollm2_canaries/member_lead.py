"""Did pruning change the members' lead in loss? The per-example change (pruned - dense) of the loss attack's loss,
members against non-members (different texts: Welch's t-test), and each side's spread of losses.

    python benchmarks/smollm2_canaries/member_lead.py RUN_DIR   # the run folder of recipes/smollm2-canaries-offline
"""

import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats


def losses(stage: Path) -> tuple[np.ndarray, np.ndarray]:
    entry = json.loads((stage / "audit/privacy/privacy_report.json").read_text())["entries"][0]
    result = next(r for r in entry["membership"] if r["attack"] == "loss")
    return -np.asarray(result["scores"]), np.asarray(result["is_member"], dtype=bool)


run = Path(sys.argv[1])
dense, member = losses(run / "dense")
pruned, _ = losses(run / "pruned")
change = pruned - dense
test = stats.ttest_ind(change[member], change[~member], equal_var=False)
low, high = test.confidence_interval()
print(f"loss change, members {change[member].mean():+.3f}, non-members {change[~member].mean():+.3f} nats; "
      f"difference {change[member].mean() - change[~member].mean():+.3f} [{low:+.3f}, {high:+.3f}], "
      f"Welch p = {test.pvalue:.2f}")
for name, loss in (("dense", dense), ("pruned", pruned)):
    print(f"{name}: members' lead {loss[~member].mean() - loss[member].mean():.3f} nats; sd of loss, members "
          f"{loss[member].std():.3f}, non-members {loss[~member].std():.3f}")
