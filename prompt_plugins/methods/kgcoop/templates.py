"""CoOp's hand-crafted prompt per data set, the frozen target of KgCoOp's knowledge-guided term, shipped as data
(``coop_templates.json``, with the file it was read from). Keys are Dassl's ``DATASET.NAME`` ("OxfordPets"); a name
is matched without case, "_" or "-" ("oxford_pets", "food-101"), and a few short names are aliases ("dtd")."""
from __future__ import annotations

import json
from pathlib import Path

_DATA = json.loads((Path(__file__).with_name("coop_templates.json")).read_text())

#: Dassl data set name -> template (``htyao89/KgCoOp@c43ccc3:KgCoOp/trainers/kgcoop.py`` ``CUSTOM_TEMPLATES``)
COOP_TEMPLATES: dict[str, str] = dict(_DATA["templates"])
#: the template of a data set the table does not name (the release raises a KeyError there)
DEFAULT_TEMPLATE: str = _DATA["default"]
TEMPLATES_SOURCE: str = _DATA["source"]


def _key(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "").replace(" ", "")


_LOOKUP = {_key(k): v for k, v in COOP_TEMPLATES.items()}
_LOOKUP.update({_key(alias): COOP_TEMPLATES[name] for alias, name in _DATA["aliases"].items()})


def hand_crafted_template(dataset: str | None) -> str:
    """The CoOp template of ``dataset`` ("OxfordPets" / "oxford_pets" -> "a photo of a {}, a type of pet."), or
    "a photo of a {}." for a data set CoOp has none for (or None)."""
    return DEFAULT_TEMPLATE if dataset is None else _LOOKUP.get(_key(dataset), DEFAULT_TEMPLATE)


def knows(dataset: str) -> bool:
    """Whether ``dataset`` has its own CoOp template (else ``hand_crafted_template`` gives the default)."""
    return _key(dataset) in _LOOKUP
