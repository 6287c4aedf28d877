"""Fused forward/backward kernels of the hot node types: each is a torch.autograd.Function
with a hand-derived backward, checked against autograd in tests/test_fused_nodes.py and
tests/test_fused_tm.py. The node modules import them."""
