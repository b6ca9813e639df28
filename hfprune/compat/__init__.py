"""Compatibility shims for third-party packages that do not install or import cleanly next to transformers 5.

Importing this package is cheap: textattack is only imported by ``import_textattack()``.
"""

from hfprune.compat.textattack import (
    RECIPE_REQUIREMENTS,
    TextAttackUnavailableError,
    import_textattack,
    is_flair_standin,
    recipe_status,
    register_flair_standin,
)

__all__ = [
    "RECIPE_REQUIREMENTS",
    "TextAttackUnavailableError",
    "import_textattack",
    "is_flair_standin",
    "recipe_status",
    "register_flair_standin",
]
