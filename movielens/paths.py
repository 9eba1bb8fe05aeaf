"""Where the caches live: `datasets/`, `saved_models/` and `reports/`.

Relative to the current directory's project root by default; the environment
variables `MOVIELENS_DATASETS_DIR`, `MOVIELENS_MODELS_DIR` and
`MOVIELENS_REPORTS_DIR` move them (tests point them at temporary folders).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _dir(env_var: str, default: str) -> Path:
    return Path(os.environ.get(env_var) or PROJECT_ROOT / default)


def datasets_dir() -> Path:
    return _dir("MOVIELENS_DATASETS_DIR", "datasets")


def models_dir() -> Path:
    return _dir("MOVIELENS_MODELS_DIR", "saved_models")


def reports_dir() -> Path:
    return _dir("MOVIELENS_REPORTS_DIR", "reports")


def shared_datasets_dir() -> Path | None:
    """`../shared/datasets` beside the project root (read-only GroupLens copies), if present."""
    path = Path(os.environ.get("MOVIELENS_SHARED_DATASETS") or PROJECT_ROOT.parent / "shared" / "datasets")
    return path if path.is_dir() else None
