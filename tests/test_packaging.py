"""A wheel built from this checkout works where HF users install it: outside the checkout."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

OUTSIDE = textwrap.dedent("""
    import sys, tempfile
    import torch, peft
    import curlora
    from curlora import CURLoRAConfig, count_parameters
    from curlora.tables import paper_results
    from curlora.models import load_model

    assert curlora.__file__.startswith(sys.prefix), curlora.__file__  # the wheel, not the checkout
    assert count_parameters("mistralai/Mistral-7B-v0.3", "lora", 16) == 9_437_184
    assert count_parameters("mistralai/Mistral-7B-v0.3", "curlora", 16) == 24_576
    assert len(paper_results()) > 10
    from curlora.plan import load_plan
    assert load_plan().sha256 and load_plan().claims  # the registered plan travels too
    model = peft.get_peft_model(load_model("tiny-llama")[0], CURLoRAConfig(r=4))
    folder = tempfile.mkdtemp()
    model.save_pretrained(folder)
    peft.PeftModel.from_pretrained(load_model("tiny-llama")[0], folder)
    print("ok")
""")


def test_wheel_carries_its_data_and_works_outside_the_checkout(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next(dist.glob("curlora-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "curlora/resources/paper_results.csv" in names
    assert "curlora/resources/analysis_plan.toml" in names
    assert "curlora/resources/configs/mistralai--Mistral-7B-v0.3.json" in names
    assert "curlora/tuners/layer.py" in names
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    # The heavy dependencies (torch, transformers, peft) come from this environment through a
    # path entry, which does not run its .pth files: the checkout's editable install stays out.
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "outer-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run(
        [str(python), "-c", OUTSIDE],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")
