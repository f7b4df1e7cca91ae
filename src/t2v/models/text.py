"""Prompt embeddings from a CLIP text encoder: the conditioning of every text-to-video U-Net here.

Stable Diffusion (Rombach et al. 2022) conditions cross-attention on the last hidden state of CLIP's
text transformer for the prompt padded to 77 tokens; the empty prompt "" gives the unconditional
embedding used by classifier-free guidance (Ho & Salimans 2022).
"""

from __future__ import annotations

import torch
from torch import Tensor
from transformers import CLIPTextModel, PreTrainedTokenizerBase


@torch.no_grad()
def encode_prompts(
    tokenizer: PreTrainedTokenizerBase,
    text_encoder: CLIPTextModel,
    prompts: list[str],
    device: torch.device | str,
) -> Tensor:
    """Embed prompts -> (B, L, D) with L = tokenizer.model_max_length (77), D = the encoder's width.

    Padded to L and truncated past it, like Stable Diffusion. Each distinct prompt goes through the
    encoder once (a batch with a repeated negative prompt costs one row). "" is allowed: it is the
    unconditional embedding. The result has the encoder's dtype and lives on `device`.
    """
    unique = list(dict.fromkeys(prompts))  # distinct prompts, first-seen order
    tokens = tokenizer(
        unique,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    ids = tokens.input_ids.to(device)  # (U, L)
    hidden = text_encoder(ids).last_hidden_state  # (U, L, D)
    index = torch.tensor([unique.index(p) for p in prompts], device=hidden.device)
    return hidden.index_select(0, index)  # (B, L, D)
