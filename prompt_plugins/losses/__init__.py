"""Training objectives that plug into any loop: plain modules over features, logits or a prompted model."""
from .attribute_anchor import DEFAULT_ATTRIBUTE_BANK, AnchorStream, AttributeAnchorLoss
from .hard_negative import (
    HardNegativeBatch,
    HardNegativeOptimizer,
    build_class_index,
    gather_rows,
    symmetric_info_nce,
    symmetric_info_nce_from_logits,
)

__all__ = ["HardNegativeOptimizer", "HardNegativeBatch", "symmetric_info_nce", "symmetric_info_nce_from_logits",
           "build_class_index", "gather_rows", "AttributeAnchorLoss", "AnchorStream", "DEFAULT_ATTRIBUTE_BANK"]
