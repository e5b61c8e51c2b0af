"""Shared fixtures: tiny random models (built in milliseconds) and a private cache folder."""

from __future__ import annotations

import os

# The hub is unreachable here; fail fast instead of retrying. Set before transformers loads.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from curlora.models import load_model  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _threads():
    torch.set_num_threads(2)


@pytest.fixture
def tiny_llama():
    return load_model("tiny-llama", seed=0)


@pytest.fixture
def tiny_gpt2():
    return load_model("tiny-gpt2", seed=0)


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """Point every curlora cache at a fresh folder for one test."""
    monkeypatch.setenv("CURLORA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
