"""Continual-learning experiments: specs, presets, runs, sweeps on executors, and their results.

spec = experiment.preset("cpu", method="lora", lr=1e-3)
results = experiment.run(spec)                  # cached by spec; resumes after an interruption
runs = experiment.run_many(specs, executor="processes")
"""

from curlora.experiment.presets import PRESETS, preset
from curlora.experiment.results import Results
from curlora.experiment.runner import run
from curlora.experiment.spec import ExperimentSpec
from curlora.experiment.stages import CacheWarning, run_folder
from curlora.experiment.sweep import run_many

__all__ = [
    "PRESETS",
    "CacheWarning",
    "ExperimentSpec",
    "Results",
    "preset",
    "run",
    "run_folder",
    "run_many",
]
