"""Training losses and regularisers."""
from .attribute_anchor import DEFAULT_ATTRIBUTE_BANK, AnchorStream, AttributeAnchorLoss

__all__ = ["AttributeAnchorLoss", "AnchorStream", "DEFAULT_ATTRIBUTE_BANK"]
