"""Running a trained model over a whole clip, frame after frame, in bounded memory.

Tensor work only (no files): the callers (`benchmarks.harness`, `uvssm.pipelines.restore`) feed frames in
and take frames out. The pieces:

- `sliding_windows`: turns a stream of frames into the input window of each output frame,
  `reflection_circle`-padded at the clip's ends (as BasicSR/VOTES test), holding at most
  2·window frames. The clip length need not be known in advance (a video being decoded).
- `run_windows`: one batch of windows through a sliding-window model, padded to the sizes it
  accepts, optionally in overlapping tiles.
- `restore_stream`: a chain of `Stage`s over a stream (one stage for most models; two for the
  STDF + X baselines, where the second stage's windows are made of the first stage's outputs).
- `restore_range`: outputs start..end-1 of `restore_stream` over a whole clip, reading only the
  frames they need (a shard of a clip, for `uvssm bench` on several GPUs).
- `restore_frames`: a few chosen output frames of one stage (validation during training).
- `InferenceOptions` and `prepare`: how a model runs (device, precision, batch, tiles, chunks, DCN
  backend, memory format, compilation), one type for `uvssm bench` and `uvssm restore`; `prepare`
  returns stages set up for them and leaves the loaded ones as they were.
- `count_macs`, `degradation_map`, `check_offsets`: what a benchmark measures of the stages besides
  their outputs (cost per frame, the DFM of a saved frame, diverged deformable offsets).

Models with a degradation feature map (VOTES) get it from the whole padded window, one sample at a
time, before any tiling: so neither `batch` nor `tile` changes the DFM's normalisation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from uvssm.base.metrics import quantize
from models.features import offered
from models.ops.deform_conv import BACKENDS, dcn_record  # noqa: F401 (dcn_record: bench reaches it through the runner)
from models.padding import pad_to_multiple
from models.windows import reflection_circle

DCN_BACKENDS = ("auto", *BACKENDS)  # what InferenceOptions.dcn_backend may name


@dataclass(frozen=True)
class InferenceOptions:
    """How a trained model runs over frames, whoever runs it (`uvssm bench`, `uvssm restore`)."""

    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:1"
    bf16: bool = False  # autocast to bfloat16
    batch: int = 1  # windows per forward
    tile: int = 0  # > 0: run on tiles of this many LQ pixels (see run_windows)
    overlap: int = 32  # context pixels around a tile
    chunk: int = 100  # recurrent models: output frames per chunk (100: a whole REDS clip; shortened on a GPU
    # whose free memory would not hold it, see fit_chunk)
    chunk_overlap: int = 8  # recurrent models: context frames on each side of a chunk
    dcn_backend: str = "auto"  # deformable convolutions: "auto" (the faster here, measured), "torch", "torchvision"
    channels_last: bool = False  # convolution weights in channels-last memory format (tensor cores like it)
    compile: str = ""  # torch.compile backend ("inductor"); empty: eager

    def problem(self) -> str | None:
        """What is wrong with these options, in one line (None: nothing)."""
        if self.batch < 1:
            return f"--batch must be at least 1, got {self.batch}"
        if self.tile < 0 or self.overlap < 0:
            return "--tile and --overlap must be >= 0"
        if self.chunk < 1 or self.chunk_overlap < 0:
            return f"--chunk must be at least 1 and --chunk-overlap >= 0, got {self.chunk}, {self.chunk_overlap}"
        if self.dcn_backend not in DCN_BACKENDS:
            return f"--dcn-backend {self.dcn_backend}: expected one of {', '.join(DCN_BACKENDS)}"
        return None

    def run_kwargs(self) -> dict:
        """The keyword arguments of restore_stage/restore_stream/restore_range these options set."""
        return {"batch": self.batch, "bf16": self.bf16, "tile": self.tile, "overlap": self.overlap}


@dataclass
class Stage:
    """A model and what it needs. Sliding-window ("window"): `num_frame` inputs per output frame.
    Recurrent ("recurrent"): a sequence in, one output per input frame; long clips run in chunks
    of `chunk` output frames, each with `chunk_overlap` frames of context on both sides (the
    default 100 is a whole REDS clip). Sizes a multiple of `multiple`; output `scale` × input."""

    model: nn.Module
    num_frame: int
    scale: int
    multiple: int = 4
    kind: str = "window"
    chunk: int = 100
    chunk_overlap: int = 8
    share_features: bool = True  # EDVR family, untiled: each frame's feature pyramid computed once
    fixed_batch: int = 0  # > 0: a short batch of windows is padded to this size (a compiled model sees one shape)
    features: frozenset[str] | None = None  # what the model offers (models.features); None: what the module has

    def __post_init__(self) -> None:
        if self.features is None:
            self.features = offered(self.model)


class _ReadAhead:
    """Frames of a stream by index, read only as far as asked and forgotten once no longer needed."""

    def __init__(self, frames: Iterable[Tensor]):
        self._it = iter(frames)
        self.frames: dict[int, Tensor] = {}
        self.read = 0  # frames read so far
        self.exhausted = False

    def fill(self, upto: int) -> None:
        """Read until `upto` frames have been read or the stream ends."""
        while not self.exhausted and self.read < upto:
            try:
                self.frames[self.read] = next(self._it)
                self.read += 1
            except StopIteration:
                self.exhausted = True

    def forget_before(self, index: int) -> None:
        for old in [i for i in self.frames if i < index]:
            del self.frames[old]


def sliding_windows(frames: Iterable[Tensor], num_frame: int, *, indices: bool = False) -> Iterator[tuple]:
    """Yield (index, window) for every frame of the stream, in order; window = num_frame frames
    (with `indices`: (index, window, the window's frame indices)).

    Reads ahead only as far as the window needs (2·(num_frame // 2) frames, for reflection at the
    end), and forgets frames no later window uses.
    """
    p = num_frame // 2
    stream, c = _ReadAhead(frames), 0
    while True:
        stream.fill(c + 2 * p + 1)
        if c >= stream.read:
            return
        # Before the end is known, any length > c + p gives the same indices.
        n = stream.read if stream.exhausted else max(stream.read, c + 2 * p + 1)
        if stream.exhausted and n < num_frame:
            raise ValueError(f"a clip of {n} frames is shorter than the {num_frame}-frame window")
        idx = reflection_circle(c, n, num_frame)
        window = [stream.frames[i] for i in idx]
        yield (c, window, idx) if indices else (c, window)
        c += 1
        stream.forget_before(c - 2 * p)


def sequence_chunks(frames: Iterable[Tensor], chunk: int, overlap: int) -> Iterator[tuple[list[Tensor], int, int]]:
    """Split a stream into chunks for a recurrent model: yields (inputs, keep_start, keep_end);
    outputs keep_start..keep_end-1 of the model run on `inputs` are the next output frames. Holds
    at most chunk + 2·overlap frames."""
    if chunk < 1 or overlap < 0:
        raise ValueError(f"chunk must be >= 1 and overlap >= 0, got {chunk}, {overlap}")
    stream, start = _ReadAhead(frames), 0
    while True:
        stream.fill(start + chunk + overlap)
        if start >= stream.read:
            return
        end = min(start + chunk, stream.read)
        lo, hi = max(0, start - overlap), min(stream.read, end + overlap)
        yield [stream.frames[i] for i in range(lo, hi)], start - lo, end - lo
        start = end
        stream.forget_before(start - overlap)


def _per_sample_dfm(model: nn.Module, x: Tensor) -> Tensor:
    return torch.cat([model.estimate_dfm(x[i:i + 1]) for i in range(x.shape[0])])


def _tiles(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(in_start, in_end, core_start, core_end) along one axis; all multiples of the pad multiple
    when length, tile and overlap are."""
    out = []
    for start in range(0, length, tile):
        end = min(start + tile, length)
        out.append((max(0, start - overlap), min(length, end + overlap), start, end))
    return out


def run_windows(stage: Stage, x: Tensor, *, tile: int = 0, overlap: int = 32) -> Tensor:
    """Outputs (B, C, s·h, s·w) for windows x (B, T, C, h, w) of any size (recurrent models:
    (B, T, C, s·h, s·w) for sequences x).

    tile > 0 runs the model on tiles of `tile`×`tile` input pixels, each with `overlap` pixels of
    context on every side, and keeps each tile's core. Both are rounded up to multiples of
    `stage.multiple`, so stride-2 layers see the same pixel phases as on the whole frame. The
    result equals the untiled one when `overlap` covers the model's receptive field; beyond it the
    difference decays with distance (measured in `tests/test_bench.py`).
    """
    model, s, m = stage.model, stage.scale, stage.multiple
    padded, (h, w) = pad_to_multiple(x, m)
    dfm = _per_sample_dfm(model, padded) if "dfm" in stage.features else None

    def call(xi: Tensor, di: Tensor | None) -> Tensor:
        return model(xi) if di is None else model(xi, dfm=di)

    if tile <= 0 or (tile >= padded.shape[-2] and tile >= padded.shape[-1]):
        out = call(padded, dfm)
    else:
        tile, overlap = -(-tile // m) * m, -(-overlap // m) * m
        hp, wp = padded.shape[-2:]
        out = None
        for y0, y1, cy0, cy1 in _tiles(hp, tile, overlap):
            for x0, x1, cx0, cx1 in _tiles(wp, tile, overlap):
                part = call(padded[..., y0:y1, x0:x1], None if dfm is None else dfm[..., y0:y1, x0:x1])
                if out is None:
                    out = part.new_empty(*part.shape[:-2], s * hp, s * wp)
                out[..., s * cy0:s * cy1, s * cx0:s * cx1] = \
                    part[..., s * (cy0 - y0):s * (cy1 - y0), s * (cx0 - x0):s * (cx1 - x0)]
    return out[..., : s * h, : s * w]


def _batched(windows: Iterator[tuple[int, list[Tensor]]], batch: int) -> Iterator[list[tuple[int, list[Tensor]]]]:
    group = []
    for item in windows:
        group.append(item)
        if len(group) == batch:
            yield group
            group = []
    if group:
        yield group


def _pad_batch(x: Tensor, size: int) -> Tensor:
    """x with its last item repeated until it holds `size` items along dim 0 (unchanged if it holds as many)."""
    short = size - x.shape[0]
    return x if short <= 0 else torch.cat([x, x[-1:].expand(short, *x.shape[1:])])


def _autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def _stack_maps(maps: list[Tensor]) -> Tensor:
    """`torch.stack(maps)` of feature maps (..., C, h, w), in their memory format: channels-last maps (a model set up
    with --channels-last) give a stack whose every map is still channels-last (`torch.stack` would lay it out
    contiguously, and every convolution and DCN reading the window would convert it back)."""
    if maps[0].dim() < 3 or maps[0].stride(-3) != 1 or maps[0].is_contiguous():
        return torch.stack(maps)
    return torch.stack([m.movedim(-3, -1) for m in maps]).movedim(-1, -3)


def _shared_feature_windows(frames: Iterable[Tensor], stage: Stage, device: torch.device, batch: int, bf16: bool,
                            home) -> Iterator[Tensor]:
    """The window path for the EDVR family: each frame's feature pyramid (`frame_pyramid`, on the
    padded frame) is computed once, kept while a later window can use it (2·(num_frame // 2)
    frames back, as `reflection_circle` reaches), and stacked into every window that holds the
    frame; the DFM and the rest of the model run per window as in `run_windows`."""
    model, s, reach = stage.model, stage.scale, 2 * (stage.num_frame // 2)
    levels: dict[int, list[Tensor]] = {}
    for group in _batched(sliding_windows(frames, stage.num_frame, indices=True), batch):
        x, (h, w) = pad_to_multiple(torch.stack([torch.stack(window) for _, window, _ in group]).to(device),
                                    stage.multiple)
        where = {i: (g, t) for g, (_, _, idx) in enumerate(group) for t, i in enumerate(idx)}  # a place of each frame in x
        with _autocast(device, bf16):
            for i in sorted(where.keys() - levels.keys()):  # none near a clip's end, where windows reflect
                g, t = where[i]  # one frame per call: a frame's features never depend on which others came along
                levels[i] = [level[0] for level in model.frame_pyramid(x[g, t:t + 1])]
            pyramid = [_stack_maps([_stack_maps([levels[i][k] for i in idx]) for _, _, idx in group]) for k in range(3)]
            x, pyramid = _pad_batch(x, stage.fixed_batch), [_pad_batch(p, stage.fixed_batch) for p in pyramid]
            kwargs = {"pyramid": pyramid}
            if "dfm" in stage.features:
                kwargs["dfm"] = _per_sample_dfm(model, x)
            out = model(x, **kwargs)[: len(group), ..., : s * h, : s * w]
        yield from home(out.float().clamp_(0, 1)).unbind(0)
        oldest = group[-1][0] + 1 - reach  # the next window uses no frame before this
        for i in [i for i in levels if i < oldest]:
            del levels[i]


@torch.no_grad()
def restore_stage(frames: Iterable[Tensor], stage: Stage, *, device: torch.device | str = "cpu", batch: int = 1,
                  bf16: bool = False, tile: int = 0, overlap: int = 32, on_device: bool = False) -> Iterator[Tensor]:
    """Run one stage over a stream of frames (C, h, w) float in [0, 1] (on any device: frames
    already on `device` are not copied again); yield output frames (C, s·h, s·w) float32, in
    order, clamped to [0, 1], on the CPU, or left on `device` with `on_device`. The model runs on `device`
    (moved there if it is elsewhere, e.g. a first stage loaded on the CPU)."""
    device = torch.device(device)
    home = (lambda t: t) if on_device else (lambda t: t.cpu())
    stage.model.to(device).eval()
    if stage.kind == "recurrent":
        for inputs, keep_start, keep_end in sequence_chunks(frames, stage.chunk, stage.chunk_overlap):
            x = torch.stack(inputs).unsqueeze(0).to(device)
            with _autocast(device, bf16):
                out = run_windows(stage, x, tile=tile, overlap=overlap)
            yield from home(out[0, keep_start:keep_end].float().clamp_(0, 1)).unbind(0)
        return
    if stage.share_features and tile <= 0 and "frame_pyramid" in stage.features:
        yield from _shared_feature_windows(frames, stage, device, batch, bf16, home)
        return
    for group in _batched(sliding_windows(frames, stage.num_frame), batch):
        x = _pad_batch(torch.stack([torch.stack(w) for _, w in group]).to(device), stage.fixed_batch)
        with _autocast(device, bf16):
            out = run_windows(stage, x, tile=tile, overlap=overlap)[: len(group)]
        yield from home(out.float().clamp_(0, 1)).unbind(0)


@torch.no_grad()
def restore_frames(frame_at: Callable[[int], Tensor], n: int, wanted: Iterable[int], stage: Stage, *,
                   device: torch.device | str = "cpu", bf16: bool = False) -> dict[int, Tensor]:
    """Outputs {i: (C, s·h, s·w) float32 in [0, 1], on `device`} at the frames `wanted` of a clip of n frames
    `frame_at(0..n-1)`, for spot checks such as validation during training.

    A window stage runs only the wanted frames' windows (`reflection_circle`, padded by `run_windows`), so each
    output equals the whole-clip run's; a recurrent stage runs the whole clip as one sequence (its outputs depend
    on every frame) and keeps the wanted ones.
    """
    device = torch.device(device)
    wanted = sorted(set(wanted))
    if stage.kind == "recurrent":
        whole = dataclasses.replace(stage, chunk=n, chunk_overlap=0)
        keep = set(wanted)
        frames = (frame_at(i) for i in range(n))
        return {i: out for i, out in enumerate(restore_stage(frames, whole, device=device, bf16=bf16, on_device=True))
                if i in keep}
    stage.model.eval()
    outputs = {}
    for c in wanted:
        window = torch.stack([frame_at(i) for i in reflection_circle(c, n, stage.num_frame)]).unsqueeze(0).to(device)
        with _autocast(device, bf16):
            outputs[c] = run_windows(stage, window)[0].float().clamp_(0, 1)
    return outputs


def restore_stream(frames: Iterable[Tensor], stages: list[Stage], **kwargs) -> Iterator[Tensor]:
    """Chain stages over a stream: each stage's output frames, rounded to 8 bits as images on disk
    (the hand-over of the official two-stage baselines, and of `uvssm.pipelines.train.restore_dataset` at training time),
    are the next stage's input frames."""
    stream: Iterable[Tensor] = frames
    for i, stage in enumerate(stages):
        if i:
            stream = (quantize(f).float().div_(255.0) for f in stream)
        stream = restore_stage(stream, stage, **kwargs)
    return iter(stream)


def shard_unit(stages: list[Stage]) -> int | None:
    """Frames per shard boundary at which `restore_range` equals the whole-clip run exactly: 1 for
    models of one sliding-window stage (and for bicubic, no stages), the chunk for one recurrent
    stage, None (whole clips only) for chains."""
    if not stages:
        return 1
    if len(stages) == 1:
        return 1 if stages[0].kind == "window" else stages[0].chunk
    return None


def restore_range(frame_at: Callable[[int], Tensor], n: int, start: int, end: int, stages: list[Stage],
                  **kwargs) -> Iterator[Tensor]:
    """Yield outputs start..end-1 of `restore_stream` over the n frames `frame_at(0..n-1)`, equal to
    them exactly, computing only what they need:

    - one window stage: the frames start−2p..end+2p (p = num_frame // 2; `reflection_circle` at a
      clip's end takes frames up to 2p away), so every kept window is the whole-clip run's window;
    - one recurrent stage: the chunks of the whole-clip run that hold start..end−1 (start must
      then be a multiple of the chunk), each with its context, as `sequence_chunks` cuts them;
    - chains: the whole clip up to `end`, then the kept outputs.
    """
    if not 0 <= start < end <= n:
        raise ValueError(f"range {start}..{end} outside a clip of {n} frames")
    if len(stages) == 1 and stages[0].kind == "window":
        reach = 2 * (stages[0].num_frame // 2)
        lo, hi = max(0, start - reach), min(n, end + reach)
        out = restore_stage((frame_at(i) for i in range(lo, hi)), stages[0], **kwargs)
        yield from itertools.islice(out, start - lo, end - lo)
    elif len(stages) == 1:
        stage = stages[0]
        if start % stage.chunk:
            raise ValueError(f"a recurrent shard must start at a multiple of its chunk ({stage.chunk}), got {start}")
        for first in range(start, end, stage.chunk):
            last = min(first + stage.chunk, n)
            lo, hi = max(0, first - stage.chunk_overlap), min(n, last + stage.chunk_overlap)
            # one chunk alone: restore_stage over its frames, with the chunk covering them all
            whole = dataclasses.replace(stage, chunk=hi - lo, chunk_overlap=0)
            out = restore_stage((frame_at(i) for i in range(lo, hi)), whole, **kwargs)
            yield from itertools.islice(out, first - lo, min(last, end) - lo)
    else:
        out = restore_stream((frame_at(i) for i in range(n)), stages, **kwargs)
        yield from itertools.islice(out, start, end)


class DeviceMemory:
    """What `fit_chunk` and `choose_dcn_backend` read of a GPU's memory: torch.cuda's calls for `device`. (The tests
    give a stand-in with the same methods, which accounts a CPU run as a caching allocator would.)"""

    def __init__(self, device: torch.device):
        self.device = device

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)

    def empty_cache(self) -> None:
        torch.cuda.empty_cache()

    def reset_peak(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)

    def allocated(self) -> int:
        return torch.cuda.memory_allocated(self.device)

    def peak(self) -> int:
        return torch.cuda.max_memory_allocated(self.device)

    def available(self) -> int:
        """Bytes this process can still allocate: the driver's free memory plus what the caching allocator holds
        unused (`mem_get_info` counts that as used, so it alone would depend on what ran before)."""
        free, _ = torch.cuda.mem_get_info(self.device)
        return free + torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)


def device_memory(device: torch.device) -> DeviceMemory | None:
    """The memory `prepare` sizes chunks and refuses a DCN backend by: a GPU's; None on the CPU (not limited)."""
    return DeviceMemory(device) if device.type == "cuda" else None


def _dcn_sizes(stages: list[Stage], lq_size: tuple[int, int]):
    """(module, (width, height) of the map it runs on at most) for every deformable convolution of the stages: the
    stage's input size (a later stage's is the earlier stages' output size)."""
    from models.ops.deform_conv import DeformConvBackend

    w, h = lq_size
    for stage in stages:
        for m in stage.model.modules():
            if isinstance(m, DeformConvBackend):
                yield m, (w, h)
        w, h = w * stage.scale, h * stage.scale


def choose_dcn_backend(stages: list[Stage], device: torch.device, bf16: bool, lq_size: tuple[int, int],
                       requested: str = "auto", *, batch: int = 1, free_bytes: float | None = None,
                       share: Callable[[str], list[str]] = lambda word: [word]) -> str | None:
    """Set the deformable convolutions of every stage to one backend and return its name (None: no stage has
    one). `requested` "torch" or "torchvision" is taken as it is; "auto" times the first stage's first DCN (in
    the EDVR family the largest) at `lq_size`, (width, height), with each backend that runs on `device` and keeps
    the faster (nothing is timed where one backend runs: the pure-torch one).

    Memory: torchvision's CUDA kernel holds the whole im2col matrix of a call (`torchvision_buffer_bytes`: 2.4 GB
    per sample for 128 channels at 960×540), the pure-torch path works in bands. With `free_bytes` (the GPU's
    available memory), "auto" leaves torchvision out where the largest call's buffers, at `batch` windows, exceed
    it, and "torchvision" asked for there is refused (ValueError).

    `share` gives every process's word (under torchrun: in rank order) for this process's: "auto" then takes rank
    0's choice on every rank, so that all ranks compute with one backend (their bf16 numerics differ), but the
    pure-torch one where torchvision's buffers do not fit on some rank."""
    from models.ops.deform_conv import available_backends, first_dcn, measure_backends, set_backend, \
        torchvision_buffer_bytes

    dcns = [(stage, first_dcn(stage.model)) for stage in stages]
    dcns = [(stage, m) for stage, m in dcns if m is not None]
    if not dcns:
        return None
    here = available_backends(device)
    need = max(torchvision_buffer_bytes(m, size, batch) for m, size in _dcn_sizes(stages, lq_size))
    too_big = free_bytes is not None and need > free_bytes
    if requested == "auto":
        _, m = dcns[0]
        candidates = tuple(name for name in here if not (name == "torchvision" and too_big))
        if len(candidates) == 1:
            requested = candidates[0]
        else:
            layout = any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
                         for p in stages[0].model.parameters())  # --channels-last: timed on such maps
            timings = measure_backends(m, lq_size, device, bf16, channels_last=layout)
            requested = min(timings, key=timings.get)
        words = share(f"{requested} {'tight' if too_big else 'fits'}")  # every rank's choice and memory
        requested = words[0].split()[0]
        if requested == "torchvision" and any(w.split()[1] == "tight" for w in words):
            requested = "torch"
    elif requested == "torchvision" and requested in here and too_big:
        raise ValueError(f"DCN backend 'torchvision' needs {need / 2**30:.1f} GiB for its im2col buffers at batch "
                         f"{batch} (torchvision_buffer_bytes), more than the {free_bytes / 2**30:.1f} GiB available; "
                         "use --dcn-backend torch (it works in bands) or a smaller --batch")
    if requested not in here:
        raise ValueError(f"DCN backend {requested!r} does not run here "
                         f"(available: {', '.join(here)})")
    for stage in stages:
        set_backend(stage.model, requested)
    return requested


def chunk_that_fits(want: int, overlap: int, free_bytes: float, fixed_bytes: float, per_frame_bytes: float,
                    headroom: float = 0.9) -> int:
    """The longest recurrent chunk, at most `want` output frames, whose sequence (the chunk plus `overlap` context
    frames on each side) fits in `headroom` of `free_bytes`, at `fixed_bytes` plus `per_frame_bytes` a frame."""
    frames = int((headroom * free_bytes - fixed_bytes) // max(per_frame_bytes, 1.0))
    chunk = min(want, frames - 2 * overlap)
    if chunk < 1:
        raise MemoryError(f"{free_bytes / 2**30:.1f} GiB free holds {max(frames, 0)} frames of the sequence "
                          f"({per_frame_bytes / 2**20:.0f} MiB a frame), fewer than one output frame with "
                          f"{overlap} context frames on each side")
    return chunk


@contextlib.contextmanager
def _heuristic_convolutions():
    """cuDNN without autotuning while the block runs, and on plans of its own: `deterministic` is part of the key of
    cuDNN's plan cache, so the probe neither times candidate algorithms (whose workspaces would count in its peak)
    nor meets plans an earlier model autotuned, nor leaves its plans to the run; then the caller's settings."""
    before = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before


def fit_chunk(stage: Stage, lq_size: tuple[int, int], device: torch.device, bf16: bool,
              memory: DeviceMemory | None = None) -> int:
    """`stage.chunk`, shortened where its sequence would not fit the GPU's memory (`memory`, default the device's;
    on the CPU: unchanged). The same whatever ran before in this process: the peaks of 2- and 4-frame sequences at
    `lq_size`, (width, height), give the memory per frame, measured on cuDNN's heuristic plans (not inside the
    caller's autotuning), and the memory it may take is counted after the allocator's cache is emptied, with
    what the allocator holds unused as available."""
    memory = memory if memory is not None else device_memory(device)
    if stage.kind != "recurrent" or memory is None:
        return stage.chunk
    w, h = lq_size
    peaks = []
    with _heuristic_convolutions():
        for n in (2, 4):
            x = torch.rand(1, n, getattr(stage.model, "in_nc", 3), h, w, device=memory.device)
            memory.synchronize()
            memory.reset_peak()
            base = memory.allocated()
            with torch.no_grad(), _autocast(memory.device, bf16):
                run_windows(stage, x)
            memory.synchronize()
            peaks.append(memory.peak() - base)
            del x
    memory.empty_cache()
    per_frame = max((peaks[1] - peaks[0]) / 2, 1.0)
    return chunk_that_fits(stage.chunk, stage.chunk_overlap, memory.available(), max(peaks[0] - 2 * per_frame, 0.0),
                           per_frame)


def configured(stages: list[Stage], options: InferenceOptions) -> list[Stage]:
    """Copies of `stages` with the options' recurrent chunk (no device work; the stages given are unchanged)."""
    return [dataclasses.replace(s, chunk=options.chunk, chunk_overlap=options.chunk_overlap) for s in stages]


def prepare(stages: list[Stage], options: InferenceOptions, device: torch.device, lq_size: tuple[int, int], *,
            fit: bool = True, agree: Callable[[int], int] = lambda n: n, share: Callable[[str], list[str]] = lambda w: [w],
            memory: DeviceMemory | None = None) -> tuple[list[Stage], str | None]:
    """Stages ready to run with `options` on `device` for frames of `lq_size`, (width, height), and the
    deformable convolutions' backend (None: no stage has one). The stages are copies: the given ones keep
    their settings, while their modules are moved to `device` (channels-last if asked, but for the deformable
    convolutions' weights, which both backends read as an im2col matrix) and set to the backend. With `fit`, a
    recurrent chunk is shortened where the GPU would not hold it (`agree` turns each chunk into the one every
    process uses); `share` does the same for an "auto" backend (`choose_dcn_backend`). `memory`: the GPU memory
    both are sized by (default the device's). Raises ValueError for a backend that does not run here."""
    from models.ops.deform_conv import contiguous_dcn_weights

    memory = memory if memory is not None else device_memory(device)
    ready = configured(stages, options)
    for stage in ready:
        stage.model.to(device)
        if options.channels_last:
            stage.model.to(memory_format=torch.channels_last)
            contiguous_dcn_weights(stage.model)
        if fit:
            stage.chunk = agree(fit_chunk(stage, lq_size, device, options.bf16, memory))
    free = None
    if memory is not None:
        memory.empty_cache()
        free = memory.available()
    backend = choose_dcn_backend(ready, device, options.bf16, lq_size, options.dcn_backend, batch=options.batch,
                                 free_bytes=free, share=share)
    return ready, backend


def compiled(stages: list[Stage], options: InferenceOptions) -> list[Stage]:
    """`stages` compiled with `options.compile` (copies; unchanged without it). A clip's last, shorter batch is
    padded to `options.batch`, so a compiled model sees one shape per clip size."""
    if not options.compile:
        return stages
    return [dataclasses.replace(s, model=torch.compile(s.model, backend=options.compile, dynamic=False),
                                fixed_batch=options.batch) for s in stages]


def count_macs(stages: list[Stage], lq_size: tuple[int, int], probe: int = 64) -> int | None:
    """Multiply-accumulates per output frame at LQ size `lq_size`, (height, width), counted with torch's
    FlopCounterMode on a `probe`-pixel window and scaled by area (convolutions scale exactly; the
    deformable convolution counts as the dense conv it computes, through its pure-torch path whatever backend
    the run uses: the counter does not see inside torchvision's op; grid sampling is not counted)."""
    if not stages:
        return None
    from torch.utils.flop_counter import FlopCounterMode

    from models.ops.deform_conv import backend_for

    h, w = lq_size
    total = 0.0
    side = probe
    for stage in stages:
        param = next(stage.model.parameters())  # the probe follows the model's device and dtype
        x = torch.rand(1, stage.num_frame, getattr(stage.model, "in_nc", 3), side, side, device=param.device,
                       dtype=param.dtype)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), backend_for(stage.model, "torch"), counter:
            stage.model.eval()
            stage.model(x)
        per_output = stage.num_frame if stage.kind == "recurrent" else 1  # a sequence gives one frame per input
        total += counter.get_total_flops() / 2 * (h * w) / (side * side) / per_output
        h, w, side = h * stage.scale, w * stage.scale, side * stage.scale
    return int(round(total))


@torch.no_grad()
def degradation_map(stage: Stage, window_at: Callable[[list[int]], Tensor], n: int, index: int,
                    device: torch.device | str = "cpu", bf16: bool = False) -> Tensor:
    """The degradation feature map (h, w) float32 on the CPU that a DFM stage (VOTES) estimates for output frame
    `index` of a clip of n frames: from the frame's whole padded window, as `run_windows` does, and under the same
    autocast as the forward that used it (`bf16`: the DSM's convolutions in bfloat16 give another map than in
    float32). `window_at(idx)` gives the frames `idx` as one (T, C, h, w) tensor in [0, 1]."""
    if "dfm" not in stage.features:
        raise ValueError("this stage estimates no degradation feature map")
    device = torch.device(device)
    window = window_at(reflection_circle(index, n, stage.num_frame)).unsqueeze(0)
    padded, (h, w) = pad_to_multiple(window.to(device), stage.multiple)
    with _autocast(device, bf16):
        dfm = _per_sample_dfm(stage.model, padded)
    return dfm[0, 0, :h, :w].float().cpu()


def check_offsets(stages: list[Stage]) -> list[str]:
    """After an eval forward: a warning (logged and returned) for every deformable alignment whose mean offset
    diverged (`models.layers.warn_large_offsets`), read once outside the forward."""
    from models.layers import warn_large_offsets

    return [w for stage in stages for w in warn_large_offsets(stage.model)]
