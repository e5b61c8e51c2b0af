"""The cpu-profile notebook suite timed as a new user meets it: a fresh clone, empty caches."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def time_suite(profile: str = "cpu") -> dict:
    """First run and cached re-run of ``make figures`` on a fresh clone of this repository.

    The clone has only what is committed; ``CURLORA_CACHE`` and ``HOME`` point at empty folders,
    so the model conversion, package downloads and every experiment count. The installed
    packages of this environment are used (creating a virtual environment is not timed). The
    clone's rendered report is kept in ``build/suite/<profile>`` (what a fresh clone produces,
    ready to compare with or replace the committed ``report/<profile>``).
    """
    from curlora.experiment.precision import matmul_rate

    with tempfile.TemporaryDirectory(prefix="curlora-suite-") as tmp:
        tmp = Path(tmp)
        clone = tmp / "clone"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CURLORA_")}
        env |= {
            "CURLORA_CACHE": str(tmp / "cache"),
            "HOME": str(tmp / "home"),
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(clone),
        }
        (tmp / "home").mkdir()
        cmd = [sys.executable, "-m", "curlora.notebooks", "run", "--profile", profile]
        timings = {}
        for key in ("first_s", "cached_s"):
            start = time.perf_counter()
            subprocess.run(cmd, cwd=clone, env=env, check=True)
            timings[key] = time.perf_counter() - start
        kept = ROOT / "build" / "suite" / profile
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(clone / "report" / profile, kept)
    timings["matmul_gflops"] = matmul_rate()
    return timings
