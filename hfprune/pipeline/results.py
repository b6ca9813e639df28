"""What a pipeline stage produced: ``StageResult`` (saved as the stage's ``stage.json`` done-marker) and the
``Level`` a pruned stage builds. Read by the runner, the sweep and the reports; kept apart from the runner so that
the reports never import it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from hfprune.audit.model_audit import ModelAudit
from hfprune.errors import ConfigError

if TYPE_CHECKING:
    from hfprune.pruning.config import PruningConfig

STAGE_FILE = "stage.json"
DENSE_STAGE = "dense"


@dataclass
class StageResult:
    """What one stage measured; saved as its ``stage.json`` done-marker."""

    name: str
    kind: str  # "dense" or "pruned"
    level: float | None
    fingerprint: str
    settings: dict[str, Any]
    model_dir: str  # relative to the stage folder, or absolute (a teacher used in place)
    quality: dict[str, Any]
    sparsity: dict[str, Any]
    audit: dict[str, Any]
    seconds: dict[str, float]
    pruning: dict[str, Any] | None = None
    latency: dict[str, Any] | None = None
    hfprune_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(payload, dict) or not {"name", "kind", "fingerprint"} <= set(payload) <= names:
            raise ConfigError(f"{STAGE_FILE}: expected a stage record with keys {sorted(names)}")
        return cls(**payload)

    @classmethod
    def load(cls, stage_dir: Path) -> Self:
        path = stage_dir / STAGE_FILE
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read the stage record ({exc})") from None

    @property
    def model_audit(self) -> ModelAudit:
        return ModelAudit.from_dict(self.audit)

    def model_path(self, stage_dir: Path) -> Path:
        path = Path(self.model_dir)
        return path if path.is_absolute() else stage_dir / path


@dataclass(frozen=True)
class Level:
    """One pruned model of a run: its folder (relative to the run folder), sparsity level and pruning config."""

    name: str
    value: float | None
    pruning: PruningConfig

    @property
    def label(self) -> str:
        return Path(self.name).name
