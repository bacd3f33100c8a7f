"""Runs of the base-to-new benchmark on real data: what the ``train``, ``eval`` and ``benchmark`` commands do.

``train(TrainPlan)`` (``train.py``): per seed, the task of ``prompt_plugins.data``, the method's objective built
from a recipe (``objectives.py``), the epoch loop with per-epoch training states and ``--resume``
(``trainer.py``, ``state.py``, ``progress.py``) and an adapter whose ``run`` section (``record.py``) says what it
was trained on. ``evaluate_adapters(EvalPlan)`` (``results.py``, ``evaluate.py``): base / new / HM on the
recorded split. ``backbone.py``: CLIP backbones from disk, never downloaded.
"""
from .plan import TrainPlan
from .record import RunRecord
from .results import EvalPlan, evaluate_adapters
from .train import train

__all__ = ["TrainPlan", "RunRecord", "EvalPlan", "evaluate_adapters", "train"]
