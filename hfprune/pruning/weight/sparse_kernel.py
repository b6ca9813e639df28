"""A sparse-kernel copy of a weight-pruned model: each prunable matrix becomes a ``torch.sparse`` CSR weight, so the
forward skips the zeros that dense kernels multiply anyway. For measuring what weight sparsity buys on a CPU (it
buys nothing with dense kernels), not for training: CSR layers run under ``torch.no_grad`` (not ``inference_mode``).
"""

from __future__ import annotations

import copy
import warnings

import torch
import torch.nn as nn
from transformers import PreTrainedModel

from hfprune.pruning.weight.matrices import prunable_matrices


class CsrLinear(nn.Module):
    """``y = x W^T + b`` with ``W`` (out, in) stored as sparse CSR; computed as ``b + W @ x^T`` (sparse @ dense,
    the product CPU CSR kernels are fastest at)."""

    def __init__(self, weight_out_in: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight_out_in.shape
        with warnings.catch_warnings():  # "sparse CSR support is in beta": known, and what is measured here
            warnings.simplefilter("ignore", UserWarning)
            self.register_buffer("weight", weight_out_in.detach().to_sparse_csr())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        out = torch.sparse.mm(self.weight, flat.t()).t()
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)


def to_sparse_kernel(model: PreTrainedModel) -> PreTrainedModel:
    """A deep copy of ``model`` (compacted, pruned weights zeroed) whose prunable matrices use ``CsrLinear``."""
    sparse = copy.deepcopy(model).eval()
    modules = dict(sparse.named_modules())
    for matrix in prunable_matrices(sparse):
        parent_name, _, child = matrix.name.rpartition(".")
        bias = getattr(matrix.module, "bias", None)
        setattr(modules[parent_name], child, CsrLinear(matrix.out_in(matrix.weight.detach()), bias))
    return sparse
