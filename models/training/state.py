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

from models.training.schedule import make_schedule
from uvssm.base.errors import UvssmError

UVSSM_GROUP_KEYS = ("lr_mul", "fixed")


def to_basicsr(checkpoint: dict, where: str = "checkpoint") -> tuple[dict, dict]:
    """(net_g file, training state) in BasicSR's layout for a uvssm training checkpoint (`checkpoint.read`)."""
    meta = checkpoint.get("uvssm", {})
    if "optimizer" not in checkpoint or "config" not in meta or "iteration" not in meta:
        raise UvssmError(f"{where}: not a training checkpoint of `uvssm train` (no optimiser state or config)")
    cfg = meta["config"]
    if cfg.get("schedule") != "cosine" or cfg.get("warmup_iter", 0):
        raise UvssmError(f"{where}: BasicSR's CosineAnnealingRestartLR has no {cfg.get('schedule')} schedule "
                         "or warm-up to save")
    n = int(meta["iteration"])
    optimizer = copy.deepcopy(checkpoint["optimizer"])
    for group in optimizer["param_groups"]:
        lr_mul = group.pop("lr_mul", 1.0)
        group.pop("fixed", None)
        group["initial_lr"] = cfg["lr"] * lr_mul
    periods, weights = list(cfg["periods"]), list(cfg["restart_weights"])
    schedule = make_schedule("cosine", cfg["lr"], periods, weights, cfg["eta_min"])
    scheduler = {
        "periods": periods, "restart_weights": weights, "eta_min": cfg["eta_min"],
        "cumulative_period": [sum(periods[0:i + 1]) for i in range(len(periods))],
        "base_lrs": [g["initial_lr"] for g in optimizer["param_groups"]],
        "last_epoch": n - 1, "_step_count": n, "_get_lr_called_within_step": False,
        "_last_lr": [schedule.lr_at(n) * g["initial_lr"] / cfg["lr"] for g in optimizer["param_groups"]],
    }
    state = {"epoch": 0, "iter": n, "optimizers": [optimizer], "schedulers": [scheduler]}
    return {"params": checkpoint["params"]}, state


def from_basicsr(state: dict, groups: list[dict], where: str = "training state") -> tuple[int, dict]:
    """(iteration, optimiser state_dict for uvssm) of a BasicSR training state, for an optimiser whose groups
    are `groups` (uvssm's: their "lr_mul" and "fixed" are put back on the loaded groups)."""
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
    for s, g in zip(saved, groups):
        for key in UVSSM_GROUP_KEYS:
            s[key] = g[key]
    return n, optimizer


def widened(saved: dict, groups: list[dict]) -> dict:
    """An optimiser state saved before the groups held the frozen parameters too (uvssm before the official
    layout: only those that require grad), laid out for `groups`: each saved group's k-th parameter is its group's
    k-th parameter that requires grad. A state already of `groups`' sizes is returned as it is."""
    sizes = [len(g["params"]) for g in groups]
    if [len(g["params"]) for g in saved["param_groups"]] == sizes:
        return saved
    trainable = [[i for i, p in enumerate(g["params"]) if p.requires_grad] for g in groups]
    if [len(g["params"]) for g in saved["param_groups"]] != [len(t) for t in trainable]:
        raise UvssmError(f"the optimiser state holds groups of {[len(g['params']) for g in saved['param_groups']]} "
                         f"parameters; this model's optimiser has {sizes} ({[len(t) for t in trainable]} that learn)")
    state, new_groups, offset = {}, [], 0
    for saved_group, group, learn in zip(saved["param_groups"], groups, trainable):
        ids = [offset + i for i in range(len(group["params"]))]
        for old_id, i in zip(saved_group["params"], learn):
            if old_id in saved["state"]:
                state[ids[i]] = saved["state"][old_id]
        new_groups.append({**saved_group, "params": ids})
        offset += len(group["params"])
    return {"state": state, "param_groups": new_groups}
