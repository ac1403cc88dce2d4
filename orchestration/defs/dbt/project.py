"""The dbt project as Dagster sees it.

The manifest (``dbt_project/target/manifest.json``) is prepared by an explicit
``dbt parse`` (``vedfin parse``, run by the Makefile, CI and the test fixtures) because
``prepare_if_dev()`` only does it under ``dagster dev``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from vedfin.config import DBT_PROFILES_DIR, DBT_PROJECT_DIR

# dagster-dbt looks for `dbt` on PATH (prepare_if_dev under `dagster dev`): make it the
# dbt installed next to this interpreter, even when the virtualenv is not activated.
_bin = str(Path(sys.executable).parent)
if _bin not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROFILES_DIR)
dbt_project.prepare_if_dev()

if not dbt_project.manifest_path.exists():
    raise FileNotFoundError(
        f"{dbt_project.manifest_path} is missing: run `vedfin parse` (or `make manifest`) "
        "before loading the Dagster definitions"
    )
