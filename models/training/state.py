"""Training states in BasicSR's layout (the official VOTES code's `training_states/<iter>.state` beside
`models/net_g_<iter>.pth`), to and from uvssm's checkpoints, so a run can move between the two codes.

BasicSR saves for resuming (`BaseModel.save_training_state`) `{"epoch", "iter", "optimizers": [Adam's
state_dict], "schedulers": [the scheduler's state_dict]}`, and the network apart as `{"params": state_dict}`
(`save_network`). Its Adam group holds every parameter of the network in `named_parameters()` order
(`SRModel.setup_optimizers`), and so does uvssm's restoration stage (the frozen DSM included), so the optimiser's
per-parameter state maps index for index; only the group's own keys differ: BasicSR's has "initial_lr" (set by
its scheduler), uvssm's "lr_mul" and "fixed". The scheduler's state is what `_LRScheduler.state_dict()` holds for
CosineAnnealingRestartLR after iteration n: periods, restart_weights, eta_min, cumulative_period, base_lrs,
last_epoch = n − 1 (it steps before every iteration from the second on), _step_count = n, _last_lr.
"""

from __future__ import annotations

import copy
import math

from models.training.schedule import CosineRestarts
from uvssm.base.errors import UvssmError

UVSSM_GROUP_KEYS = ("lr_mul", "fixed")


def to_basicsr(checkpoint: dict, where: str = "checkpoint") -> tuple[dict, dict]:
    """(net_g file, training state) in BasicSR's layout for a uvssm checkpoint of VOTES's restoration stage."""
    meta = checkpoint.get("uvssm", {})
    if "optimizer" not in checkpoint or "config" not in meta or "iteration" not in meta:
        raise UvssmError(f"{where}: not a training checkpoint of `uvssm train` (no optimiser state or config)")
    cfg = meta["config"]
    if cfg.get("stage") != "restore" or not str(meta.get("model", "")).startswith("votes"):
        raise UvssmError(f"{where}: a checkpoint of stage {cfg.get('stage')!r} of {meta.get('model')!r}; BasicSR's "
                         "VOTESModel resumes VOTES's restoration stage only")
    if cfg.get("schedule") != "cosine":
        raise UvssmError(f"{where}: its schedule is {cfg.get('schedule')!r}; BasicSR's VOTES recipe resumes "
                         "CosineAnnealingRestartLR only")
    if cfg.get("warmup_iter", 0):
        raise UvssmError(f"{where}: its run warms up over {cfg['warmup_iter']} iterations, which BasicSR's "
                         "scheduler state does not carry")
    optimizer = copy.deepcopy(checkpoint["optimizer"])
    groups = optimizer["param_groups"]
    if len(groups) != 1 or len(groups[0]["params"]) != len(checkpoint["params"]):
        raise UvssmError(f"{where}: its optimiser holds {[len(g['params']) for g in groups]} of the network's "
                         f"{len(checkpoint['params'])} parameters (written before uvssm kept the official layout); "
                         "continue it here once with `uvssm train --resume` and export the new checkpoint")
    schedule = CosineRestarts(cfg["lr"], tuple(cfg["periods"]), tuple(cfg["restart_weights"]), cfg["eta_min"])
    n = int(meta["iteration"])
    if cfg.get("total_iter") is not None and cfg["total_iter"] > schedule.total:
        raise UvssmError(f"{where}: total_iter {cfg['total_iter']} runs past the periods ({schedule.total}), "
                         "where BasicSR's CosineAnnealingRestartLR has no rate")
    group = groups[0]
    lr_mul = group.pop("lr_mul", 1.0)
    group.pop("fixed", None)
    group["initial_lr"] = cfg["lr"] * lr_mul
    for param_state in optimizer["state"].values():  # an int, as every torch since 1.8 loads it
        if "step" in param_state:
            param_state["step"] = int(param_state["step"])
    periods, weights = list(schedule.periods), list(schedule.restart_weights)
    scheduler = {
        "periods": periods, "restart_weights": weights, "eta_min": schedule.eta_min,
        "cumulative_period": [sum(periods[0:i + 1]) for i in range(len(periods))],
        "base_lrs": [group["initial_lr"]], "last_epoch": n - 1, "_step_count": n,
        "_get_lr_called_within_step": False, "_last_lr": [schedule.lr_at(n) * lr_mul],
    }
    state = {"epoch": 0, "iter": n, "optimizers": [optimizer], "schedulers": [scheduler]}
    return {"params": checkpoint["params"]}, state


def from_basicsr(state: dict, groups: list[dict], schedule: CosineRestarts | None = None,
                 where: str = "training state") -> tuple[int, dict]:
    """(iteration, optimiser state_dict for uvssm) of a BasicSR training state, for an optimiser whose groups
    are `groups` (uvssm's: their "lr_mul" and "fixed" are put back on the loaded groups). With `schedule`, the
    state's scheduler must be that schedule (periods, weights, eta_min, base rate)."""
    try:
        n = int(state["iter"])
        (optimizer,) = state["optimizers"]
    except (KeyError, TypeError, ValueError):
        raise UvssmError(f"{where}: not a BasicSR training state (expected 'iter' and one optimiser)") from None
    optimizer = copy.deepcopy(optimizer)
    saved = optimizer.get("param_groups", [])
    if len(saved) != len(groups) or any(len(s["params"]) != len(g["params"]) for s, g in zip(saved, groups)):
        sizes = [len(s["params"]) for s in saved]
        raise UvssmError(f"{where}: its optimiser holds groups of {sizes} parameters; this model's has "
                         f"{[len(g['params']) for g in groups]} (another network or configuration)")
    if schedule is not None:
        _check_scheduler(state.get("schedulers") or [{}], schedule, where)
    for s, g in zip(saved, groups):
        for key in UVSSM_GROUP_KEYS:
            s[key] = g[key]
    return n, optimizer


def _check_scheduler(schedulers: list[dict], schedule: CosineRestarts, where: str) -> None:
    saved = schedulers[0]
    ours = {"periods": schedule.periods, "restart_weights": schedule.restart_weights, "eta_min": schedule.eta_min,
            "base_lrs": (schedule.base_lr,)}
    for key, value in ours.items():
        theirs = saved.get(key)
        a = [float(v) for v in (theirs if isinstance(theirs, (list, tuple)) else [theirs])] if theirs is not None else []
        b = [float(v) for v in (value if isinstance(value, tuple) else [value])]
        if len(a) != len(b) or not all(math.isclose(x, y, rel_tol=1e-12) for x, y in zip(a, b)):
            raise UvssmError(f"{where}: its scheduler's {key} is {theirs!r}, the config's {list(b)!r} "
                             "(a state of another recipe)")


def widened(saved: dict, groups: list[dict], saved_names: list[str], names: dict[int, str]) -> dict:
    """An optimiser state saved before the groups held the frozen parameters too (uvssm before the official
    layout: only those that required grad, in the order of the model as it was then, `saved_names` = the
    checkpoint's parameter names in its order), laid out for `groups` (`names`: id(parameter) -> name), matched by
    name. A state already of `groups`' sizes is returned as it is."""
    sizes = [len(g["params"]) for g in groups]
    if [len(g["params"]) for g in saved["param_groups"]] == sizes:
        return saved
    state, new_groups, offset = {}, [], 0
    position = {names[id(p)]: offset for offset, p in enumerate(p for g in groups for p in g["params"])}
    for saved_group, group in zip(saved["param_groups"], groups):
        learning = {names[id(p)] for p in group["params"] if p.requires_grad}
        old_order = [n for n in saved_names if n in learning]
        if len(old_order) != len(saved_group["params"]):
            raise UvssmError(f"the optimiser state holds groups of {[len(g['params']) for g in saved['param_groups']]}"
                             f" parameters; this model's optimiser has {sizes}")
        for old_id, name in zip(saved_group["params"], old_order):
            if old_id in saved["state"]:
                state[position[name]] = saved["state"][old_id]
        new_groups.append({**saved_group, "params": list(range(offset, offset + len(group["params"])))})
        offset += len(group["params"])
    return {"state": state, "param_groups": new_groups}
