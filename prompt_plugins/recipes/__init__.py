"""Recipes: the released hyperparameters of CoOp, DPC, ViFi-CLIP (IVLP) and GA2-CLIP as data.

``get_recipe(name)`` / ``RECIPES`` give frozen ``Recipe`` records (numbers, the config they were read from,
notes on what differs between files); ``recipe.build_optimizer(params)`` and
``recipe.build_scheduler(optimizer, steps_per_epoch)`` reproduce the released optimizer and lr schedule in a
user's own training loop, and ``recipe.wrap_options()`` the prompt (see ``recipe.py`` for a full loop).
Files: ``recipe.py`` (the record and its builders), ``schedules.py`` (the three lr schedules),
``released.py`` (the recipes).
"""
from .recipe import Recipe
from .released import RECIPES, get_recipe
from .schedules import SCHEDULES, update_epoch

__all__ = ["Recipe", "RECIPES", "get_recipe", "SCHEDULES", "update_epoch"]
