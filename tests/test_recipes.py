"""Recipes: the released numbers (read from the official configs), the three lr schedules against worked
values, the builders on a real tiny prompted model, and bad inputs."""
import dataclasses
import json
import math
import re

import pytest
import torch
import torch.nn.functional as F

import prompt_plugins as pp
from prompt_plugins import ConfigError, get_recipe
from prompt_plugins.recipes import update_epoch
from tiny_models import images, make_model

SGD = dict(momentum=0.9, weight_decay=5e-4, dampening=0.0, nesterov=False)
#: name -> (optimizer class, param_group hyperparameters, recipe fields)
EXPECTED = {
    "coop": (torch.optim.SGD, dict(lr=0.002, **SGD), dict(batch_size=32, epochs=200, warmup_epochs=1,
             warmup_type="constant", warmup_lr=1e-5, shots=16, n_ctx=4, ctx_init="a photo of a", depth=1)),
    "coop_ep50": (torch.optim.SGD, dict(lr=0.002, **SGD), dict(batch_size=32, epochs=50, warmup_epochs=1,
                  warmup_type="constant", warmup_lr=1e-5, shots=16, n_ctx=16, ctx_init=None)),
    "dpc": (torch.optim.SGD, dict(lr=0.002, **SGD), dict(batch_size=4, epochs=20, warmup_epochs=1,
            warmup_type="constant", warmup_lr=1e-5, shots=16, top_k=8, weight_base=0.2, weight_new=0.0)),
    # the CoOp-backbone stage-2 files (configs/trainers/SPLE/CoOp/*.yaml): batch, epochs, lr, K, w_b each
    "dpc_coop_ep20": (torch.optim.SGD, dict(lr=0.002, **SGD), dict(batch_size=4, epochs=20, top_k=8, weight_base=0.5,
                      weight_new=0.0, n_ctx=4, depth=1, warmup_epochs=1, warmup_lr=1e-5)),
    "dpc_coop_ep20_bs8top4": (torch.optim.SGD, dict(lr=0.002, **SGD), dict(batch_size=8, epochs=20, top_k=4,
                              weight_base=0.2, weight_new=0.0)),
    "dpc_coop_ep20_bs16top2": (torch.optim.SGD, dict(lr=0.002, **SGD), dict(batch_size=16, epochs=20, top_k=2,
                               weight_base=0.5, weight_new=0.0)),
    "dpc_coop_ep10_bs2top2": (torch.optim.SGD, dict(lr=0.002, **SGD), dict(batch_size=2, epochs=10, top_k=2,
                              weight_base=0.5, weight_new=0.0)),
    "dpc_coop_ep10_lr35": (torch.optim.SGD, dict(lr=0.0035, **SGD), dict(batch_size=4, epochs=10, top_k=8,
                           weight_base=0.5, weight_new=0.0)),
    "ivlp_vifi": (torch.optim.AdamW, dict(lr=0.04, betas=(0.9, 0.98), eps=1e-8, weight_decay=1e-3),
                  dict(batch_size=64, micro_batch=4, accumulation=2, gpus=8, epochs=11, warmup_epochs=5,
                       warmup_type="linear", warmup_lr=0.0, min_lr_ratio=0.01, n_ctx=16, ctx_init=None, depth=9,
                       n_visual_ctx=16, visual_depth=9, frames=32)),
    "ga2": (torch.optim.AdamW, dict(lr=0.04, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-3),
            dict(batch_size=64, micro_batch=8, gpus=8, epochs=12, warmup_epochs=2, warmup_type="linear",
                 warmup_lr=0.0, min_lr_ratio=0.0, lr_update_every=10, anchor_clips_per_step=8, alpha=1.0,
                 n_ctx=16, depth=9, n_visual_ctx=16, visual_depth=9, frames=32)),
    "ga2_hmdb": (torch.optim.AdamW, dict(lr=0.004, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-3),
                 dict(batch_size=64, epochs=12, warmup_epochs=2)),
}


def close(a, b, rel=1e-6):
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-15)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_released_numbers(name):
    recipe = get_recipe(name)
    optimizer_class, group, fields = EXPECTED[name]
    assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}:\S+\.yaml", recipe.source), recipe.source
    assert recipe.notes
    optimizer = recipe.build_optimizer([torch.nn.Parameter(torch.zeros(3))])
    assert type(optimizer) is optimizer_class
    for key, value in group.items():
        assert optimizer.param_groups[0][key] == value, (key, optimizer.param_groups[0][key])
    for key, value in fields.items():
        assert getattr(recipe, key) == value, key


def test_registry_and_exports():
    assert {"coop", "coop_ep50", "dpc", "ivlp_vifi", "ga2"} <= set(pp.RECIPES)
    assert all(n in pp.__all__ for n in ("Recipe", "RECIPES", "get_recipe"))
    assert all(pp.RECIPES[n].name == n for n in pp.RECIPES)


def test_dassl_schedule_per_epoch():
    recipe = get_recipe("coop").replace(epochs=10)
    worked = [1e-5, 0.002, 0.00195106, 0.00180902, 0.00158779, 0.00130902, 0.001, 0.000690983, 0.000412215,
              0.000190983]
    assert all(math.isclose(recipe.lr_at(e), v, rel_tol=1e-5) for e, v in enumerate(worked))  # 6 figures given
    exact = [1e-5] + [0.001 * (1 + math.cos(math.pi * (e - 1) / 10)) for e in range(1, 10)]
    assert all(close(recipe.lr_at(e + 0.7), v) for e, v in enumerate(exact))  # constant within an epoch
    optimizer = recipe.build_optimizer([torch.nn.Parameter(torch.zeros(2))])
    scheduler = recipe.build_scheduler(optimizer, steps_per_epoch=3)
    seen = []
    for _ in range(30):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert all(close(seen[k], exact[k // 3]) for k in range(30))


def test_ga2_schedule_matches_the_log():
    recipe = get_recipe("ga2")  # K400: 49 iterations per epoch, base lr 0.04
    t6 = {9 / 49: 3.673e-3, 19 / 49: 7.755e-3, 1: 2.0e-2, 3: 3.9021e-2, 7: 2.0e-2}
    exact = {9 / 49: 0.04 * 9 / 98, 19 / 49: 0.04 * 19 / 98, 1: 0.02, 3: 0.02 * (1 + math.cos(math.pi / 10)), 7: 0.02}
    for t, value in t6.items():
        assert close(recipe.lr_at(t), exact[t])
        assert math.isclose(recipe.lr_at(t), value, rel_tol=2e-4)  # the log prints 4-5 figures
    assert recipe.lr_at(12) == 0.0
    optimizer = recipe.build_optimizer([torch.nn.Parameter(torch.zeros(2))])
    scheduler = recipe.build_scheduler(optimizer, steps_per_epoch=49)
    lrs = []
    for _ in range(8 * 49):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:9] == [0.0] * 9  # GA2 sets the lr at iteration 0, then after every 10th iteration
    assert all(close(lr, exact[9 / 49]) for lr in lrs[9:19]) and close(lrs[19], exact[19 / 49])
    assert close(lrs[49], exact[1]) and close(lrs[3 * 49], exact[3]) and close(lrs[7 * 49], exact[7])
    smooth = recipe.replace(lr_update_every=1)
    assert update_epoch(5, 49, 1) == 5 / 49 and update_epoch(5, 49, 10) == 0.0
    assert smooth.epoch_at(55, 49) == 1 + 6 / 49 and recipe.epoch_at(55, 49) == 1.0
    assert smooth.epoch_at(58, 49) == recipe.epoch_at(58, 49) == 1 + 9 / 49


def test_vifi_schedule_jumps_at_the_end_of_warmup():
    recipe = get_recipe("ivlp_vifi")  # 11 epochs, 5 of warm-up, 13 optimisation steps per epoch
    optimizer = recipe.build_optimizer([torch.nn.Parameter(torch.zeros(2))])
    scheduler = recipe.build_scheduler(optimizer, steps_per_epoch=13)
    lrs = []
    for _ in range(11 * 13):
        lrs.append(optimizer.param_groups[0]["lr"] / recipe.lr)
        optimizer.step()
        scheduler.step()
    assert lrs[0] == 0.0 and close(lrs[64], 64 / 65)
    assert abs(lrs[64] - 0.985) < 1e-3 and abs(lrs[65] - 0.575) < 1e-3
    assert close(lrs[65], 0.01 + 0.495 * (1 + math.cos(math.pi * 5 / 11)))
    assert abs(lrs[-1] - 0.0101) < 1e-4 and close(recipe.lr_at(11), recipe.lr / 100)


@pytest.mark.parametrize("name", ["coop", "ivlp_vifi"])
def test_builders_train_only_the_prompt(name, classnames):
    recipe = get_recipe(name)
    if name == "coop":
        prompted = pp.wrap(make_model("openai"), classnames, method="coop", n_ctx=2)
    else:  # the tiny model has 3 blocks per tower
        tiny = recipe.replace(n_ctx=2, depth=2, n_visual_ctx=2, visual_depth=2)
        prompted = pp.wrap(make_model("openai"), classnames, **tiny.wrap_options())
        assert prompted.prompt.depth == 2 and prompted.prompt.n_visual_ctx == 2
    before = {n: p.detach().clone() for n, p in prompted.named_parameters()}
    optimizer = recipe.build_optimizer(prompted.trainable_parameters())
    scheduler = recipe.build_scheduler(optimizer, steps_per_epoch=2)
    x, y = images(4), torch.tensor([0, 1, 2, 3])
    for _ in range(3):
        loss = F.cross_entropy(prompted(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    changed = {n for n, p in prompted.named_parameters() if not torch.equal(p, before[n])}
    trainable = {n for n, p in prompted.named_parameters() if p.requires_grad}
    assert changed and changed <= trainable and all(n.startswith("prompt.") for n in changed)
    assert close(optimizer.param_groups[0]["lr"], recipe.lr_at(recipe.epoch_at(3, 2)))


def test_wrap_and_dpc_options(classnames):
    assert get_recipe("coop").wrap_options() == dict(method="coop", n_ctx=4, ctx_init="a photo of a", depth=1,
                                                     n_visual_ctx=0)
    assert get_recipe("ivlp_vifi").wrap_options() == dict(method="ivlp", n_ctx=16, ctx_init=None, depth=9,
                                                          n_visual_ctx=16, visual_depth=9)
    ga2 = get_recipe("ga2").wrap_options()
    assert ga2["method"] == "ga2" and "n_ctx" not in ga2 and ga2["depth"] == 9
    dpc = get_recipe("dpc")
    assert dpc.dpc_options() == {"wrapper": {"weight_base": 0.2, "weight_new": 0.0}, "objective": {"top_k": 8}}
    tiny = dpc.replace(n_ctx=2, depth=1, n_visual_ctx=0, visual_depth=None, ctx_init=None)
    wrapper = pp.wrap(make_model("openai"), classnames, **tiny.wrap_options())
    assert isinstance(wrapper, pp.DualPromptWrapper) and wrapper.weight_base == 0.2
    with pytest.raises(ConfigError, match="dpc_options.*get_recipe"):
        get_recipe("coop").dpc_options()


def test_frozen_and_round_trip():
    recipe = get_recipe("ivlp_vifi")
    with pytest.raises(dataclasses.FrozenInstanceError, match="replace"):
        recipe.lr = 1.0
    assert pp.Recipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe
    assert recipe.replace(lr=0.01).lr == 0.01 and recipe.lr == 0.04
    assert recipe.total_steps(13) == 143


@pytest.mark.parametrize("call, match", [
    (lambda: get_recipe("cooop"), r"unknown recipe 'cooop'.*'coop'"),
    (lambda: get_recipe("coop").replace(lr=-0.1),
     r"recipe 'coop': lr=-0.1 is out of range: it must be a finite number in \(0, inf\)"),
    (lambda: get_recipe("coop").replace(lr=float("nan")), r"lr=nan"),
    (lambda: get_recipe("coop").replace(learning_rate=0.1), r"unknown field.*'learning_rate'.*known"),
    (lambda: get_recipe("coop").replace(batch_size="32"), r"batch_size='32'.*expected int"),
    (lambda: get_recipe("coop").replace(warmup_epochs=200), r"warmup_epochs=200 is out of range"),
    (lambda: get_recipe("coop").replace(top_k=4), r"top_k=4 is a dpc setting"),
    (lambda: get_recipe("dpc").replace(weight_base=0.0), r"weight_base=0.0 is out of range"),
    (lambda: get_recipe("ga2").replace(batch_size=60), r"batch_size=60 is not a multiple of gpus"),
    (lambda: get_recipe("coop").replace(nesterov=True, momentum=0.0), r"nesterov=True needs momentum"),
    (lambda: get_recipe("coop").build_optimizer([]), r"params=\[\] is empty"),
    (lambda: get_recipe("coop").build_optimizer(torch.nn.Linear(2, 2)), r"params=Linear is a module"),
    (lambda: get_recipe("coop").build_optimizer([torch.zeros(2)]), r"none of the 1 params requires grad"),
    (lambda: get_recipe("coop").build_scheduler(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 0), r"steps_per_epoch=0 must be an int >= 1"),
    (lambda: get_recipe("coop").build_scheduler("sgd", 10), r"optimizer=str is not a torch optimizer"),
    (lambda: get_recipe("coop").lr_at(float("inf")), r"epoch=inf"),
])
def test_bad_inputs(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


def test_readme_recipe_table_matches_the_records():
    """The README's recipe table is what the records hold (one row per recipe, same numbers and source)."""
    from pathlib import Path

    text = (Path(__file__).parents[1] / "README.md").read_text()
    text = text[text.index("## Recipes"):]
    text = text[: text.index("\n## ")]
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([\w.-]+)` \|.*$", text, re.M)}
    assert set(rows) == set(pp.RECIPES)
    for name, row in rows.items():
        cells = [c.strip() for c in row.strip("|").split("|")]
        r = pp.RECIPES[name]
        assert cells[1:5] == [r.optimizer, f"{r.lr:g}", str(r.batch_size), str(r.epochs)], row
        assert cells[5].startswith(f"{r.warmup_epochs} {r.warmup_type}"), row
        assert cells[6] == (f"{r.top_k} / {r.weight_base:g}" if r.top_k else ""), row
        assert r.source.split(":", 1)[1] in cells[7] and r.source.split("@")[0] in cells[7], row


def test_fit_recipe_stops_mid_schedule():
    """``stop_epoch`` runs the first epochs of the recipe's schedule (a mid-schedule checkpoint such as DPC's
    released CoOp backbone, epoch 50 of 100): the prompt it returns is the full run's after that epoch."""
    from prompt_plugins.training import fit_recipe

    recipe = get_recipe("coop").replace(epochs=10, batch_size=4)
    epochs: dict[int | None, list[int]] = {}
    snapshot = {}

    def run(stop):
        w = torch.nn.Parameter(torch.ones(3))
        seen = epochs.setdefault(stop, [])

        def loss(idx, epoch):
            if epoch == 5 and 5 not in seen:
                snapshot[stop] = w.detach().clone()
            seen.append(epoch)
            return (w * len(idx)).pow(2).sum()

        fit_recipe(loss, [w], 8, recipe, seed=0, progress=False, stop_epoch=stop)
        return w.detach()

    half, full = run(5), run(None)
    assert epochs[5] == [e for e in range(5) for _ in range(2)] and len(epochs[None]) == 20
    assert torch.equal(half, snapshot[None]) and not torch.equal(half, full)
    for bad in (0, 11, 2.5, True):
        with pytest.raises(ConfigError, match=rf"stop_epoch={bad!r}: must be an int in \[1, 10\]"):
            fit_recipe(lambda idx, epoch: torch.zeros((), requires_grad=True), [torch.nn.Parameter(torch.ones(1))],
                       8, recipe, seed=0, progress=False, stop_epoch=bad)
