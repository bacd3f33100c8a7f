"""The 60 ImageNet prompt templates PromptSRC averages its frozen text target over ("textual diversity"), shipped
as data (``imagenet_templates.json``, with the file they were read from)."""
from __future__ import annotations

import json
from pathlib import Path

_DATA = json.loads((Path(__file__).with_name("imagenet_templates.json")).read_text())

#: ``muzairkhattak/PromptSRC@bb95c77:trainers/imagenet_templates.py`` ``IMAGENET_TEMPLATES``, in its order
IMAGENET_TEMPLATES: tuple[str, ...] = tuple(_DATA["templates"])
TEMPLATES_SOURCE: str = _DATA["source"]
