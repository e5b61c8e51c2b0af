"""The executed notebooks as a report: an offline HTML site, and Markdown that GitHub renders.

Both come from nbconvert (already part of Jupyter: no second toolchain, and it renders exactly
what ran). The HTML site is one self-contained page per notebook (figures embedded) plus an
index; the scripts nbconvert's template would fetch from a CDN (MathJax, require.js, mermaid)
are left out, as the notebooks use neither TeX math, widgets in static pages, nor diagrams, so
the pages open from disk with no network. The Markdown version, with its figures as PNG files,
is what the repository commits for readers on GitHub.
"""

from __future__ import annotations

import html
import json
import logging
import re
import shutil
from pathlib import Path

import nbformat

from curlora.storage import write_text

#: Every script block, and every stylesheet link to another host.
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.S)
_REMOTE_LINK = re.compile(r"<link[^>]*\bhref=\"https?://[^\"]*\"[^>]*>")


def offline(page: str) -> str:
    """The page without anything it would fetch from another host (CDN scripts, stylesheets)."""
    page = _SCRIPT.sub(lambda m: "" if re.search(r"https?://", m.group(0)) else m.group(0), page)
    return _REMOTE_LINK.sub("", page)


#: What a reader is told of papermill's two parameter cells: the notebook's own (names, types,
#: meaning, defaults) and the one the runner injected (the values this page ran with).
_PARAMETER_LABELS = {
    "parameters": "*The parameters this notebook takes, with their defaults (the values this "
    "page ran with follow):*",
    "injected-parameters": "*The values this page ran with:*",
}


def labelled_parameters(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook with a one-line label before each parameter cell, when the runner injected
    values; otherwise the page would show two parameter cells with no word on which ran."""
    tags = [cell.get("metadata", {}).get("tags", []) for cell in nb.cells]
    if not any("injected-parameters" in t for t in tags):
        return nb
    labelled = nbformat.from_dict(nb)
    labelled.cells = []
    for cell, cell_tags in zip(nb.cells, tags, strict=True):
        label = next((_PARAMETER_LABELS[t] for t in cell_tags if t in _PARAMETER_LABELS), None)
        if label is not None:
            labelled.cells.append(nbformat.v4.new_markdown_cell(label))
        labelled.cells.append(cell)
    return labelled


def title_of(notebook: Path) -> str:
    """The notebook's first Markdown heading (its question), or its file name."""
    nb = json.loads(Path(notebook).read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return Path(notebook).stem


def render_site(executed: list[Path], dest: Path, title: str, findings: str | None = None) -> Path:
    """Write ``dest/index.html`` (the decision box first when ``findings`` is given), the
    findings page as ``findings.html``, and one HTML page per executed notebook; returns ``dest``."""
    from nbconvert import HTMLExporter

    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    exporter.log.setLevel(logging.ERROR)  # figures carry titles; no alt-text advice on the console
    links = []
    for path in executed:
        body, _ = exporter.from_notebook_node(
            labelled_parameters(nbformat.read(path, as_version=4))
        )
        body = offline(body)
        (dest / f"{path.stem}.html").write_text(body)
        links.append(f'<li><a href="{path.stem}.html">{html.escape(title_of(path))}</a></li>')
    summary = ""
    if findings is not None:
        (dest / "findings.html").write_text(_page(title + " — findings", _markdown(findings)))
        box = _markdown(opening_quotes(findings)).replace('href="#', 'href="findings.html#')
        summary = (
            f'{box}<p><a href="findings.html"><strong>The findings in one page</strong></a>: '
            "each claim with its interval, robustness and reading at every plasticity level."
            "</p><h2>The notebooks</h2>"
        )
    (dest / "index.html").write_text(
        _page(
            title,
            f"<h1>{html.escape(title)}</h1>{summary}<p>The executed notebooks of this run, "
            "figures and tables included. Every page opens from disk without a network.</p>"
            f"<ol>{''.join(links)}</ol>",
        )
    )
    return dest


def opening_quotes(page: str) -> str:
    """The block quotes a Markdown page opens with, after its title (the findings page's
    small-sample flag and decision box)."""
    blocks = page.split("\n\n")
    quoted = []
    for block in blocks[1:] if blocks and blocks[0].startswith("# ") else blocks:
        if not block.startswith(">"):
            break
        quoted.append(block)
    return "\n\n".join(quoted)


def _markdown(text: str) -> str:
    """GitHub-flavoured Markdown (tables, raw HTML anchors) as HTML."""
    import mistune

    return mistune.create_markdown(escape=False, plugins=["table", "strikethrough"])(text)


def _page(title: str, body: str) -> str:
    """A self-contained HTML page (no scripts, no remote styles)."""
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:52rem;margin:3rem auto;"
        "line-height:1.5;padding:0 1rem}blockquote{border-left:4px solid #4c72b0;margin:1rem 0;"
        "padding:.2rem 1rem;background:#f4f6fb}table{border-collapse:collapse;font-size:.9rem}"
        "td,th{border:1px solid #ccc;padding:.2rem .4rem}</style></head><body>"
        f"{body}</body></html>\n"
    )


def write_markdown(
    executed: list[Path], dest: Path, title: str, findings: str | None = None
) -> Path:
    """Write ``dest/README.md``, one Markdown page (+ PNG files) per executed notebook, and the
    findings page ``FINDINGS.md`` when given."""
    from nbconvert import MarkdownExporter

    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    exporter = MarkdownExporter()
    lines = [f"# {title}", ""]
    if findings is not None:
        (dest / "FINDINGS.md").write_text(findings)
        lines += ["[The findings in one page](FINDINGS.md).", ""]
    lines += ["The executed notebooks, as GitHub renders them:", ""]
    for path in executed:
        files = f"{path.stem}_files"
        body, resources = exporter.from_notebook_node(
            labelled_parameters(nbformat.read(path, as_version=4)),
            resources={"output_files_dir": files},
        )
        for name, data in resources.get("outputs", {}).items():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (dest / f"{path.stem}.md").write_text(body)
        lines.append(f"1. [{title_of(path)}]({path.stem}.md)")
    (dest / "README.md").write_text("\n".join(lines) + "\n")
    return dest


def replace_block(path: Path, name: str, content: str) -> None:
    """Replace the generated block ``name`` of a Markdown file (between its
    ``<!-- name:begin -->`` and ``<!-- name:end -->`` markers) with ``content``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = Path(path).read_text()
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ValueError(
            f"{path} needs exactly one {begin} … {end} pair around its generated {name} block; "
            "add the two markers where the block belongs."
        )
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    write_text(Path(path), f"{head}{begin}\n{content.rstrip()}\n{end}{tail}")
