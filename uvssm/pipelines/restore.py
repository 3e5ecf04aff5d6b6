"""`uvssm restore`: restore a shared video with a trained model, frame by frame, in bounded memory.

The video is decoded as RGB (rotation, matrix and range handled as `uvssm build` does), streamed
through `models.inference` (at most 2·window decoded frames and one batch of windows are held at a
time, whatever the video's length), and encoded with libx264 (CRF 16 by default, yuv420p, the
input's frame rate; the input's audio is copied when it has any). The output is written under a
temporary name and renamed when complete. Optionally every restored frame is also written as PNG.

The three stages overlap (`uvssm.base.overlap`): a decode thread runs up to `AHEAD` frames ahead of the
model (into pinned memory on CUDA, uploaded without blocking), and a writer thread takes each restored
frame (rounded to 8 bits on the device, downloaded without blocking into pinned memory) and hands it to
the encoder, up to `BEHIND` frames behind; the model's thread never waits for ffmpeg or for a download.
The bytes written are those of the stages run in turn (`RestoreOptions.overlap=False`). An error on any
thread is raised on the calling thread as it would be without threads; the summary gives each stage's
busy seconds (`stage_seconds`: decode, model, encode; on CUDA the model's are the host's, and the rest
of its device time shows in encode, which waits for each frame's download).

Colour: the restored RGB frames are converted to YUV with an explicit matrix and range, and the
output is tagged with them, so players (and uvssm itself) read back the colours the model made:
the input's own tags when it has them, else BT.709 for an HD output (height ≥ 720) and BT.601
(SMPTE 170M) for SD, limited range. The input's primaries and transfer are copied too (else the
matrix's own). ffmpeg's default conversion would use BT.601 untagged, which an HD decoder then reads
as BT.709 (a visible hue shift).

Before the model runs, the input is decoded once (`check_decodes`: cheap beside any model), so a
truncated file fails at once, naming the frame. Nothing is left under the temporary name when the
run fails or is stopped (an exception, Ctrl-C, SIGTERM).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from models.inference import InferenceOptions
from uvssm.base import atomic, qpmaps
from uvssm.base.decode import SWS_MATRIX, rgb_frames
from uvssm.base.errors import UvssmError
from uvssm.base.ffmpeg import FFmpeg, FrameWriter
from uvssm.base.frames import frame_name, write_rgb
from uvssm.base.probe import VideoProbe, check_decodes, probe
from uvssm.base.interrupt import terminate_raises
from uvssm.base.progress import Progress, RestoreCheck, RestoreFrame, RestoreStart, quiet


PRIMARIES = ("bt709", "bt470m", "bt470bg", "smpte170m", "smpte240m", "bt2020", "smpte431", "smpte432")
TRANSFERS = ("bt709", "gamma22", "gamma28", "smpte170m", "smpte240m", "linear", "iec61966-2-1", "bt2020-10",
             "bt2020-12", "smpte2084", "arib-std-b67")
_SETPARAMS_TRC = {"gamma22": "bt470m", "gamma28": "bt470bg"}  # setparams' names for the same curves


def output_colour(info: VideoProbe, out_height: int) -> dict[str, str]:
    """Matrix, range, primaries and transfer of the restored video: each of the input's tags that ffmpeg can
    write (the matrix: that swscale can convert with), else the default of the matrix (by output size)."""
    if info.color_matrix in SWS_MATRIX:
        matrix = info.color_matrix
    else:
        matrix = "bt709" if out_height >= 720 else "smpte170m"
    default = {"bt709": ("bt709", "bt709"), "bt470bg": ("bt470bg", "smpte170m"),
               "bt2020nc": ("bt2020", "bt709")}.get(matrix, ("smpte170m", "smpte170m"))
    return {"matrix": matrix, "range": "pc" if info.color_range == "pc" else "tv",
            "primaries": info.color_primaries if info.color_primaries in PRIMARIES else default[0],
            "transfer": info.color_transfer if info.color_transfer in TRANSFERS else default[1]}


def encode_args(colour: dict[str, str]) -> list[str]:
    """The filter and tags that turn RGB24 frames into yuv420p with `colour`'s matrix and range, tagged with
    all four. The tags are set on the frames (`setparams`): ffmpeg's encoder takes them from the frames and
    ignores `-color_primaries`/`-color_trc` for frames that come out of a filter."""
    trc = _SETPARAMS_TRC.get(colour["transfer"], colour["transfer"])
    convert = (f"pad=ceil(iw/2)*2:ceil(ih/2)*2,scale=out_color_matrix={SWS_MATRIX[colour['matrix']]}:"
               f"out_range={colour['range']}:flags=accurate_rnd+full_chroma_int+bitexact,format=yuv420p,"
               f"setparams=colorspace={colour['matrix']}:range={colour['range']}:"
               f"color_primaries={colour['primaries']}:color_trc={trc}")
    return ["-vf", convert, "-colorspace", colour["matrix"], "-color_range", colour["range"],
            "-color_primaries", colour["primaries"], "-color_trc", colour["transfer"]]


@dataclass
class RestoreOptions:
    model: str
    weights: list[str]
    scale: int = 2
    inference: InferenceOptions = InferenceOptions()  # device, precision, batch, tiles, chunks, DCN, compile
    crf: int = 16
    preset: str = "medium"
    frames_dir: Path | None = None  # also write every restored frame here as PNG
    qp_map: bool = False  # also save the input's bitstream QP maps (H.264) beside the output
    overlap: bool = True  # decode and encode on their own threads (False: the three stages in turn)


# Queue depths bound memory only: any depth of 1 or more lets the stages overlap, and a few frames absorb one
# stage's frame-to-frame jitter (8 RGB frames of 1080p input: 50 MB; 4 restored frames at x4: 100 MB).
AHEAD = 8  # decoded frames the decode thread may hold ready for the model
BEHIND = 4  # restored frames that may wait for the encoder


def input_qp_map_path(dst: str | Path) -> Path:
    """Where `--qp-map` saves the input's QP maps: `restored.mp4` -> `restored.src.qp.npz`."""
    dst = Path(dst)
    return dst.with_name(f"{dst.stem}.src{qpmaps.QP_MAP_SUFFIX}")


def restore_video(src: str | Path, dst: str | Path, ffmpeg: FFmpeg, opts: RestoreOptions,
                  progress: Progress | None = None) -> dict:
    """Restore video `src` into `dst`. Returns a summary (frames, sizes, fps, seconds).

    Progress events (`uvssm.base.progress`): RestoreCheck while the input is decoded once (every 25 frames),
    then RestoreStart, then RestoreFrame after every frame written (all on the calling thread).
    """
    import time

    import torch

    from models.inference import compiled, prepare, restore_stream
    from models.trained import load_trained
    from uvssm.base.devices import cudnn_autotune, pick_device
    from uvssm.base.metrics import quantize
    from uvssm.base.overlap import Ahead, Behind

    progress = progress or quiet
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise UvssmError(f"{src}: input video not found")
    if src.resolve() == dst.resolve():
        raise UvssmError(f"{dst}: the output would overwrite the input")
    info = probe(src)  # raises UvssmError naming the file when it is not a video
    maps = qpmaps.read_qp_maps(src) if opts.qp_map else None  # before any work: non-H.264 is an error
    model = load_trained(opts.model, opts.scale, opts.weights)
    if not model.stages:
        raise UvssmError("restore needs a trained model, not bicubic")
    for stage in model.stages:
        if stage.kind == "window" and info.n_frames < stage.num_frame:
            raise UvssmError(f"{src}: {info.n_frames} frame(s); {model.name} needs at least {stage.num_frame} "
                             f"(its window)")
    problem = opts.inference.problem()
    if problem:
        raise UvssmError(problem)
    # Decode the whole input once before the model runs: a truncated file fails here, in seconds.
    progress(RestoreCheck(0, info.n_frames))
    n_frames = check_decodes(src, lambda n: progress(RestoreCheck(n, info.n_frames)))
    device = pick_device(opts.inference.device)
    width, height = info.display_size
    try:
        stages, dcn_backend = prepare(model.stages, opts.inference, device, (width, height))
    except ValueError as exc:
        raise UvssmError(f"--dcn-backend: {exc}") from None
    stages = compiled(stages, opts.inference)
    out_w, out_h = width * opts.scale, height * opts.scale
    fps = Fraction(info.avg_fps or info.real_fps or 25).limit_denominator(1001)
    colour = output_colour(info, out_h)
    progress(RestoreStart(n_frames, (width, height), (out_w, out_h), float(fps), str(device)))

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp{dst.suffix}")
    args = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{out_w}x{out_h}", "-r", str(fps), "-i", "-",
            "-i", str(src), "-map", "0:v:0", "-map", "1:a?", "-c:a", "copy",
            *encode_args(colour), "-c:v", "libx264", "-preset", opts.preset,
            "-crf", str(opts.crf), "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(tmp)]

    cuda = device.type == "cuda"

    def decoded():  # on the decode thread: (3, h, w) uint8, pinned on CUDA (the upload does not block)
        for frame in rgb_frames(ffmpeg, info):
            x = torch.from_numpy(frame if frame.flags.writeable else frame.copy()).permute(2, 0, 1)
            yield x.pin_memory() if cuda else x

    def lq(frames):  # on the model's thread: as `frames_to_tensor`, on the device
        for x in frames:
            yield x.to(device, non_blocking=True).float().div_(255.0)

    def handed_back(out):  # on the model's thread: (H, W, 3) uint8 on the host, and the event after which it is there
        rgb = quantize(out).permute(1, 2, 0).contiguous()
        if not cuda:
            return rgb, None
        host = torch.empty(rgb.shape, dtype=torch.uint8, pin_memory=True)
        host.copy_(rgb, non_blocking=True)
        ready = torch.cuda.Event()
        ready.record()
        return host, ready

    def encode(item, writer) -> bool:  # on the writer thread
        index, rgb, ready = item
        if ready is not None:
            ready.synchronize()
        rgb = rgb.numpy()
        if not writer.write(rgb):
            return False  # the encoder stopped: its failure is raised on closing
        if opts.frames_dir is not None:
            write_rgb(Path(opts.frames_dir) / frame_name(index), rgb)
        return True

    start, count, model_s = time.perf_counter(), 0, 0.0
    ahead, behind = (AHEAD, BEHIND) if opts.overlap else (0, 0)
    # SIGTERM raises (like Ctrl-C), so the encoder is stopped and the temporary file removed on any way out
    with terminate_raises():
        try:
            with cudnn_autotune(device), FrameWriter(ffmpeg, ["-y", *args], f"{dst}: encoding failed") as writer:
                encoder = Behind(lambda item: encode(item, writer), behind, "uvssm-encode")
                decoder = Ahead(decoded(), ahead, "uvssm-decode")
                stream = restore_stream(lq(decoder), stages, device=device, on_device=True,
                                        **opts.inference.run_kwargs())

                def report() -> None:  # RestoreFrame for each frame written since the last call
                    nonlocal count
                    while count < encoder.completed:
                        count += 1
                        progress(RestoreFrame(count))

                try:
                    sent = 0
                    while True:
                        t0, waited = time.perf_counter(), decoder.waited
                        try:
                            out = next(stream, None)
                            if out is not None:
                                out = handed_back(out)
                        finally:  # the model's own time: not the time spent getting decoded frames
                            model_s += time.perf_counter() - t0 - (decoder.waited - waited)
                        if out is None or not encoder.put((sent, *out)):
                            break
                        sent += 1
                        report()
                    encoder.finish()
                    report()
                finally:
                    stream.close()
                    decoder.close()  # stops the decoder's ffmpeg
                    encoder.abort()  # before the encoder's ffmpeg is stopped (on a failure)
            if count == 0:
                raise UvssmError(f"{src}: no frames could be decoded")
            tmp.replace(dst)
        finally:
            atomic.remove(tmp)  # gone after the rename; after a failure, the half-written output
    qp_path = qpmaps.save(maps, input_qp_map_path(dst)) if maps is not None else None
    return {"qp_map": qp_path, "frames": count, "size": (width, height), "out_size": (out_w, out_h), "fps": float(fps), "colour": colour,
            "seconds": time.perf_counter() - start, "model": model.name, "checkpoints": model.checkpoints,
            "device": str(device), "dcn_backend": dcn_backend,
            "stage_seconds": {"decode": decoder.busy, "model": model_s, "encode": encoder.busy},
            "overlap": opts.overlap}
