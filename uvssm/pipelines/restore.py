"""`uvssm restore`: restore a shared video with a trained model, frame by frame, in bounded memory.

The video is decoded as RGB (rotation, matrix and range handled as `uvssm build` does), streamed
through `models.inference` (at most 2·window decoded frames and one batch of windows are held at a
time, whatever the video's length), and encoded with libx264 (CRF 16 by default, yuv420p, the
input's frame rate; the input's audio is copied when it has any). The output is written under a
temporary name and renamed when complete. Optionally every restored frame is also written as PNG.

Colour: the restored RGB frames are converted to YUV with an explicit matrix and range, and the
output is tagged with them, so players (and uvssm itself) read back the colours the model made:
the input's own tags when it has them, else BT.709 for an HD output (height ≥ 720) and BT.601
(SMPTE 170M) for SD, limited range. ffmpeg's default conversion would use BT.601 untagged, which
an HD decoder then reads as BT.709 (a visible hue shift).
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
from uvssm.base.probe import VideoProbe, probe
from uvssm.base.progress import Progress, RestoreFrame, RestoreStart, quiet


def output_colour(info: VideoProbe, out_height: int) -> dict[str, str]:
    """Matrix, range, primaries and transfer of the restored video: the input's tags, else by output size."""
    if info.color_matrix not in ("unknown", "gbr"):
        matrix = info.color_matrix
    else:
        matrix = "bt709" if out_height >= 720 else "smpte170m"
    default = "bt709" if matrix == "bt709" else "smpte170m" if matrix in ("smpte170m", "bt470bg") else matrix
    return {"matrix": matrix, "range": "pc" if info.color_range == "pc" else "tv",
            "primaries": info.color_primaries if info.color_primaries != "unknown" else default,
            "transfer": info.color_transfer if info.color_transfer != "unknown" else default}


def encode_args(colour: dict[str, str]) -> list[str]:
    """The filter and tags that turn RGB24 frames into yuv420p with `colour`'s matrix and range."""
    convert = (f"pad=ceil(iw/2)*2:ceil(ih/2)*2,scale=out_color_matrix={SWS_MATRIX.get(colour['matrix'], 'bt709')}:"
               f"out_range={colour['range']}:flags=accurate_rnd+full_chroma_int+bitexact,format=yuv420p")
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


def input_qp_map_path(dst: str | Path) -> Path:
    """Where `--qp-map` saves the input's QP maps: `restored.mp4` -> `restored.src.qp.npz`."""
    dst = Path(dst)
    return dst.with_name(f"{dst.stem}.src{qpmaps.QP_MAP_SUFFIX}")


def restore_video(src: str | Path, dst: str | Path, ffmpeg: FFmpeg, opts: RestoreOptions,
                  progress: Progress | None = None) -> dict:
    """Restore video `src` into `dst`. Returns a summary (frames, sizes, fps, seconds).

    Progress events (`uvssm.base.progress`): RestoreStart, then RestoreFrame after every frame written.
    """
    import time

    from models.inference import compiled, prepare, restore_stream
    from models.trained import load_trained
    from uvssm.base.devices import cudnn_autotune, pick_device
    from uvssm.base.frames import frames_to_tensor
    from uvssm.base.metrics import quantize

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
    progress(RestoreStart(info.n_frames, (width, height), (out_w, out_h), float(fps), str(device)))

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp{dst.suffix}")
    args = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{out_w}x{out_h}", "-r", str(fps), "-i", "-",
            "-i", str(src), "-map", "0:v:0", "-map", "1:a?", "-c:a", "copy",
            *encode_args(colour), "-c:v", "libx264", "-preset", opts.preset,
            "-crf", str(opts.crf), "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(tmp)]

    def lq():
        for frame in rgb_frames(ffmpeg, info):
            yield frames_to_tensor(frame)

    start, count = time.perf_counter(), 0
    try:
        with cudnn_autotune(device), FrameWriter(ffmpeg, ["-y", *args], f"{dst}: encoding failed") as writer:
            for out in restore_stream(lq(), stages, device=device, **opts.inference.run_kwargs()):
                rgb = quantize(out).permute(1, 2, 0).contiguous().numpy()
                if not writer.write(rgb):
                    break  # the encoder stopped: its failure is raised on closing
                if opts.frames_dir is not None:
                    write_rgb(Path(opts.frames_dir) / frame_name(count), rgb)
                count += 1
                progress(RestoreFrame(count))
    except BaseException:
        atomic.remove(tmp)
        raise
    if count == 0:
        atomic.remove(tmp)
        raise UvssmError(f"{src}: no frames could be decoded")
    tmp.replace(dst)
    qp_path = qpmaps.save(maps, input_qp_map_path(dst)) if maps is not None else None
    return {"qp_map": qp_path, "frames": count, "size": (width, height), "out_size": (out_w, out_h), "fps": float(fps), "colour": colour,
            "seconds": time.perf_counter() - start, "model": model.name, "checkpoints": model.checkpoints,
            "device": str(device), "dcn_backend": dcn_backend}
