"""Model names → constructors with their official settings.

Each entry is explicit (no folder scanning): `create_model("votes", scale=4)` builds config L at ×4.
Names ending in "-tiny" are small configurations for CPU demos and tests; they are ours, not the
papers'.

Models from outside come in two ways, and then bench, restore and train take them like a built-in one:
- a package declares an entry point in the group `uvssm.models` (pyproject:
  `[project.entry-points."uvssm.models"] mynet = "mynet.uvssm:specs"`) whose object is a `ModelSpec`, a
  list of them, or a function returning either; they are loaded the first time a name is not built in;
- a name written as a reference, `pkg.module:attr` (`--models mynet.uvssm:spec`), imports that object.
A plugin's spec is checked when it registers: its name must be new, its class must take `scale`, and
its declared parameter counts must be what it builds (counted on the `meta` device).
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from models.basicvsr import BasicVSR
from models.comisr import COMISR
from models.edvr import EDVR
from models.features import FEATURES, offered
from models.rsdn import RSDN
from models.stdf import STDF
from models.tga import TGA
from models.votes import VOTES


@dataclass(frozen=True)
class ModelSpec:
    name: str
    cls: type[nn.Module]
    defaults: dict = field(default_factory=dict)  # constructor arguments of this variant
    description: str = ""
    num_frame: int = 5  # frames per input window (sliding-window models)
    scales: tuple[int, ...] = (2, 4)
    multiple: int = 4  # input height and width must be multiples of this (callers pad)
    kind: str = "window"  # "window": num_frame frames in, the centre frame out; "recurrent": a sequence in and out
    # parameters at each scale: the official model's count where one exists (cited beside the entry), else
    # ours (a x2 head the official code lacks, the tiny variants), recorded so a change to a layer shows
    params: dict[int, int] = field(default_factory=dict)
    # what the model offers beyond restoring frames (models.features.FEATURES), so callers ask the spec
    features: frozenset[str] = frozenset()
    source: str = "uvssm"  # "uvssm", or the plugin (entry point or reference) that registered it


# Every part of config L, at a size for CPU demos: 16 features, and a 16-channel output head (the
# official 64 would cost more than the rest of the model at output size).
_TINY_VOTES = dict(num_feat=16, deformable_groups=2, num_extract_block=1, num_reconstruct_block=2,
                   num_modulation_blocks=2, bin_features=16, bin_blocks=2, head_feat=16)

_TINY_EDVR = dict(num_feat=16, num_extract_block=1, num_reconstruct_block=2, deformable_groups=2, head_feat=16)

# Every block of the release, narrower; BatchNorm momentum 0.1 so running statistics settle in a short run.
_TINY_TGA = dict(nf=16, ng=4, head_feat=32, up_feat=16, bn_momentum=0.1)

_TINY_COMISR = dict(num_feat=16, num_block=2, fnet_feats=(8, 16, 32))

_VOTES_FEATURES = frozenset({"dfm", "bin", "frame_pyramid"})
_EDVR_FEATURES = frozenset({"frame_pyramid"})

# Official parameter counts, as the released architectures build them: VOTES config L x2 and x4
# (luohongming/VOTES, archs/VOTES_arch.py), EDVR-L/M x4 and EDVR-M without TSA x4 (BasicSR options/test/EDVR:
# with_tsa false swaps the TSA module's 324,416 parameters for a 1x1 conv's 20,544), BasicVSR x4 (BasicSR
# basicvsr_arch.py, SPyNet included), RSDN9_128 x4 (junpan19/RSDN), VSR-TGA x4 (junpan19/VSR_TGA),
# COMISR x4 (google-research/comisr, the TF inference graph), STDF-R3 (RyanXingQL/STDF-PyTorch); the x2 heads
# the papers did not release and the tiny variants are ours.
MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("votes", VOTES, {}, "VOTES config L (128 features, 5/40/10 blocks, 8 deformable groups)",
              params={2: 24_200_937, 4: 24_791_273}, features=_VOTES_FEATURES),
    ModelSpec("votes-wo-dfm", VOTES, {"dfm": "zero"}, "VOTES config L with the DFM set to zero (the paper's ablation)",
              params={2: 24_200_937, 4: 24_791_273}, features=_VOTES_FEATURES),
    ModelSpec("votes-tiny", VOTES, _TINY_VOTES, "a small VOTES for CPU demos and tests (ours)",
              params={2: 547_585, 4: 556_865}, features=_VOTES_FEATURES),
    ModelSpec("votes-wo-dfm-tiny", VOTES, {**_TINY_VOTES, "dfm": "zero"},
              "votes-tiny with the DFM set to zero (the paper's ablation, small; ours)",
              params={2: 547_585, 4: 556_865}, features=_VOTES_FEATURES),
    ModelSpec("edvr-l", EDVR, dict(num_feat=128, num_reconstruct_block=40),
              "EDVR-L (128 features, 5/40 blocks, TSA); x2 is the VOTES repository's head",
              params={2: 20_043_491, 4: 20_633_827}, features=_EDVR_FEATURES),
    ModelSpec("edvr-m", EDVR, dict(num_feat=64, num_reconstruct_block=10),
              "EDVR-M (64 features, 5/10 blocks, TSA); x2 head labelled as ours",
              params={2: 3_152_419, 4: 3_300_131}, features=_EDVR_FEATURES),
    ModelSpec("edvr-m-wo-tsa", EDVR, dict(num_feat=64, num_reconstruct_block=10, with_tsa=False),
              "EDVR-M without TSA (a 1x1 conv fuses the aligned frames: BasicSR's with_tsa=False, the released "
              "EDVR_M_woTSA / mmagic edvrm_wotsa); x2 head labelled as ours",
              params={2: 2_848_547, 4: 2_996_259}, features=_EDVR_FEATURES),
    ModelSpec("basicvsr", BasicVSR, {}, "BasicVSR (SPyNet + 2x30 residual blocks); x2 drops one pixel shuffle (ours)",
              num_frame=15, multiple=1, kind="recurrent",
              params={2: 6_143_599, 4: 6_291_311}, features=frozenset({"spynet"})),
    ModelSpec("basicvsr-tiny", BasicVSR, dict(num_feat=16, num_block=2), "a small BasicVSR for CPU demos and tests (ours)",
              num_frame=15, multiple=1, kind="recurrent",
              params={2: 1_540_671, 4: 1_549_951}, features=frozenset({"spynet"})),
    ModelSpec("rsdn", RSDN, {}, "RSDN9_128 (structure-detail recurrent, hidden-state adaptation); x2 heads ours",
              num_frame=10, multiple=1, kind="recurrent",
              params={2: 5_975_360, 4: 6_180_236}, features=frozenset({"aux_targets"})),
    ModelSpec("rsdn-tiny", RSDN, dict(nf=16, num_blocks=2), "a small RSDN for CPU demos and tests (ours)",
              num_frame=10, multiple=1, kind="recurrent",
              params={2: 39_360, 4: 99_084}, features=frozenset({"aux_targets"})),
    ModelSpec("tga", TGA, {}, "VSR-TGA, the released model without alignment (7 frames in 3 groups); x2 head ours",
              num_frame=7, multiple=1,
              params={2: 7_056_692, 4: 7_057_853}),
    ModelSpec("tga-tiny", TGA, _TINY_TGA, "a small VSR-TGA for CPU demos and tests (ours)", num_frame=7, multiple=1,
              params={2: 363_728, 4: 363_881}),
    ModelSpec("comisr", COMISR, {}, "COMISR (frame-recurrent, FNet + HR flow, Laplacian enhancement); x2 ours",
              num_frame=10, multiple=1, kind="recurrent",
              params={2: 2_533_799, 4: 2_628_391}, features=frozenset({"aux_targets"})),
    ModelSpec("comisr-tiny", COMISR, _TINY_COMISR, "a small COMISR for CPU demos and tests (ours)",
              num_frame=10, multiple=1, kind="recurrent",
              params={2: 124_591, 4: 134_415}, features=frozenset({"aux_targets"})),
    ModelSpec("edvr-tiny", EDVR, _TINY_EDVR, "a small EDVR (TSA) for CPU demos and tests (ours)",
              params={2: 142_987, 4: 152_267}, features=_EDVR_FEATURES),
    ModelSpec("stdf", STDF, dict(in_nc=3), "STDF-R3 on RGB (7 frames; restores at LQ size)", num_frame=7, scales=(1,),
              multiple=8,
              params={1: 486_714}),
    ModelSpec("stdf-y", STDF, dict(in_nc=1), "STDF-R3 on the Y channel (as STDF-PyTorch's recipe)", num_frame=7,
              scales=(1,), multiple=8,
              params={1: 364_510}),
)}


ENTRY_POINT_GROUP = "uvssm.models"
_entry_points_loaded = False


def list_models() -> list[str]:
    """Every model name: the built-in ones and those of installed plugins."""
    _load_entry_points()
    return sorted(MODELS)


def get_spec(name: str) -> ModelSpec:
    """The spec of a built-in or plugin model, or of a reference `pkg.module:attr` (imported and registered)."""
    if name in MODELS:
        return MODELS[name]
    if ":" in name:
        specs = _import_reference(name)
        return specs[0]
    _load_entry_points()
    if name in MODELS:
        return MODELS[name]
    close = difflib.get_close_matches(name, sorted(MODELS), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise ValueError(f"unknown model {name!r}; {hint}known: {', '.join(sorted(MODELS))}")


def model_name(name: str) -> str:
    """The registered name of `name` (a reference `pkg.module:attr` becomes its spec's name; chains part by part)."""
    return "+".join(get_spec(part).name for part in name.split("+"))


def register(spec: ModelSpec, source: str = "") -> ModelSpec:
    """Add a model from outside after checking its spec; raises ValueError saying what is wrong."""
    where = f"{source}: " if source else ""
    if not isinstance(spec, ModelSpec):
        raise ValueError(f"{where}expected a models.registry.ModelSpec, got {type(spec).__name__}")
    if spec.name in MODELS:
        if MODELS[spec.name] is spec or (MODELS[spec.name].source == source and source):
            return MODELS[spec.name]
        raise ValueError(f"{where}model name {spec.name!r} is taken ({MODELS[spec.name].source})")
    if not spec.name or "+" in spec.name or ":" in spec.name or "=" in spec.name:
        raise ValueError(f"{where}model name {spec.name!r}: use letters, digits, '-' and '.' ('+', ':', '=' have meanings)")
    if spec.kind not in ("window", "recurrent") or spec.num_frame < 1 or spec.multiple < 1 or not spec.scales:
        raise ValueError(f"{where}{spec.name}: kind must be window or recurrent, num_frame and multiple >= 1, and "
                         "scales not empty")
    unknown = set(spec.features) - set(FEATURES)
    if unknown:
        raise ValueError(f"{where}{spec.name}: unknown features {sorted(unknown)}; known: {', '.join(FEATURES)}")
    if "scale" not in inspect.signature(spec.cls).parameters:
        raise ValueError(f"{where}{spec.name}: {spec.cls.__name__} must take a `scale` argument")
    for scale in spec.scales:
        try:
            with torch.device("meta"):
                module = spec.cls(**{**spec.defaults, "scale": scale})
        except Exception as exc:
            raise ValueError(f"{where}{spec.name}: cannot build it at x{scale} ({type(exc).__name__}: {exc})") from None
        built, declared = sum(p.numel() for p in module.parameters()), spec.params.get(scale)
        if declared is not None and built != declared:
            raise ValueError(f"{where}{spec.name}: declares {declared:,} parameters at x{scale}, builds {built:,}")
        missing = set(spec.features) - offered(module)
        if missing:
            raise ValueError(f"{where}{spec.name}: declares {', '.join(sorted(missing))} but "
                             f"{spec.cls.__name__} has no {', '.join(FEATURES[f][0] for f in sorted(missing))}")
    spec = replace(spec, source=source or spec.source)
    MODELS[spec.name] = spec
    return spec


def _as_specs(obj, source: str) -> list[ModelSpec]:
    if callable(obj) and not isinstance(obj, (ModelSpec, type)):
        obj = obj()
    specs = list(obj) if isinstance(obj, (list, tuple)) else [obj]
    if not specs:
        raise ValueError(f"{source}: holds no ModelSpec")
    return [register(spec, source) for spec in specs]


def _import_reference(reference: str) -> list[ModelSpec]:
    import importlib

    module, _, attr = reference.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"model {reference!r}: cannot import it ({type(exc).__name__}: {exc})") from None
    return _as_specs(obj, reference)


def _load_entry_points() -> None:
    """Register the models of installed plugins (the `uvssm.models` entry points), once."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        source = f"plugin {ep.name} ({ep.value})"
        try:
            obj = ep.load()
        except Exception as exc:
            raise ValueError(f"{source}: cannot load it ({type(exc).__name__}: {exc})") from None
        _as_specs(obj, source)


@dataclass(frozen=True)
class Fit:
    """How a state dict differs from a registered model at one scale ("name x<scale>")."""

    model: str
    missing: tuple[str, ...]  # the model's keys the state dict lacks
    unexpected: tuple[str, ...]  # the state dict's keys the model lacks
    mismatched: tuple[tuple[str, tuple, tuple], ...]  # (key, shape in the state dict, the model's) where they differ

    @property
    def distance(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.mismatched)


def compare(state_dict: dict, model: nn.Module, label: str) -> Fit:
    """How `state_dict` differs from `model`'s (which may live on the `meta` device), as a Fit named `label`."""
    shapes = {k: tuple(v.shape) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return Fit(label, tuple(k for k in own if k not in shapes), tuple(k for k in shapes if k not in own),
               tuple((k, shapes[k], own[k]) for k in own if k in shapes and shapes[k] != own[k]))


def model_fits(state_dict: dict) -> list[Fit]:
    """How `state_dict` differs from every registered model at every scale, in `list_models()` order. Each
    candidate is built on the `meta` device, so no memory is spent."""
    found = []
    for name in list_models():
        spec = MODELS[name]
        for scale in spec.scales:
            try:
                with torch.device("meta"):
                    model = create_model(name, scale)
            except Exception:  # a plugin's constructor that cannot build on meta is skipped, not fatal
                continue
            found.append(compare(state_dict, model, f"{name} x{scale}"))
    return found


def fitting_models(state_dict: dict) -> list[str]:
    """The registered models (as "name x<scale>") whose every parameter and buffer has the name and shape
    of one in `state_dict`, and no more: what a checkpoint that does not fit its model would fit."""
    return [fit.model for fit in model_fits(state_dict) if fit.distance == 0]


def nearest_model(fits: list[Fit]) -> Fit | None:
    """The fit with the fewest missing, unexpected and mis-shaped keys (the first of equals), or None."""
    return min(fits, key=lambda fit: fit.distance, default=None)


def chain_parts(name: str) -> list[str]:
    """The registered models of a two-stage name such as "stdf+edvr-l" (restoration at LQ size,
    then super-resolution), or [name] for a one-stage model. Raises ValueError for unknown parts or
    a first stage that changes the size."""
    parts = name.split("+")
    if any(not p for p in parts):
        raise ValueError(f"bad model name {name!r}")
    for p in parts:
        get_spec(p)
    for p in parts[:-1]:
        if 1 not in get_spec(p).scales:
            raise ValueError(f"{name}: only the last stage may change the size, and {p} upscales")
    return parts


def model_kwargs(name: str, scale: int, **overrides) -> dict:
    """The constructor arguments that `create_model(name, scale, **overrides)` uses."""
    spec = get_spec(name)
    kwargs = {**spec.defaults, "scale": scale, **overrides}
    unknown = set(kwargs) - set(inspect.signature(spec.cls).parameters)
    if unknown:
        raise ValueError(f"{name}: unknown model arguments {sorted(unknown)}")
    return kwargs


def create_model(name: str, scale: int = 2, **overrides) -> nn.Module:
    """Build model `name` at `scale` with its official settings, changed by `overrides`."""
    return get_spec(name).cls(**model_kwargs(name, scale, **overrides))
