"""The report pages: what a reader is told about the parameter cells papermill leaves."""

import nbformat

from curlora.report import labelled_parameters, write_markdown


def _notebook(injected: bool) -> nbformat.NotebookNode:
    cells = [
        nbformat.v4.new_markdown_cell("# A question"),
        nbformat.v4.new_code_cell("rank: int = 16  # r", metadata={"tags": ["parameters"]}),
    ]
    if injected:
        cells.append(
            nbformat.v4.new_code_cell(
                "# Parameters\nrank = 4", metadata={"tags": ["injected-parameters"]}
            )
        )
    cells.append(nbformat.v4.new_code_cell("print(rank)"))
    return nbformat.v4.new_notebook(cells=cells)


def test_parameter_cells_are_labelled_only_when_the_runner_injected_values():
    plain = _notebook(injected=False)
    assert labelled_parameters(plain) is plain
    nb = _notebook(injected=True)
    labelled = labelled_parameters(nb)
    kinds = [(c.cell_type, "".join(c.source)[:12]) for c in labelled.cells]
    assert kinds == [
        ("markdown", "# A question"),
        ("markdown", "*The paramet"),
        ("code", "rank: int = "),
        ("markdown", "*The values "),
        ("code", "# Parameters"),
        ("code", "print(rank)"),
    ]
    assert len(nb.cells) == 4, "the notebook read from disk is left as it was"


def test_markdown_page_says_which_parameter_cell_ran(tmp_path):
    path = tmp_path / "01_question.ipynb"
    nbformat.write(_notebook(injected=True), path)
    page = (write_markdown([path], tmp_path / "report", "Report") / "01_question.md").read_text()
    defaults, ran = page.index("with their defaults"), page.index("The values this page ran with")
    assert defaults < page.index("rank: int = 16") < ran < page.index("rank = 4")
