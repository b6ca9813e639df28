"""Exact, compact text and byte encodings of masks and scores.

Weight masks have as many entries as the weights, so they travel as packed bits (``numpy.packbits``: 1 bit per
weight) and scores as raw little-endian float32 bytes, both base64-encoded when they ride in JSON (the Trainer's
``trainer_state.json``). Both round-trip bit for bit, so a resumed run sees exactly the masks and scores it saved.
"""

from __future__ import annotations

import base64

import numpy as np
import torch

from hfprune.errors import HfpruneError


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """A boolean tensor flattened (row-major) into uint8 bytes, 8 entries per byte."""
    return torch.from_numpy(np.packbits(mask.detach().cpu().reshape(-1).numpy().astype(bool)))


def unpack_bits(packed: torch.Tensor, shape: tuple[int, ...] | list[int]) -> torch.Tensor:
    """Inverse of ``pack_bits``: a boolean tensor of ``shape``."""
    count = int(np.prod(shape)) if len(shape) else 1
    bits = np.unpackbits(packed.cpu().numpy().astype(np.uint8), count=count)
    return torch.from_numpy(bits.astype(bool)).reshape(tuple(shape))


def encode_mask(mask: torch.Tensor) -> str:
    """Base64 text of a boolean mask's packed bits."""
    return base64.b64encode(pack_bits(mask).numpy().tobytes()).decode("ascii")


def decode_mask(text: str, shape: tuple[int, ...] | list[int]) -> torch.Tensor:
    data = np.frombuffer(_b64decode(text, "mask"), dtype=np.uint8)
    return unpack_bits(torch.from_numpy(data.copy()), shape)


def encode_floats(values: torch.Tensor) -> str:
    """Base64 text of a tensor's float32 little-endian bytes (exact for float32 values)."""
    array = values.detach().cpu().to(torch.float32).reshape(-1).numpy().astype("<f4")
    return base64.b64encode(array.tobytes()).decode("ascii")


def decode_floats(text: str, shape: tuple[int, ...] | list[int]) -> torch.Tensor:
    data = np.frombuffer(_b64decode(text, "scores"), dtype="<f4")
    return torch.from_numpy(data.astype(np.float32)).reshape(tuple(shape))


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise HfpruneError(f"weight pruning state: {what} is not valid base64 ({exc})") from None
