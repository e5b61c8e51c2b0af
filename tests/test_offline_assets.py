"""Integration: the real model and text that install from PyPI (no hub)."""

from __future__ import annotations

import pytest

from curlora import data
from curlora.data import offline
from curlora.models import load_model
from curlora.perplexity import perplexity

pytestmark = pytest.mark.integration

# Sizes documented in data/README.md (eval split: 500 rows by default).
EXPECTED = {
    "wiki-pairs": (7900, {"mismatch": 3949, "match": 3951}),
    "movie-snippets": (10070, {"negative": 5075, "positive": 4995}),
    "tweets-3class": (37243, {"negative": 15978, "neutral": 14454, "positive": 6811}),
}


@pytest.mark.parametrize("name", EXPECTED)
def test_offline_task_sizes_balance_and_splits(name):
    total, counts = EXPECTED[name]
    task = data.load_task(name, seed=0)
    assert len(task.train) + len(task.eval) == total
    both = {k: task.label_counts("train")[k] + task.label_counts("eval")[k] for k in counts}
    assert both == counts
    assert len(task.eval) == 500 and 0.3 < task.majority_accuracy() < 0.6
    again, other = data.load_task(name, seed=0), data.load_task(name, seed=1)
    assert again.eval.equals(task.eval) and not other.eval.equals(task.eval)
    key = ["text", "text_pair"] if task.has_pair else ["text"]
    train_keys = set(map(tuple, task.train[key].to_numpy()))
    assert not train_keys & set(map(tuple, task.eval[key].to_numpy()))


def test_perplexity_corpus_is_disjoint_from_the_pair_task():
    articles = data.wiki_articles()
    held = set(articles.loc[articles["heldout"], "title"])
    pairs = data.wiki_pairs_frame()
    assert len(held) == offline.WIKI_HELDOUT_ARTICLES and not held & set(pairs["title"])
    corpus = data.load_corpus("wiki-heldout")
    assert not any(text in corpus for text in pairs["text"].iloc[:200])


def test_smollm2_loads_and_knows_english():
    model, tok = load_model("smollm2-135m")
    assert model.config.num_hidden_layers == 30 and tok.pad_token is not None
    ppl = perplexity(model, tok, data.load_corpus("wiki-heldout"), max_length=512, count=4)
    assert ppl < 40  # measured ≈ 13.7; a random model is in the thousands


def test_concurrent_first_conversion_uses_the_winner(tmp_path, monkeypatch):
    import shutil

    from curlora import models

    load_model("smollm2-135m")  # the default cache now holds a converted copy
    converted = models.smollm2_dir()
    monkeypatch.setenv(models.SMOLLM2_CACHE_ENV, str(tmp_path / "smol"))

    def lose_the_race(target):
        # Another rank renamed its finished folder into place first; our rename then fails.
        shutil.copytree(converted, target)
        raise OSError(39, "Directory not empty")

    monkeypatch.setattr(models, "_convert_smollm2", lose_the_race)
    model, _ = load_model("smollm2-135m")
    assert model.config.num_hidden_layers == 30
