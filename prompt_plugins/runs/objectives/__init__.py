"""What ``train`` optimises for each method, built from a recipe: the adapter to save, the loss of a batch, the
trainable parameters, the random generators and per-epoch state a checkpoint must carry.

One module per method family registers its builder (``register_objective``): ``cross_entropy.py`` (coop, ivlp,
maple, ga2), ``dpc.py``, ``promptsrc.py``, ``kgcoop.py``, ``promptkd.py``. ``base.py`` holds ``Objective``,
``ObjectiveInputs`` and the recipe helpers.
"""
from . import cross_entropy, dpc, kgcoop, promptkd, promptsrc  # noqa: F401  (register the builders)
from .base import (OBJECTIVES, Objective, ObjectiveInputs, build_objective, check_base_labels, effective_recipe,
                   method_recipe, register_objective, single_device, training_items)

#: the recipe each method trains with unless ``--recipe`` names another
DEFAULT_RECIPES = {method: spec.default_recipe for method, spec in OBJECTIVES.items()}
METHODS = tuple(DEFAULT_RECIPES)

__all__ = ["Objective", "ObjectiveInputs", "OBJECTIVES", "DEFAULT_RECIPES", "METHODS", "build_objective",
           "register_objective", "effective_recipe", "method_recipe", "single_device", "check_base_labels",
           "training_items"]
