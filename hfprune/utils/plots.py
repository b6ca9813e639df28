"""The figure plumbing every hfprune report shares: a display-less pyplot, one axis style, PNG bytes out."""

from __future__ import annotations

import io
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display on servers and in CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def axis_png(figure: Any, axis: Any, x_label: str, y_label: str) -> bytes:
    """Label, grid and legend ``axis`` the way every report plot does, and return ``figure`` as PNG bytes."""
    axis.set_xlabel(x_label)
    axis.set_ylabel(y_label)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()
