"""A text (or text-pair) classification task with train, validation and evaluation splits.

Labels of any kind become ids in a stated, stable order: the distinct label values sorted
(numbers numerically, text alphabetically), so ``["neg", "pos"]`` is 0, 1 and stars 1..5 are
0..4; the sorted values, as text, are the label names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

#: How a sentence pair becomes one text for a causal LM.
PAIR_TEMPLATE = "{text}\n{text_pair}"
SPLITS = ("train", "val", "eval")


@dataclass
class Task:
    """A classification task: ``train``, ``val`` (for choosing settings) and ``eval`` (reported) splits.

    Each split is a DataFrame with ``text``, optional ``text_pair`` and integer ``label`` columns.
    """

    name: str
    train: pd.DataFrame
    eval: pd.DataFrame
    label_names: tuple[str, ...]
    val: pd.DataFrame | None = None
    description: str = ""
    has_pair: bool = field(init=False)

    def __post_init__(self) -> None:
        self.label_names = tuple(self.label_names)
        if self.val is None:
            self.val = self.train.iloc[:0]
        self.has_pair = "text_pair" in self.train.columns
        for split in SPLITS:
            df = self._split(split)
            if split != "val" or len(df):
                _check_frame(df, self.name, split, len(self.label_names), self.has_pair)

    @classmethod
    def from_pandas(
        cls,
        df: pd.DataFrame,
        text: str = "text",
        label: str = "label",
        text_pair: str | None = None,
        name: str = "custom",
        label_names: list[str] | None = None,
        train_size: int | None = None,
        eval_size: int | float | None = 0.2,
        seed: int = 0,
        eval_df: pd.DataFrame | None = None,
        val_size: int = 0,
        val_df: pd.DataFrame | None = None,
    ) -> Task:
        """A task from DataFrames: columns ``text`` (+ ``text_pair``) and ``label`` (any values).

        Rows are shuffled with ``seed``. The eval split is ``eval_df`` (if given) or the first
        ``eval_size`` shuffled rows (a count, a fraction, or None for all of ``eval_df``); the
        validation split ``val_df`` or the next ``val_size`` rows; the train split the next
        ``train_size`` rows (None = all the rest).
        """
        frames = {"pool": _standardise(df, text, label, text_pair, name)}
        for key, extra in (("eval", eval_df), ("val", val_df)):
            if extra is not None:
                frames[key] = _standardise(extra, text, label, text_pair, name)
        ids, label_names = label_ids(
            pd.concat([f["label"] for f in frames.values()]), label_names, name
        )
        for f in frames.values():
            f["label"] = f["label"].map(ids).astype(int)
        pool = frames["pool"].iloc[np.random.default_rng(seed).permutation(len(frames["pool"]))]
        if "eval" in frames:
            eval_part = _take(
                frames["eval"], eval_size if isinstance(eval_size, int) else None, seed
            )
        else:
            n_eval = (
                int(round(eval_size * len(pool))) if isinstance(eval_size, float) else eval_size
            )
            n_eval = len(pool) if n_eval is None else n_eval
            eval_part, pool = pool.iloc[:n_eval], pool.iloc[n_eval:]
        if "val" in frames:
            val_part = _take(frames["val"], val_size or None, seed)
        else:
            val_part, pool = pool.iloc[:val_size], pool.iloc[val_size:]
        wanted = {"train": train_size, "val": val_size, "eval": eval_size}
        have = {"train": len(pool), "val": len(val_part), "eval": len(eval_part)}
        short = [
            s
            for s, n in wanted.items()
            if isinstance(n, int) and not isinstance(n, bool) and n > have[s]
        ]
        if short:
            raise ValueError(
                f"Task {name!r} is too small for the requested sizes: "
                + ", ".join(f"{s}_size={wanted[s]} but {have[s]} rows left" for s in short)
                + f" (of {len(frames['pool'])} rows). Lower the sizes or give more data."
            )
        train_part = pool.iloc[:train_size] if train_size is not None else pool
        return cls(
            name,
            train_part.reset_index(drop=True),
            eval_part.reset_index(drop=True),
            tuple(label_names),
            val=val_part.reset_index(drop=True),
        )

    @classmethod
    def from_dataset(
        cls, dataset, text: str = "text", label: str = "label", text_pair=None, **kw
    ) -> Task:
        """A task from a ``datasets.Dataset`` (same arguments as ``from_pandas``)."""
        return cls.from_pandas(dataset.to_pandas(), text, label, text_pair, **kw)

    def majority_accuracy(self, split: str = "eval") -> float:
        """Accuracy of always predicting the split's most common label (the chance level)."""
        return float(self._split(split)["label"].value_counts(normalize=True).max())

    def label_counts(self, split: str = "train") -> dict[str, int]:
        """Number of examples per label name in ``split``."""
        counts = self._split(split)["label"].value_counts()
        return {n: int(counts.get(i, 0)) for i, n in enumerate(self.label_names)}

    def fingerprint(self) -> str:
        """SHA-256 of the task's content (texts, labels and label names of every split)."""
        digest = hashlib.sha256(repr(self.label_names).encode())
        for split in SPLITS:
            df = self._split(split)
            digest.update(split.encode())
            digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
        return digest.hexdigest()

    def _split(self, split: str) -> pd.DataFrame:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}.")
        return getattr(self, split)

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
        if not len(df):
            return []
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


def label_ids(
    labels: pd.Series, label_names: list[str] | None, name: str
) -> tuple[dict, tuple[str, ...]]:
    """Map each distinct label value to an id: by ``label_names`` when given, else sorted values.

    Integer labels with ``label_names`` must already be ids 0..K-1; text labels are looked up
    among the names. Without names, the sorted distinct values are the names.
    """
    values = labels.dropna().unique().tolist()
    if len(labels.dropna()) < len(labels):
        raise ValueError(
            f"Task {name!r}: {int(labels.isna().sum())} row(s) have no label; drop or fill them."
        )
    if len(values) < 2:
        raise ValueError(
            f"Task {name!r}: the labels have {len(values)} distinct value(s) ({values}); a "
            "classification task needs at least two classes."
        )
    if label_names is not None:
        names = tuple(str(n) for n in label_names)
        if all(_is_int(v) for v in values):
            bad = [v for v in values if not 0 <= int(v) < len(names)]
            if bad:
                raise ValueError(
                    f"Task {name!r}: label(s) outside 0..{len(names) - 1} (e.g. {bad[0]}); "
                    "labels must index label_names."
                )
            return {v: int(v) for v in values}, names
        unknown = [v for v in values if str(v) not in names]
        if unknown:
            raise ValueError(
                f"Task {name!r}: label {unknown[0]!r} is not among label_names {list(names)}."
            )
        return {v: names.index(str(v)) for v in values}, names
    if all(_is_int(v) or isinstance(v, float) for v in values):
        ordered = sorted(values, key=float)
    else:
        ordered = sorted(values, key=str)
    names = tuple(_label_name(v) for v in ordered)
    return {v: i for i, v in enumerate(ordered)}, names


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _label_name(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _standardise(
    df: pd.DataFrame, text: str, label: str, text_pair: str | None, name: str
) -> pd.DataFrame:
    wanted = {text: "text", label: "label"} | ({text_pair: "text_pair"} if text_pair else {})
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise ValueError(
            f"Task {name!r}: column(s) {missing} not in the data; it has {list(df.columns)}. "
            "Name the columns to use (text=..., text_pair=..., label=...)."
        )
    out = df[list(wanted)].rename(columns=wanted).reset_index(drop=True)
    if len(out) == 0:
        raise ValueError(f"Task {name!r}: the data set is empty; give at least one labelled row.")
    return out


def _take(df: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    if n is None or n >= len(df):
        return df
    return df.iloc[np.random.default_rng(seed).permutation(len(df))[:n]]


def _check_frame(df: pd.DataFrame, name: str, split: str, n_labels: int, has_pair: bool) -> None:
    if len(df) == 0:
        raise ValueError(
            f"Task {name!r}: the {split} split is empty; lower the other split sizes or give more data."
        )
    if not pd.api.types.is_integer_dtype(df["label"]):
        raise ValueError(
            f"Task {name!r}: {split} labels must be integer ids (got {df['label'].dtype}); build "
            "tasks with Task.from_pandas, which maps label values to ids."
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
        column = next(
            c for c in cols if (df[c].isna() | (df[c].astype(str).str.strip() == "")).any()
        )
        raise ValueError(
            f"Task {name!r}: {int(blank.sum())} {split} row(s) have an empty {column!r} (first at "
            f"row {int(blank.idxmax())}); drop or fill them before building the task."
        )
