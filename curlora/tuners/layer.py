"""Adapter layers: a frozen base layer plus alpha·C·U·R per named adapter, with frozen C, R and a
trainable r×r U (PEFT's ``BaseTunerLayer`` contract: several adapters, merge/unmerge, disable).

``DeltaLayer`` holds what every adapter layer here shares (forward, merge/unmerge, PEFT's delta
weight), whatever holds ΔW. ``FactoredLayer`` does the factored math and the checks a saved
adapter must pass to load; two subclasses choose the frozen factors. ``CURLoRALayer`` takes
actual columns and rows of the weight (Fawi 2024) and saves only their indices: C and R are
rebuilt from the base weights. ``SVDPeerLayer`` takes truncated-SVD factors (LoRA-XS, Bałazy et
al. 2024) and saves the factors themselves, because singular vectors can change sign between
dtypes, devices and LAPACK builds, so a rebuilt basis would not be the one U was trained in.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from peft.tuners._buffer_dict import BufferDict
from peft.tuners.tuners_utils import BaseTunerLayer, check_adapters_to_merge
from torch import nn
from transformers.pytorch_utils import Conv1D

from curlora.cur import check_weight, select_indices
from curlora.targets import check_rank, fused_split, weight_matrix
from curlora.tuners.config import CURLoRAConfig, FactoredConfig, SVDPeerConfig

#: Entries of each side of a weight's sketch (its fingerprint).
SKETCH = 64
#: Relative difference below which two sketches are the same weights in another precision:
#: bf16 or fp16 rounding moves a sketch by about 1e-3; other weights move it by order 1.
SKETCH_TOLERANCE = 5e-3


def weight_fingerprint(W: torch.Tensor) -> torch.Tensor:
    """A sketch of a weight: W·g and h·W for fixed ±1 vectors g, h, each projected to 64 numbers
    by fixed ±1 matrices (so every entry of W counts), 2 × 64 numbers (float32).

    A hash of the exact bits would refuse the same checkpoint loaded in another precision
    (fp32 → fp16 → bf16 rounds differently from fp32 → bf16); the sketch moves by the
    rounding only, while any other weight moves it by order 1.
    """
    w = W.detach().to("cpu", torch.float64)
    g = torch.Generator().manual_seed(0)

    def signs(*shape: int) -> torch.Tensor:
        return torch.randint(0, 2, shape, generator=g, dtype=torch.float64) * 2 - 1

    right, left = signs(w.shape[1]), signs(w.shape[0])
    rows, cols = signs(SKETCH, w.shape[0]), signs(w.shape[1], SKETCH)
    return torch.cat([rows @ (w @ right), (left @ w) @ cols]).float()


def sketch_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative difference of two weight sketches (0 for the same weights in any precision)."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    if a.shape != b.shape:
        return float("inf")
    return float((a - b).norm() / a.norm().clamp_min(1e-30))


def _encode(settings: dict) -> torch.Tensor:
    return torch.frombuffer(
        bytearray(json.dumps(settings, sort_keys=True).encode()), dtype=torch.uint8
    )


def _decode(tensor: torch.Tensor) -> dict:
    return json.loads(bytes(tensor.cpu().tolist()).decode())


def layer_generator(seed: int, name: str) -> torch.Generator:
    """A CPU generator for one layer: its picks depend on the seed and the layer's name only."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def _other_names(prefix: str, parts: tuple[str, ...]) -> tuple[str, ...]:
    """PEFT's ``other_param_names``: the per-adapter containers besides U, and the settings dicts."""
    return (*(f"{prefix}{p}" for p in parts), "r", "alpha", "split")


class DeltaLayer(nn.Module, BaseTunerLayer):
    """A frozen base layer plus a ΔW per named adapter: the forward pass, merge, unmerge and PEFT's
    delta weight, whatever holds ΔW (thin factors here, a dense matrix in ``curlora.tuners.full``).
    """

    def holds(self, adapter_name: str) -> bool:
        """Whether this layer carries the adapter ``adapter_name``."""
        raise NotImplementedError

    def delta_matrix(self, adapter_name: str) -> torch.Tensor:
        """The update of one adapter as an out × in matrix."""
        raise NotImplementedError

    def _add_update(self, out: torch.Tensor, x: torch.Tensor, adapter_name: str) -> torch.Tensor:
        """``out`` plus x·ΔWᵀ of one adapter."""
        raise NotImplementedError

    def get_delta_weight(self, adapter_name: str) -> torch.Tensor:
        """The update in the base weight's own layout (PEFT's convention: in × out for Conv1D)."""
        delta = self.delta_matrix(adapter_name)
        return delta.T if isinstance(self.base_layer, Conv1D) else delta

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return self.base_layer(x, *args, **kwargs)
        out = self.base_layer(x, *args, **kwargs)
        if self.merged:
            return out
        for name in self.active_adapters:
            if self.holds(name):
                out = self._add_update(out, x, name)
        return out

    @torch.no_grad()
    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        """Add the active (or named) adapters' updates into the base weight."""
        W = weight_matrix(self.base_layer)
        for name in check_adapters_to_merge(self, adapter_names):
            if not self.holds(name):
                continue
            delta = self.delta_matrix(name).to(W.dtype)
            if safe_merge and not torch.isfinite(W + delta).all():
                raise ValueError(f"Merging adapter {name!r} gives NaN/Inf weights; it is broken.")
            W += delta
            self.merged_adapters.append(name)

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract every merged update again (the base weight up to floating-point rounding)."""
        W = weight_matrix(self.base_layer)
        while self.merged_adapters:
            W -= self.delta_matrix(self.merged_adapters.pop()).to(W.dtype)


class FactoredLayer(DeltaLayer):
    """``base(x) + alpha · x (C U R)ᵀ`` for each active adapter; U is the only trainable tensor.

    With ``split=k`` (fused Q/K/V) the output dimension is cut into k equal blocks, each with its
    own C, U, R; the tensors then carry a leading block dimension.
    """

    #: Attribute-name prefix of this method's tensors (PEFT's per-method prefix).
    prefix: ClassVar[str]
    #: Whether C and R are saved with the adapter (else rebuilt from the base weights).
    saves_factors: ClassVar[bool]
    config_cls: ClassVar[type[FactoredConfig]]

    def __init__(
        self,
        base_layer: nn.Module,
        adapter_name: str,
        config: FactoredConfig,
        target_name: str,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        BaseTunerLayer.__init__(self)
        self.base_layer = base_layer
        setattr(self, f"{self.prefix}U", nn.ParameterDict())
        for part, persistent in self.buffer_parts().items():
            setattr(self, f"{self.prefix}{part}", BufferDict(persistent=persistent))
        self.r: dict[str, int] = {}
        self.alpha: dict[str, float] = {}
        self.split: dict[str, int] = {}
        self.merged_adapters: list[str] = []
        self._disable_adapters = False
        self._loading: list[str] = []  # adapters whose state is being loaded right now
        self.kwargs = kwargs
        out_f, in_f = weight_matrix(base_layer).shape
        self.out_features, self.in_features = out_f, in_f
        self.register_load_state_dict_post_hook(FactoredLayer._after_load)
        self.update_layer(adapter_name, config, target_name)

    # ------------------------------------------------------------------ the per-adapter state

    @classmethod
    def buffer_parts(cls) -> dict[str, bool]:
        """The frozen per-adapter tensors of this method, and whether each is saved."""
        return {
            "C": cls.saves_factors,
            "R": cls.saves_factors,
            "fingerprint": True,
            "settings": True,
        }

    def part(self, name: str) -> nn.Module:
        """One of this method's per-adapter containers: U, C, R, fingerprint, settings, ..."""
        return getattr(self, f"{self.prefix}{name}")

    def update_layer(self, adapter_name: str, config: FactoredConfig, target_name: str) -> None:
        """Add the adapter ``adapter_name`` built from ``config`` (U = 0, so outputs are unchanged)."""
        if self.merged:
            raise RuntimeError(
                f"{target_name}: cannot add adapter {adapter_name!r} while {self.merged_adapters} "
                "is merged: the base weight holds its update, not the pretrained columns and rows. "
                "Call unmerge_adapter() first."
            )
        W = weight_matrix(self.base_layer).detach()
        split = fused_split(target_name, config.split_fused)
        if W.shape[0] % split:
            raise ValueError(
                f"{target_name}: {W.shape[0]} output features do not split into {split} blocks."
            )
        rank = check_rank(config.r, W.shape[0] // split, W.shape[1], f" for {target_name}")
        blocks = list(W.chunk(split, dim=0))
        for block in blocks:
            check_weight(block)
        C, R = self._factors(adapter_name, blocks, rank, config, target_name)
        squeeze = (lambda t: t[0]) if split == 1 else (lambda t: t)
        self.part("C")[adapter_name] = squeeze(torch.stack(C)).contiguous()
        self.part("R")[adapter_name] = squeeze(torch.stack(R)).contiguous()
        shape = (rank, rank) if split == 1 else (split, rank, rank)
        self.part("U")[adapter_name] = nn.Parameter(
            torch.zeros(shape, dtype=W.dtype, device=W.device)
        )
        self.part("fingerprint")[adapter_name] = weight_fingerprint(W).to(W.device)
        self.part("settings")[adapter_name] = _encode(config.settings(split)).to(W.device)
        self.r[adapter_name], self.alpha[adapter_name] = rank, config.alpha
        self.split[adapter_name] = split
        self.set_adapter(self.active_adapters)

    def _factors(
        self,
        adapter_name: str,
        blocks: list[torch.Tensor],
        rank: int,
        config: FactoredConfig,
        target_name: str,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The frozen (C, R) of each output block."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the math

    def factors(self, adapter_name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(alpha·C, U, R) of one adapter; ΔW = alpha·C·U·R (with a leading block dim when split)."""
        return (
            self.alpha[adapter_name] * self.part("C")[adapter_name],
            self.part("U")[adapter_name],
            self.part("R")[adapter_name],
        )

    def delta_matrix(self, adapter_name: str) -> torch.Tensor:
        """The update alpha · C U R of one adapter as an out × in matrix."""
        C, U, R = self.factors(adapter_name)
        U = U.to(C.dtype)
        if self.split[adapter_name] == 1:
            return C @ U @ R
        return torch.einsum("kor,krs,ksi->koi", C, U, R).flatten(0, 1)

    def holds(self, adapter_name: str) -> bool:
        return adapter_name in self.part("U")

    def _add_update(self, out: torch.Tensor, x: torch.Tensor, adapter_name: str) -> torch.Tensor:
        """``out`` plus alpha · x (C U R)ᵀ in factored form: never builds the out × in matrix."""
        C = self.part("C")[adapter_name]
        R = self.part("R")[adapter_name]
        U = self.part("U")[adapter_name]
        alpha = self.alpha[adapter_name]
        # alpha scales the r×r core rather than the output, and the last product accumulates
        # into ``out`` inside the GEMM (addmm, beta = 1): no elementwise pass over out-sized
        # activations, forward or backward. Those passes were most of the adapter's own cost
        # on CPU (benchmarks/NOTES.md).
        U = U if alpha == 1 else alpha * U
        x = self._cast_input_dtype(x, R.dtype)
        if self.split[adapter_name] == 1:
            # F.linear(x, M) = x Mᵀ, so h = (x Rᵀ) Uᵀ: O(r·(in + r + out)) per token in all.
            h = F.linear(F.linear(x, R), U.to(R.dtype)).reshape(-1, U.shape[0])
            flat = out.reshape(-1, out.shape[-1])
            if flat.dtype == h.dtype or torch.is_autocast_enabled(out.device.type):
                return torch.addmm(flat, h, C.t()).view(out.shape)
            return out + (h @ C.t()).to(out.dtype).view(out.shape)
        h = torch.einsum("...i,kri->...kr", x, R)
        h = torch.einsum("...kr,ksr->...ks", h, U.to(R.dtype))
        return out + torch.einsum("...ks,kos->...ko", h, C).flatten(-2).to(out.dtype)

    # ------------------------------------------------------------------ loading a saved adapter

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # Refuse, with a reason, an adapter that was trained on other base weights or with other
        # settings, before a single tensor is copied.
        where = prefix.rstrip(".") or type(self).__name__
        for name in self.part("U"):
            key = f"{prefix}{self.prefix}settings.{name}"
            if key not in state_dict:
                if any(
                    k.startswith(prefix) and k.endswith(f".{name}") and self.prefix in k
                    for k in state_dict
                ):
                    raise ValueError(
                        f"{where}: the saved adapter {name!r} has tensors but no settings, so it "
                        "cannot be checked against this model; save it again with curlora."
                    )
                continue
            saved, mine = _decode(state_dict[key]), _decode(self.part("settings")[name])
            differ = [k for k in sorted(set(saved) | set(mine)) if saved.get(k) != mine.get(k)]
            if differ:
                detail = "; ".join(
                    f"{k}: saved {saved.get(k)!r}, here {mine.get(k)!r}" for k in differ
                )
                raise ValueError(
                    f"{where}: the saved adapter {name!r} was made with other settings ({detail}). "
                    "Load it with the settings it was saved with (PeftModel.from_pretrained reads "
                    "them from adapter_config.json when no config is passed)."
                )
            fingerprint = state_dict.get(f"{prefix}{self.prefix}fingerprint.{name}")
            if fingerprint is None:
                raise ValueError(
                    f"{where}: the saved adapter {name!r} carries no base-weight fingerprint, so "
                    "it cannot be checked against this model; save it again with curlora."
                )
            gap = sketch_difference(fingerprint, self.part("fingerprint")[name])
            if gap > SKETCH_TOLERANCE:
                raise ValueError(
                    f"{where}: the saved adapter {name!r} was trained on different base weights "
                    f"(their fingerprints differ by {gap:.1%}; a change of precision alone moves "
                    f"them by under {SKETCH_TOLERANCE:.1%}). Load it onto the base model (name and "
                    "revision) it was saved from."
                )
            self._loading.append(name)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @staticmethod
    def _after_load(module: FactoredLayer, incompatible_keys) -> None:
        loaded, module._loading = module._loading, []
        if loaded:
            module._rebuild_factors(loaded)

    def _rebuild_factors(self, names: list[str]) -> None:
        """Re-derive the frozen factors that are not saved, for the adapters just loaded."""

    def extra_repr(self) -> str:
        adapters = ", ".join(
            f"{n}: r={self.r[n]}, alpha={self.alpha[n]}, split={self.split[n]}"
            for n in self.part("U")
        )
        return f"in={self.in_features}, out={self.out_features}, adapters=[{adapters}]"


class CURLoRALayer(FactoredLayer):
    """CURLoRA (Fawi 2024): C = W[:, cols], R = W[rows, :] sampled once, U (r×r) starts at zero."""

    prefix = "curlora_"
    saves_factors = False
    config_cls = CURLoRAConfig
    adapter_layer_names = ("curlora_U",)
    other_param_names = _other_names(
        prefix, ("C", "R", "fingerprint", "settings", "col_idx", "row_idx")
    )

    @classmethod
    def buffer_parts(cls) -> dict[str, bool]:
        return {**super().buffer_parts(), "col_idx": True, "row_idx": True}

    def _factors(self, adapter_name, blocks, rank, config, target_name):
        generator = layer_generator(config.seed, target_name)
        cols = torch.stack(
            [select_indices(b, "columns", rank, config.sampling, generator) for b in blocks]
        )
        rows = torch.stack(
            [select_indices(b, "rows", rank, config.sampling, generator) for b in blocks]
        )
        squeeze = (lambda t: t[0]) if len(blocks) == 1 else (lambda t: t)
        device = blocks[0].device
        self.curlora_col_idx[adapter_name] = squeeze(cols).to(device)
        self.curlora_row_idx[adapter_name] = squeeze(rows).to(device)
        return self._select(blocks, cols, rows)

    @staticmethod
    def _select(blocks, cols, rows) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        dev = blocks[0].device
        C = [b[:, c.to(dev)] for b, c in zip(blocks, cols, strict=True)]
        R = [b[r.to(dev), :] for b, r in zip(blocks, rows, strict=True)]
        return C, R

    @torch.no_grad()
    def _rebuild_factors(self, names: list[str]) -> None:
        W = weight_matrix(self.base_layer).detach()
        if self.merged:
            raise RuntimeError(
                "Load adapters into an unmerged model (call unmerge_adapter() first): a merged "
                "base weight no longer holds the columns and rows C and R are taken from."
            )
        for name in names:
            split = self.split[name]
            cols = self.curlora_col_idx[name].reshape(split, -1)
            rows = self.curlora_row_idx[name].reshape(split, -1)
            blocks = list(W.chunk(split, dim=0))
            out_b, in_b = blocks[0].shape
            if cols.numel() and (int(cols.min()) < 0 or int(cols.max()) >= in_b):
                raise ValueError(f"Adapter {name!r}: column indices out of range 0..{in_b - 1}.")
            if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= out_b):
                raise ValueError(f"Adapter {name!r}: row indices out of range 0..{out_b - 1}.")
            C, R = self._select(blocks, cols, rows)
            squeeze = (lambda t: t[0]) if split == 1 else (lambda t: t)
            dtype = self.curlora_C[name].dtype
            self.curlora_C[name] = squeeze(torch.stack(C)).to(dtype).contiguous()
            self.curlora_R[name] = squeeze(torch.stack(R)).to(dtype).contiguous()


class SVDPeerLayer(FactoredLayer):
    """The r×r SVD peer: C = U_r·Σ_r and R = V_rᵀ from W's truncated SVD, frozen and saved."""

    prefix = "svdpeer_"
    saves_factors = True
    config_cls = SVDPeerConfig
    adapter_layer_names = ("svdpeer_U",)
    other_param_names = _other_names(prefix, ("C", "R", "fingerprint", "settings"))

    def _factors(self, adapter_name, blocks, rank, config, target_name):
        C, R = [], []
        for block in blocks:
            u, s, vh = torch.linalg.svd(block.double(), full_matrices=False)
            u, vh = u[:, :rank], vh[:rank]
            # A sign convention (largest entry of each left singular vector positive) makes a
            # fresh build the same across LAPACK builds; saving the factors makes loads exact.
            flip = torch.sign(u.gather(0, u.abs().argmax(0, keepdim=True)))
            C.append((u * flip * s[:rank]).to(block.dtype))
            R.append((vh * flip.T).to(block.dtype))
        return C, R
