"""Training configurations: small YAML files that map onto these dataclasses.

Packaged configs live in `models/configs/<name>.yaml`; `load_config("votes-reds-qp28-x2")` finds
them by name, or takes a path. Unknown keys are errors, so a typo never silently does nothing.

A config may start from another: `_base_: votes-reds-qp28-x2` (a packaged name, or a path relative to
the file) takes every key of that config, and the file's own keys replace them. Mappings (`data`,
`model_args`) merge key by key; lists and values are replaced whole. Bases may have bases; a loop is
an error. The name is always the file's own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
STAGES = ("dsm", "flow", "restore")
TARGETS = ("hq", "clean_lr", "bicubic_lr")


class ConfigError(ValueError):
    """A config file or override that does not fit the dataclasses (message names the file and key)."""


def _number(name: str, value, kind):
    """`value` as int or float; YAML reads 2e-4 (no decimal point) as a string, so strings are parsed too."""
    try:
        number = kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if kind is int and number != float(value):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    return number


@dataclass
class DataConfig:
    kind: str = "reds"  # "reds": a `uvssm synth-reds` output; "frames": HQ_frames/LQ_frames (UVSSM, `uvssm build`)
    # which LQ_qp<QP>_x<scale> folder of a synth-reds output; a list trains on the clips of every
    # listed QP together (validation uses the first)
    qp: int | list[int] | None = 28
    scale: int = 2
    platform: str | None = None  # "frames" datasets: the platform sub-folder (e.g. WeChat), if any
    train_split: str = "train"
    val_split: str = "val"
    # What the model learns to produce: "hq" (the originals; SR models), or a target at LQ size for
    # restoration at LQ size (STDF): "clean_lr" (synth-reds --clean-lr: the frames the encoder received)
    # or "bicubic_lr" (HQ down-scaled with MATLAB bicubic; UVSSM has no clean LR).
    target: str = "hq"

    @property
    def model_scale(self) -> int:
        return self.scale if self.target == "hq" else 1

    @property
    def qps(self) -> list[int | None]:
        """The QPs trained on, in order (the first is validated on)."""
        return list(self.qp) if isinstance(self.qp, (list, tuple)) else [self.qp]


@dataclass
class TrainConfig:
    name: str = "custom"
    note: str = ""  # where the settings come from; shown in `uvssm train --list`
    stage: str = "restore"  # "dsm": VOTES stage 1 (the DSM alone); "flow": SPyNet pre-training; "restore"
    model: str = "votes"
    model_args: dict = field(default_factory=dict)  # constructor arguments beyond the registry's
    data: DataConfig = field(default_factory=DataConfig)
    bin_checkpoint: str | None = None  # stage 2: stage-1 weights for the DSM (or a full VOTES checkpoint)
    flow_checkpoint: str | None = None  # recurrent flow models: pre-trained SPyNet (stage "flow", or a full model)
    # The SR stage of a two-stage baseline (e.g. "stdf" for STDF + X): the model learns from the LQ frames
    # as that first stage restores them (`lq_stage`: its checkpoint). Set chain to null to train on raw LQ.
    chain: str | None = None
    lq_stage: str | None = None
    num_frame: int | None = None  # frames per sample (default: the model's: 5 for EDVR/VOTES, 15 for BasicVSR)
    flow_lr_mul: float = 1.0  # learning rate multiplier of the flow network (BasicVSR: 0.125)
    fix_flow_iter: int = 0  # the flow network is frozen for this many iterations (BasicVSR: 5000)
    smooth_weight: float = 0.1  # stage "flow": weight of the flow smoothness term
    aux_weight: float = 0.0  # models with extra supervision (RSDN detail/structure, COMISR's LR warping): its weight

    batch_size: int = 16  # per process
    gt_size: int = 128  # HQ patch side; the LQ patch is gt_size / scale
    flip: bool = True  # random horizontal and vertical flips, p = 0.5 each
    transpose: bool = True  # random H/W transpose, p = 0.5

    loss: str = "charbonnier"
    loss_reduction: str = "sum"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    schedule: str = "cosine"  # "cosine": cosine restarts over the periods; "step": constant lr·weight per period
    periods: tuple[int, ...] = (50_000, 100_000, 150_000)
    restart_weights: tuple[float, ...] = (1.0, 0.5, 0.5)
    eta_min: float = 1e-7
    warmup_iter: int = 0  # the rate ramps up linearly over this many iterations (0: none, the official recipes)
    warmup: str = "basicsr"  # "basicsr": initial_lr / W · n below W (BasicSR's); "scaled": the schedule's rate · n / W
    total_iter: int | None = None  # default: the sum of the periods
    # "default": the modules' own initialisation (the official code's); "signal": Kaiming for every
    # plain convolution and the deformable ones, the output conv and VOTES's DFM branch at zero
    # (models.training.init)
    init: str = "default"

    val_every: int = 5_000
    val_frames: int = 0  # frames per val clip (evenly spaced); 0 = all
    save_every: int = 5_000
    log_every: int = 100
    seed: int = 10
    num_workers: int | str = "auto"  # data-loading processes per rank; "auto": 0 on the CPU, up to 4 on a GPU
    cache_mb: int = 2048  # decoded frames kept in memory, per data-loading process
    frame_cache: str = "auto"  # training clips decoded once into mapped arrays: "auto" (~/.cache/uvssm/frames), "off", or a folder
    bf16: bool = False  # autocast to bfloat16 (CUDA, or CPU with bf16 support)
    # deformable convolutions while training: "torch" (the official kernel's gradients, models/ops/deform_conv.py),
    # "torchvision" (its CUDA op: the kernel's sampling, but its offset gradient at the border is not checked
    # here), or "auto": torchvision's on CUDA where it imports, torch's elsewhere. Each checkpoint records which.
    dcn_backend: str = "auto"

    def __post_init__(self):
        for name in ("lr", "weight_decay", "eta_min", "flow_lr_mul", "smooth_weight", "aux_weight"):
            setattr(self, name, _number(name, getattr(self, name), float))
        if isinstance(self.data.qp, (list, tuple)):
            if not self.data.qp:
                raise ConfigError("data.qp: an empty list")
            self.data.qp = [_number("data.qp", q, int) for q in self.data.qp]
        for name in ("batch_size", "gt_size", "val_every", "val_frames", "save_every", "log_every", "seed",
                     "cache_mb", "fix_flow_iter", "warmup_iter"):
            setattr(self, name, _number(name, getattr(self, name), int))
        if self.num_workers != "auto":
            self.num_workers = _number("num_workers", self.num_workers, int)
            if self.num_workers < 0:
                raise ConfigError(f"num_workers must be 'auto' or >= 0, got {self.num_workers}")
        if self.total_iter is not None:
            self.total_iter = _number("total_iter", self.total_iter, int)
        if self.num_frame is not None:
            self.num_frame = _number("num_frame", self.num_frame, int)
        self.betas = tuple(_number("betas", b, float) for b in self.betas)
        self.periods = tuple(_number("periods", p, int) for p in self.periods)
        self.restart_weights = tuple(_number("restart_weights", w, float) for w in self.restart_weights)
        if not isinstance(self.frame_cache, str) or not self.frame_cache:
            raise ConfigError(f"frame_cache must be 'auto', 'off' or a folder, got {self.frame_cache!r}")
        if self.stage not in STAGES:
            raise ConfigError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.dcn_backend not in ("auto", "torch", "torchvision"):
            raise ConfigError(f"dcn_backend must be 'auto', 'torch' or 'torchvision', got {self.dcn_backend!r}")
        if self.schedule not in ("cosine", "step"):
            raise ConfigError(f"schedule must be 'cosine' or 'step', got {self.schedule!r}")
        if self.warmup not in ("basicsr", "scaled"):
            raise ConfigError(f"warmup must be 'basicsr' or 'scaled', got {self.warmup!r}")
        if self.warmup_iter < 0:
            raise ConfigError(f"warmup_iter must be >= 0, got {self.warmup_iter}")
        from models.training.init import INITIALISERS
        from models.training.losses import LOSSES, REDUCTIONS

        if self.init not in INITIALISERS:
            raise ConfigError(f"init must be one of {tuple(INITIALISERS)}, got {self.init!r}")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {sorted(LOSSES)}, got {self.loss!r}")
        if self.loss_reduction not in REDUCTIONS:
            raise ConfigError(f"loss_reduction must be one of {REDUCTIONS}, got {self.loss_reduction!r}")
        if self.data.target not in TARGETS:
            raise ConfigError(f"data.target must be one of {TARGETS}, got {self.data.target!r}")
        scale = self.data.model_scale
        if self.gt_size % scale:
            raise ConfigError(f"gt_size {self.gt_size} is not a multiple of scale {scale}")
        if (self.gt_size // scale) % 4:
            raise ConfigError(f"the LQ patch ({self.gt_size // scale}) must be a multiple of 4")

    @property
    def iterations(self) -> int:
        return self.total_iter if self.total_iter is not None else sum(self.periods)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"], d["periods"], d["restart_weights"] = list(self.betas), list(self.periods), list(self.restart_weights)
        return d


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kwargs = dict(values)
    if cls is TrainConfig and "data" in kwargs:
        kwargs["data"] = _build(DataConfig, kwargs["data"], f"{where}: data")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def list_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def config_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        return path
    packaged = CONFIG_DIR / f"{name_or_path}.yaml"
    if not packaged.is_file():
        raise ConfigError(f"unknown config {name_or_path!r}; packaged configs: {', '.join(list_configs())}")
    return packaged


def parse_override(text: str) -> tuple[list[str], object]:
    """"data.qp=33" → (["data", "qp"], 33); the value is parsed as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not KEY=VALUE")
    return key.split("."), yaml.safe_load(value)


BASE_KEY = "_base_"


def merged(base: dict, own: dict) -> dict:
    """`base` with `own`'s keys over it: mappings merge key by key (recursively), anything else is replaced."""
    out = dict(base)
    for key, value in own.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_values(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The keys of the config file `path`, its `_base_` chain resolved (without the name)."""
    if path.resolve() in seen:
        chain = " -> ".join(str(p) for p in (*seen, path.resolve()))
        raise ConfigError(f"{path}: {BASE_KEY} loops back to itself ({chain})")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read config ({str(exc).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    from models.training.official import from_official, is_official

    if is_official(values):  # one of the official VOTES option files (BasicSR's keys)
        return from_official(values, str(path))
    base = values.pop(BASE_KEY, None)
    if base is None:
        return values
    if not isinstance(base, str):
        raise ConfigError(f"{path}: {BASE_KEY} must name one config, got {base!r}")
    beside = path.parent / base
    try:
        base_path = beside if beside.suffix in (".yaml", ".yml") else config_path(base)
        if not base_path.is_file():
            raise ConfigError(f"{base_path}: config file not found")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {BASE_KEY}: {exc}") from None
    inherited = read_values(base_path, (*seen, path.resolve()))
    inherited.pop("name", None)
    return merged(inherited, values)


def load_config(name_or_path: str, overrides: list[str] = ()) -> TrainConfig:
    """Read a config by packaged name or path (its `_base_` chain first), apply KEY=VALUE overrides (dotted keys
    reach into `data`)."""
    path = config_path(name_or_path)
    values = read_values(path)
    values.setdefault("name", path.stem)
    for text in overrides:
        keys, value = parse_override(text)
        node = values
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {k} is not a mapping")
        node[keys[-1]] = value
    return _build(TrainConfig, values, str(path))
