"""The paper's data sets from the Hugging Face hub (GLUE MRPC and SST-2, Sentiment140, WikiText-2).

Each loader also takes ``data_files``: local files with the hub's schema (mirrors, tests).
"""

from __future__ import annotations

from curlora.data.task import Task


def _hub(path: str, config: str | None, data_files: dict[str, str] | None):
    import datasets

    if data_files is not None:  # local files with the hub schema (tests, mirrors)
        kind = next(iter(data_files.values())).rsplit(".", 1)[-1]
        return datasets.load_dataset({"jsonl": "json"}.get(kind, kind), data_files=data_files)
    try:
        return datasets.load_dataset(path, config)
    except Exception as err:  # datasets raises ConnectionError, OSError, HfHubHTTPError...
        raise OSError(
            f"Could not load {path}{'/' + config if config else ''} from the Hugging Face hub "
            f"({type(err).__name__}: {err}). Offline, use the offline tasks (wiki-pairs, "
            "movie-snippets, tweets-3class) or your own files."
        ) from err


def glue_mrpc(data_files=None, **kw) -> Task:
    """GLUE MRPC: sentence pairs, paraphrase or not; eval on the validation split."""
    ds = _hub("nyu-mll/glue", "mrpc", data_files)
    return Task.from_pandas(
        ds["train"].to_pandas(),
        "sentence1",
        "label",
        "sentence2",
        name="mrpc",
        label_names=["not_equivalent", "equivalent"],
        eval_df=ds["validation"].to_pandas(),
        **kw,
    )


def glue_sst2(data_files=None, **kw) -> Task:
    """GLUE SST-2: movie-review sentences, negative/positive; eval on the validation split."""
    ds = _hub("nyu-mll/glue", "sst2", data_files)
    return Task.from_pandas(
        ds["train"].to_pandas(),
        "sentence",
        "label",
        name="sst2",
        label_names=["negative", "positive"],
        eval_df=ds["validation"].to_pandas(),
        **kw,
    )


def sentiment140(data_files=None, paper_convention: bool = False, **kw) -> Task:
    """Sentiment140 tweets (labels 0 = negative, 2 = neutral, 4 = positive).

    ``paper_convention=True`` reproduces the reference code: train on the *test* split with
    labels mapped by ``// 4`` (so neutral becomes negative) and evaluate on the first 1000 rows
    of the *train* split (which the hub's file orders by label, so all are negative: the
    majority level is 1.0). The default is the corrected variant: binary, train on a shuffled
    sample of the train split, evaluate on the test split's negative and positive tweets.
    """
    ds = _hub("stanfordnlp/sentiment140", None, data_files)
    train, test = ds["train"].to_pandas(), ds["test"].to_pandas()
    names = ["negative", "positive"]
    if paper_convention:
        train_part = test.assign(label=test["sentiment"] // 4)
        eval_part = train.iloc[:1000].assign(label=lambda d: d["sentiment"] // 4)
        kw = {**kw, "eval_size": None}
        return Task.from_pandas(
            train_part,
            "text",
            "label",
            name="sentiment140-paper",
            label_names=names,
            eval_df=eval_part,
            **kw,
        )
    binary = test[test["sentiment"] != 2]
    return Task.from_pandas(
        train.assign(label=train["sentiment"] // 4),
        "text",
        "label",
        name="sentiment140",
        label_names=names,
        eval_df=binary.assign(label=binary["sentiment"] // 4),
        **kw,
    )


def wikitext2_text(data_files=None, split: str = "test") -> str:
    """WikiText-2 (raw) ``split`` as one string, lines joined as in the transformers perplexity guide."""
    ds = _hub("Salesforce/wikitext", "wikitext-2-raw-v1", data_files)
    return "\n\n".join(ds[split]["text"])


#: The paper's tasks by name; each builder takes Task.from_pandas size arguments and a seed.
HUB_TASKS = {
    "glue/mrpc": glue_mrpc,
    "glue/sst2": glue_sst2,
    "sentiment140": sentiment140,
    "sentiment140-paper": lambda **kw: sentiment140(paper_convention=True, **kw),
}
