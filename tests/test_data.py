"""Tasks from in-test data, the hub loaders on local files of the hub schema, and metrics."""

from __future__ import annotations

import math

import datasets
import numpy as np
import pandas as pd
import pytest
import torch

from curlora import data, metrics
from curlora.models import byte_tokenizer


def _frame(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"sentence": [f"example number {i}" for i in range(n)], "y": rng.integers(0, 2, n)}
    )


def test_from_pandas_splits_are_deterministic_and_disjoint():
    a = data.Task.from_pandas(_frame(), "sentence", "y", eval_size=10, seed=3)
    b = data.Task.from_pandas(_frame(), "sentence", "y", eval_size=10, seed=3)
    c = data.Task.from_pandas(_frame(), "sentence", "y", eval_size=10, seed=4)
    assert a.train.equals(b.train) and a.eval.equals(b.eval)
    assert not a.eval.equals(c.eval)
    assert len(a.eval) == 10 and len(a.train) == 30
    assert not set(a.train["text"]) & set(a.eval["text"])
    small = data.Task.from_pandas(_frame(), "sentence", "y", train_size=5, eval_size=0.25)
    assert len(small.train) == 5 and len(small.eval) == 10


def test_majority_accuracy_and_counts():
    df = pd.DataFrame({"t": [f"s{i}" for i in range(8)], "l": [0, 0, 0, 1, 0, 0, 1, 1]})
    task = data.Task.from_pandas(df, "t", "l", eval_size=8, eval_df=df, label_names=["a", "b"])
    assert task.majority_accuracy() == pytest.approx(5 / 8)
    assert task.label_counts("eval") == {"a": 5, "b": 3}


def test_from_dataset_with_pairs_and_batches():
    ds = datasets.Dataset.from_dict(
        {"a": ["first one", "second", "third text"], "b": ["x", "yy", "z"], "label": [0, 1, 1]}
    )
    task = data.Task.from_dataset(ds, "a", "label", text_pair="b", eval_size=1, seed=0)
    assert task.has_pair and task.texts("eval")[0].count("\n") == 1
    batch = next(iter(task.dataloader(byte_tokenizer(), "train", batch_size=2, max_length=6)))
    assert batch["input_ids"].shape[0] == 2 and batch["input_ids"].shape[1] <= 6
    lengths = batch["attention_mask"].sum(1)
    assert (batch["attention_mask"][:, : int(lengths.min())] == 1).all()  # right padding
    assert batch["labels"].tolist() == task.train["label"].tolist()


def test_shuffled_batches_follow_the_seed():
    task = data.Task.from_pandas(_frame(), "sentence", "y", eval_size=5)
    tok = byte_tokenizer()
    order = [
        [b["input_ids"][:, -1].tolist() for b in task.dataloader(tok, "train", 8, 32, True, s)]
        for s in (0, 0, 1)
    ]
    assert order[0] == order[1] and order[0] != order[2]


def test_bad_tasks_are_refused():
    with pytest.raises(ValueError, match="empty"):
        data.Task.from_pandas(_frame().iloc[:0], "sentence", "y")
    with pytest.raises(ValueError, match="outside 0..1"):
        data.Task.from_pandas(_frame().assign(y=5), "sentence", "y", label_names=["a", "b"])
    with pytest.raises(ValueError, match="empty text"):
        data.Task.from_pandas(_frame().assign(sentence=""), "sentence", "y")
    with pytest.raises(ValueError, match="columns"):
        data.Task.from_pandas(_frame(), "text", "y")
    with pytest.raises(ValueError, match="integers"):
        data.Task.from_pandas(_frame().assign(y="pos"), "sentence", "y")
    with pytest.raises(ValueError, match="wiki-pairs"):
        data.load_task("glue/qnli")
    with pytest.raises(ValueError, match="wiki-heldout"):
        data.load_corpus("ptb")


def test_texts_that_tokenize_to_nothing_are_refused():
    task = data.Task.from_pandas(_frame(), "sentence", "y", eval_size=5)

    def empty_tokenizer(texts, **_):
        return {"input_ids": [[] for _ in texts]}

    with pytest.raises(ValueError, match="tokenize to nothing"):
        task.encode(empty_tokenizer, "train", 8)


# --- hub loaders, fed local files with the hub's schema ---------------------------------------


def _write(tmp_path, name, rows) -> str:
    path = tmp_path / f"{name}.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_glue_loaders_on_hub_schema(tmp_path):
    pairs = {
        "sentence1": ["a b", "c d", "e f", "g h"],
        "sentence2": ["a", "x", "e", "y"],
        "label": [1, 0, 1, 0],
        "idx": [0, 1, 2, 3],
    }
    files = {
        "train": _write(tmp_path, "mrpc_train", pairs),
        "validation": _write(tmp_path, "mrpc_val", pairs),
    }
    task = data.load_task("glue/mrpc", data_files=files, eval_size=None)
    assert task.has_pair and len(task.train) == 4 and len(task.eval) == 4
    assert task.label_names == ("not_equivalent", "equivalent")
    sst = {"sentence": ["good", "bad", "fine"], "label": [1, 0, 1], "idx": [0, 1, 2]}
    files = {
        "train": _write(tmp_path, "sst_train", sst),
        "validation": _write(tmp_path, "sst_val", sst),
    }
    assert data.load_task("glue/sst2", data_files=files, train_size=2).train.shape[0] == 2


def test_sentiment140_paper_convention_and_corrected(tmp_path):
    # The hub's train file is ordered by label: 0s first. Its test split has 0/2/4.
    train = {
        "text": [f"t{i}" for i in range(1200)],
        "sentiment": [0] * 1100 + [4] * 100,
        "date": ["d"] * 1200,
        "user": ["u"] * 1200,
        "query": ["q"] * 1200,
    }
    test = {
        "text": [f"s{i}" for i in range(6)],
        "sentiment": [0, 2, 4, 0, 2, 4],
        "date": ["d"] * 6,
        "user": ["u"] * 6,
        "query": ["q"] * 6,
    }
    files = {
        "train": _write(tmp_path, "s140_train", train),
        "test": _write(tmp_path, "s140_test", test),
    }
    paper = data.load_task("sentiment140-paper", data_files=files)
    assert len(paper.train) == 6 and paper.label_counts("train") == {"negative": 4, "positive": 2}
    assert len(paper.eval) == 1000 and paper.majority_accuracy() == 1.0  # all negative
    fixed = data.load_task("sentiment140", data_files=files, eval_size=None)
    assert len(fixed.eval) == 4 and fixed.label_counts("eval") == {"negative": 2, "positive": 2}
    assert fixed.label_counts("train") == {"negative": 1100, "positive": 100}


def test_wikitext_loader_and_offline_error(tmp_path, monkeypatch):
    files = {"test": _write(tmp_path, "wt_test", {"text": [" = Title = ", " Some text . "]})}
    assert data.wikitext2_text(data_files=files) == " = Title = \n\n Some text . "
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="offline tasks: wiki-pairs"):
        data.load_task("glue/sst2")


# --- metrics ------------------------------------------------------------------------------------


def test_continual_metrics_on_a_hand_computed_matrix():
    nan = math.nan
    R = [[0.8, nan, nan], [0.6, 0.9, nan], [0.5, 0.7, 0.95]]
    assert metrics.average_accuracy(R) == pytest.approx((0.5 + 0.7 + 0.95) / 3)
    assert metrics.backward_transfer(R) == pytest.approx(((0.5 - 0.8) + (0.7 - 0.9)) / 2)
    # Forgetting uses the best earlier accuracy: task 0 best 0.8 → 0.5; task 1 best 0.9 → 0.7.
    assert metrics.forgetting(R) == pytest.approx(((0.8 - 0.5) + (0.9 - 0.7)) / 2)
    R2 = [[0.5, nan], [0.7, 0.9]]  # learning later *improves* task 0: positive BWT, negative F
    assert metrics.backward_transfer(R2) == pytest.approx(0.2)
    assert metrics.forgetting(R2) == pytest.approx(-0.2)
    assert math.isnan(metrics.backward_transfer([[0.7]]))
    with pytest.raises(ValueError, match="square"):
        metrics.average_accuracy([[1, 2, 3]])


def test_mean_ci():
    mean, half = metrics.mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-5)
    assert math.isnan(metrics.mean_ci([1.0])[1])


def test_perplexity_modes_on_a_tiny_model(tiny_llama):
    model, tok = tiny_llama
    text = "the quick brown fox jumps over the lazy dog " * 8
    strided = metrics.perplexity(model, tok, text, max_length=64, stride=32)
    full = metrics.perplexity(model, tok, text, max_length=400, stride=400)
    # A random byte-level model is close to uniform over its 257 tokens.
    assert 150 < strided < 400 and 150 < full < 400
    single = metrics.perplexity(model, tok, text, mode="single", max_length=64)
    with torch.no_grad():
        direct = model(
            tok(text, return_tensors="pt").input_ids[:, :64],
            labels=tok(text, return_tensors="pt").input_ids[:, :64],
        ).loss
    assert single == pytest.approx(math.exp(direct.item()), rel=1e-4)
    # One window that covers everything is the single pass.
    assert full == pytest.approx(
        metrics.perplexity(model, tok, text, mode="single", max_length=400), rel=1e-4
    )


def test_pair_truncation_keeps_the_second_text():
    df = pd.DataFrame({"a": ["x" * 100, "short"], "b": ["the description", "d"], "y": [0, 1]})
    task = data.Task.from_pandas(df, "a", "y", text_pair="b", eval_size=2, eval_df=df)
    tok = byte_tokenizer()
    encoded = task.encode(tok, "eval", max_length=32)
    long_one = tok.decode(encoded[0]["input_ids"])
    assert len(encoded[0]["input_ids"]) == 32 and long_one.endswith("\nthe description")
    assert tok.decode(encoded[1]["input_ids"]) == "short\nd"
