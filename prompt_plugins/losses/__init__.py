"""Pieces every training objective can share: the symmetric InfoNCE and the DDP row gathering.

The methods' own losses live with their method: ``HardNegativeOptimizer`` in ``methods/dpc``,
``AttributeAnchorLoss`` in ``methods/ga2`` (both also as ``prompt_plugins.HardNegativeOptimizer`` etc.).
"""
from .contrastive import symmetric_info_nce, symmetric_info_nce_from_logits
from .distributed import dist_ready, gather_rows, rank_sizes, unwrap_parallel

__all__ = ["symmetric_info_nce", "symmetric_info_nce_from_logits", "gather_rows", "rank_sizes", "dist_ready",
           "unwrap_parallel"]
