"""Training objectives that plug into any loop (``loss = objective(images, labels)``)."""
from .hard_negative import (
    HardNegativeBatch,
    HardNegativeOptimizer,
    build_class_index,
    gather_rows,
    symmetric_info_nce,
    symmetric_info_nce_from_logits,
)

__all__ = ["HardNegativeOptimizer", "HardNegativeBatch", "symmetric_info_nce", "symmetric_info_nce_from_logits",
           "build_class_index", "gather_rows"]
