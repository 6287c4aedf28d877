"""The weight gradient of an embedding bag over a batch, row-sparse with each row once.

Streams of a batch often gather the same rows (at batch 256, the TM of graphs/sine.json
gathers 5,120 rows of 1,280, about 300 of them distinct). torch's sparse gradient holds one
copy of a full row per gathered row, which the optimizer then sorts and merges; a dense one
is the size of the weight. Here the embedding bag's own backward sums the gathered rows
into one per distinct row: what the optimizer gets after its merge, the same rows and
numbers, without the copies or the sort.
"""
import torch


def distinct_rows_grad(grad: torch.Tensor, index: torch.Tensor, bag: torch.Tensor, weight: torch.Tensor | None,
                       shape) -> torch.Tensor:
    """Σ over i of weight[i] * grad[bag[i]] into row index[i] of a [shape] gradient (weight
    None: 1), as a coalesced sparse tensor. grad: [bags, width]; index, bag, weight: [N]."""
    distinct, slot = torch.unique(index, sorted=True, return_inverse=True)
    none = index.new_empty(0)
    rows = torch.ops.aten._embedding_bag_dense_backward(
        grad.contiguous(), slot, bag, none, none, distinct.numel(), False, 0, weight)
    return torch.sparse_coo_tensor(distinct.unsqueeze(0), rows, shape, check_invariants=False, is_coalesced=True)
