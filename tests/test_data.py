"""Tasks from in-test data, the hub loaders on local files of the hub schema, and metrics."""

from __future__ import annotations

import math
import warnings

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
    with_val = data.Task.from_pandas(_frame(), "sentence", "y", eval_size=10, val_size=6, seed=3)
    assert len(with_val.val) == 6 and len(with_val.train) == 24
    assert not set(with_val.val["text"]) & (
        set(with_val.train["text"]) | set(with_val.eval["text"])
    )


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
        data.Task.from_pandas(
            _frame().assign(y=[0, 5] * 20), "sentence", "y", label_names=["a", "b"]
        )
    with pytest.raises(ValueError, match="empty .text."):
        data.Task.from_pandas(_frame().assign(sentence=""), "sentence", "y")
    with pytest.raises(ValueError, match="columns"):
        data.Task.from_pandas(_frame(), "text", "y")
    with pytest.raises(ValueError, match="at least two classes"):
        data.Task.from_pandas(_frame().assign(y=1), "sentence", "y")
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
    task = data.glue_mrpc(data_files=files, eval_size=None)
    assert task.has_pair and len(task.train) == 4 and len(task.eval) == 4
    assert task.label_names == ("not_equivalent", "equivalent")
    sst = {"sentence": ["good", "bad", "fine"], "label": [1, 0, 1], "idx": [0, 1, 2]}
    files = {
        "train": _write(tmp_path, "sst_train", sst),
        "validation": _write(tmp_path, "sst_val", sst),
    }
    assert data.glue_sst2(data_files=files, train_size=2).train.shape[0] == 2


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
    paper = data.sentiment140(data_files=files, paper_convention=True)
    assert len(paper.train) == 6 and paper.label_counts("train") == {"negative": 4, "positive": 2}
    assert len(paper.eval) == 1000 and paper.majority_accuracy() == 1.0  # all negative
    fixed = data.sentiment140(data_files=files, eval_size=None)
    assert len(fixed.eval) == 4 and fixed.label_counts("eval") == {"negative": 2, "positive": 2}
    assert fixed.label_counts("train") == {"negative": 1100, "positive": 100}


def test_wikitext_loader_and_offline_error(tmp_path, monkeypatch):
    files = {"test": _write(tmp_path, "wt_test", {"text": [" = Title = ", " Some text . "]})}
    assert data.wikitext2_text(data_files=files) == " = Title = \n\n Some text . "
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="offline tasks \\(wiki-pairs"):
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


def test_pair_truncation_keeps_the_second_text():
    df = pd.DataFrame({"a": ["x" * 100, "short"], "b": ["the description", "d"], "y": [0, 1]})
    task = data.Task.from_pandas(df, "a", "y", text_pair="b", eval_size=2, eval_df=df)
    tok = byte_tokenizer()
    encoded = task.encode(tok, "eval", max_length=32)
    long_one = tok.decode(encoded[0]["input_ids"])
    assert len(encoded[0]["input_ids"]) == 32 and long_one.endswith("\nthe description")
    assert tok.decode(encoded[1]["input_ids"]) == "short\nd"


# --- your own data: files, references, labels, and every bad input -------------------------


def _reviews(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "review": [
                f"review number {i} of {'a good' if i % 2 else 'a bad'} film" for i in range(n)
            ],
            "stars": rng.choice(["neg", "pos"], n),
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_task_files_of_every_format(tmp_path, suffix):
    df = _reviews().rename(columns={"review": "text", "stars": "label"})
    path = tmp_path / f"reviews{suffix}"
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".tsv":
        df.to_csv(path, index=False, sep="\t")
    elif suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path)
    task = data.load_task(str(path), train_size=30, val_size=10, eval_size=20, seed=0)
    assert task.name == "reviews" and task.label_names == ("neg", "pos")  # sorted, from the data
    assert (len(task.train), len(task.val), len(task.eval)) == (30, 10, 20)


def test_column_options_and_label_orders(tmp_path):
    path = tmp_path / "films.csv"
    _reviews().to_csv(path, index=False)
    task = data.load_task(f"{path}?text=review&label=stars&name=films", eval_size=10)
    assert task.name == "films" and task.label_names == ("neg", "pos")
    stated = data.load_task(f"{path}?text=review&label=stars&labels=pos,neg", eval_size=10)
    assert stated.label_names == ("pos", "neg")
    stars = pd.DataFrame({"text": [f"t{i}" for i in range(30)], "label": [5, 1, 3] * 10})
    task = data.Task.from_pandas(stars, eval_size=6)
    assert task.label_names == ("1", "3", "5") and set(task.train["label"]) <= {0, 1, 2}
    with pytest.raises(ValueError, match="unknown option"):
        data.load_task(f"{path}?txt=review")


def _write_frame(tmp_path, name, frame, **kw):
    path = tmp_path / name
    frame.to_csv(path, index=False, **kw)
    return str(path)


def test_bad_inputs_get_clear_errors(tmp_path):
    good = _reviews().rename(columns={"review": "text", "stars": "label"})
    with pytest.raises(FileNotFoundError, match="No task file"):
        data.load_task(str(tmp_path / "missing.csv"))
    with pytest.raises(ValueError, match=r"column\(s\) \['text'\] not in the data"):
        data.load_task(_write_frame(tmp_path, "a.csv", good.rename(columns={"text": "body"})))
    with pytest.raises(ValueError, match="have no label"):
        data.load_task(_write_frame(tmp_path, "b.csv", good.assign(label=None)))
    with pytest.raises(ValueError, match="at least two classes"):
        data.load_task(_write_frame(tmp_path, "c.csv", good.assign(label="pos")))
    pairs = good.assign(second=["x"] * 59 + [None])
    with pytest.raises(ValueError, match="empty 'text_pair'"):
        data.load_task(_write_frame(tmp_path, "d.csv", pairs) + "?text_pair=second", eval_size=10)
    latin = tmp_path / "e.csv"
    latin.write_bytes("text,label\ncafé crème,pos\nnaïve,neg\n".encode("latin-1"))
    with pytest.raises(ValueError, match="encoding=latin-1"):
        data.load_task(str(latin))
    assert data.load_task(f"{latin}?encoding=latin-1", eval_size=1).label_names == ("neg", "pos")
    with pytest.raises(ValueError, match="too small.*train_size=100 but 30 rows left"):
        data.load_task(_write_frame(tmp_path, "f.csv", good), train_size=100, eval_size=30)
    with pytest.raises(ValueError, match="not a built-in"):
        data.load_task("no-such-task")


def test_registered_tasks_and_task_objects(tmp_path, monkeypatch):
    from curlora.data import references
    from curlora.experiment import preset
    from curlora.experiment.sweep import _sendable_tasks

    # This test's registrations stay in this test (later tests send the registry to workers).
    monkeypatch.setattr(references, "_REGISTRY", {})
    frame = _reviews().rename(columns={"review": "text", "stars": "label"})

    def build(train_size=None, val_size=0, eval_size=10, seed=0):
        return data.Task.from_pandas(
            frame,
            name="mine",
            train_size=train_size,
            val_size=val_size,
            eval_size=eval_size,
            seed=seed,
        )

    assert data.register_task("mine", build) == "mine"
    assert len(data.load_task("mine", train_size=8, eval_size=10).train) == 8
    fixed = build(eval_size=20)
    ref = data.task_reference(fixed)
    assert (
        ref.startswith("mine@")
        and len(data.load_task(ref, train_size=12, val_size=4, eval_size=5).val) == 4
    )
    with pytest.raises(ValueError, match="new, non-empty name"):
        data.register_task("wiki-pairs", build)
    # Worker processes receive the tasks a sweep uses: a Task object travels, a local function
    # does not, and the error says what to do.
    assert set(_sendable_tasks([preset("smoke", tasks=(ref,))])) == {ref}
    with pytest.raises(ValueError, match="Define the builder at module level"):
        _sendable_tasks([preset("smoke", tasks=("mine",))])


def test_fingerprints_follow_file_content(tmp_path):
    path = tmp_path / "r.csv"
    _reviews().to_csv(path, index=False)
    first = data.source_fingerprint(str(path))
    assert data.source_fingerprint(str(path)) == first
    _reviews(seed=1).to_csv(path, index=False)
    assert data.source_fingerprint(str(path)) != first
    assert data.source_fingerprint("wiki-pairs").startswith("offline:wiki-pairs")


def test_local_model_folders(tmp_path):
    from curlora.models import check_model, load_model, model_fingerprint

    model, tok = load_model("tiny-llama")
    model.save_pretrained(tmp_path / "mine")
    tok.save_pretrained(tmp_path / "mine")
    again, _ = load_model(str(tmp_path / "mine"))
    ids = torch.tensor([[1, 2, 3]])
    assert torch.equal(again(ids).logits, model(ids).logits)
    assert model_fingerprint(str(tmp_path / "mine")).startswith("local:")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    for call in (check_model, load_model):
        with pytest.raises(FileNotFoundError, match="weights"):
            call(str(tmp_path / "empty"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(OSError, match="offline models"):
            check_model("no-such-org/no-such-model")
