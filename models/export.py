"""uvssm's weights out to BasicSR, mmagic and the official VOTES code: the file each of them saves, and the
network options that build the same architecture there. Renaming only, no tensor changes.

- BasicSR (`basicsr/models/base_model.py`, `save_network`) saves `{"params": state_dict}`, and
  `{"params": ..., "params_ema": ...}` for a model with an EMA copy; its EDVR (`archs/edvr_arch.py`, TSA or not)
  and BasicVSR (`archs/basicvsr_arch.py`) are x4 only, with a 64-channel head, under uvssm's key names.
- mmagic (mmengine's checkpoint) saves `{"meta": ..., "state_dict": {"generator.<layer>": ...}}`, an EMA copy as
  `generator_ema.<layer>`, under mmagic's layer names (`models.convert.to_mmagic`); EDVRNet and BasicVSRNet
  are x4 only. Its BasicVSR model keeps a persistent `step_counter` buffer (the iterations trained) beside the
  generator (`mmagic/models/editors/basicvsr/basicvsr.py`); its EDVR model's is not persistent.
- The official VOTES code (luohongming/VOTES) saves as BasicSR does; its VOTES (`archs/votes_arch.py`) has uvssm's
  key names, and its EDVR (`archs/edvr_arch.py`) takes `scale` 2 or 4.
"""

from __future__ import annotations

import inspect

import torch

from models.basicvsr import BasicVSR
from models.convert import to_mmagic
from models.edvr import EDVR
from models.votes import VOTES

TARGETS = ("basicsr", "mmagic", "votes-official")
_WHAT = {"basicsr": "BasicSR", "mmagic": "mmagic", "votes-official": "the official VOTES code"}
_HOLDS = {"basicsr": "EDVR and BasicVSR", "mmagic": "EDVR and BasicVSR", "votes-official": "VOTES and EDVR"}


def _edvr(target: str, k: dict) -> dict:
    scales = (2, 4) if target == "votes-official" else (4,)
    hint = "; the official VOTES code's EDVR takes x2 (--to votes-official)" if k["scale"] == 2 else ""
    _require(target, "EDVR", k, hint, scale=scales, head_feat=(64,))
    if target == "mmagic":
        return {"type": "EDVRNet", "in_channels": k["num_in_ch"], "out_channels": 3, "mid_channels": k["num_feat"],
                "num_frames": k["num_frame"], "deform_groups": k["deformable_groups"],
                "num_blocks_extraction": k["num_extract_block"],
                "num_blocks_reconstruction": k["num_reconstruct_block"],
                "center_frame_idx": k["num_frame"] // 2, "with_tsa": k["with_tsa"]}
    options = {"type": "EDVR", "num_in_ch": k["num_in_ch"], "num_out_ch": 3, "num_feat": k["num_feat"],
               "num_frame": k["num_frame"], "deformable_groups": k["deformable_groups"],
               "num_extract_block": k["num_extract_block"], "num_reconstruct_block": k["num_reconstruct_block"],
               "with_tsa": k["with_tsa"]}
    return {**options, "scale": k["scale"]} if target == "votes-official" else options


def _basicvsr(target: str, k: dict) -> dict:
    _require(target, "BasicVSR", k, scale=(4,))
    if target == "mmagic":
        return {"type": "BasicVSRNet", "mid_channels": k["num_feat"], "num_blocks": k["num_block"],
                "spynet_pretrained": None}
    return {"type": "BasicVSR", "num_feat": k["num_feat"], "num_block": k["num_block"], "spynet_path": None}


def _votes(target: str, k: dict) -> dict:
    # the official VOTES hard-codes BIN(G0=64, D=6), the 64-channel head, the DFM and its batch-wide maximum
    _require(target, "VOTES", k, dfm=("estimate",), dfm_norm=("batch",), bin_features=(64,), bin_blocks=(6,),
             head_feat=(64,))
    return {"type": "VOTES", "num_in_ch": k["num_in_ch"], "num_feat": k["num_feat"], "num_frame": k["num_frame"],
            "deformable_groups": k["deformable_groups"], "num_extract_block": k["num_extract_block"],
            "num_reconstruct_block": k["num_reconstruct_block"], "num_modulation_blocks": k["num_modulation_blocks"],
            "sr_factor": k["scale"]}


# uvssm's class → (its architecture's name in layout(), the constructor arguments its options read or _require
# checks, the options' builder, the targets that have it)
_ARCHS = {
    EDVR: ("edvr", {"num_in_ch", "num_feat", "num_frame", "deformable_groups", "num_extract_block",
                    "num_reconstruct_block", "with_tsa", "scale", "head_feat"}, _edvr,
           ("basicsr", "mmagic", "votes-official")),
    BasicVSR: ("basicvsr", {"num_feat", "num_block", "scale"}, _basicvsr, ("basicsr", "mmagic")),
    VOTES: ("votes", {"num_in_ch", "num_feat", "num_frame", "deformable_groups", "num_extract_block",
                      "num_reconstruct_block", "num_modulation_blocks", "scale", "dfm", "dfm_norm", "bin_features",
                      "bin_blocks", "head_feat"}, _votes, ("votes-official",)),
}


def _require(target: str, what: str, kwargs: dict, hint: str = "", **allowed: tuple) -> None:
    """ValueError unless each of uvssm's constructor arguments `allowed` names has one of its values there."""
    for name, values in allowed.items():
        value = kwargs[name]
        if value in values:
            continue
        if name == "scale":
            raise ValueError(f"{_WHAT[target]}'s {what} is x{' or x'.join(map(str, values))} only, not x{value}{hint}")
        raise ValueError(f"{_WHAT[target]}'s {what} has {name} {' or '.join(map(repr, values))} only, not {value!r}")


def network_options(target: str, cls: type, kwargs: dict) -> tuple[str, dict]:
    """(architecture, the network options: BasicSR's `network_g`, mmagic's `generator`) under which `target`
    builds what uvssm's `cls(**kwargs)` is; ValueError saying why there is none."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
    if cls not in _ARCHS or target not in _ARCHS[cls][3]:
        raise ValueError(f"{_WHAT[target]} has no {cls.__name__}; --to {target} takes {_HOLDS[target]}")
    arch, read, build, _ = _ARCHS[cls]
    kwargs = {**{name: p.default for name, p in inspect.signature(cls).parameters.items()}, **kwargs}
    unknown = sorted(k for k in kwargs if k not in read)
    if unknown:
        raise ValueError(f"{cls.__name__}'s {', '.join(unknown)} have no counterpart in {_WHAT[target]}")
    return arch, build(target, kwargs)


def layout(target: str, arch: str, params: dict, params_ema: dict | None = None, meta: dict | None = None,
           iteration: int = 0) -> dict:
    """The dict `target` saves for weights `params` (and an EMA copy) of `arch` ("edvr", "basicvsr", "votes")."""
    if target in ("basicsr", "votes-official"):
        return {"params": params} if params_ema is None else {"params": params, "params_ema": params_ema}
    state = {f"generator.{k}": v for k, v in to_mmagic(params, arch).items()}
    if params_ema is not None:
        state.update({f"generator_ema.{k}": v for k, v in to_mmagic(params_ema, arch).items()})
    if arch == "basicvsr":
        state["step_counter"] = torch.full((1,), float(iteration))
    return {"meta": dict(meta or {}), "state_dict": state}
