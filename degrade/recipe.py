"""Compression recipes as data: what ffmpeg is asked to do, serialisable into provenance.

The `votes` recipe reproduces the command of the official VOTES README:

    ffmpeg -f image2 -i %08d.png -vcodec libx264 -r 25 -qp Q -s (W/s)x(H/s) -pix_fmt yuv420p clip.mp4
    ffmpeg -i clip.mp4 -f image2 -start_number 0 %08d.png

with one change: the libx264 thread count is pinned (`-threads 1` after the inputs, which sets the
encoder's threads). libx264's output depends on its thread count and its default thread count
depends on the machine's cores, so the unpinned command gives different frames on different
machines. uvssm gets its parallelism from running clips side by side instead.

What uvssm does differently from the two commands, none of which changes a pixel:
- one ffmpeg per clip makes every requested setting (`synth_command`): the HQ PNGs are decoded
  once, each scale is computed once (`scale=iw/S:ih/S:flags=bicubic,format=yuv420p`, the filter
  that `-s` and `-pix_fmt` insert) and split to every QP's encoder; each encoder's packets go
  to a loopback decoder (`-dec`) in the same process, whose frames become the LQ PNGs;
- the PNG writer uses `-compression_level 1 -pred up` (ffmpeg's default level spends ~5x
  the CPU on a ~3% smaller file, measured on 720p clips);
- the decoded frames are also written to a pipe as raw RGB so that uvssm can hash them, and
  pass `showinfo` so that their picture types are read from this one decode;
- input decoding may use several threads (decoder threads do not change decoded pixels);
- `-xerror` stops on a damaged source PNG: the plain command logs the error, repeats the previous
  frame in its place and exits 0.
Tests check that the frames equal those of the pinned two-command recipe, bit for bit, for every
setting of one run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from uvssm.base.ffmpeg import command
from uvssm.base.settings import setting_name


@dataclass(frozen=True)
class Downscale:
    """The frames an encoder receives: the HQ clip scaled as ffmpeg's `-s` does, in the encoder's pixel
    format, written as PNG (the clean LR of `--clean-lr`; the first half of every `X264Recipe`)."""

    name: str = "votes"  # recipe name recorded in provenance
    scale: int = 2  # integer downscale factor; LQ size = (W/scale, H/scale)
    fps: int = 25  # output frame rate (`-r 25`); the image2 input also defaults to 25
    pix_fmt: str = "yuv420p"
    scaler: str = "ffmpeg -s (libswscale, ffmpeg's default flags: bicubic)"
    png_compression_level: int = 1  # PNG writer only: same pixels as the default, 5x less CPU
    png_pred: str = "up"  # fastest and smallest of ffmpeg's PNG predictors on video frames

    def as_dict(self) -> dict:
        return asdict(self)

    def lq_size(self, width: int, height: int) -> tuple[int, int]:
        return width // self.scale, height // self.scale

    def size_arg(self, width: int, height: int) -> str:
        """The `-s` value for an HQ clip of width x height, e.g. '640x360'."""
        w, h = self.lq_size(width, height)
        return f"{w}x{h}"

    def scale_filter(self) -> str:
        """The filter chain that `-s W/S x H/S -pix_fmt yuv420p` inserts before the encoder."""
        return f"scale=iw/{self.scale}:ih/{self.scale}:flags=bicubic,format={self.pix_fmt}"

    def png_args(self, out_pattern: str) -> list[str]:
        """Output options that write a decoded stream as %08d.png numbered from 0."""
        return ["-f", "image2", "-start_number", "0",
                "-compression_level", str(self.png_compression_level), "-pred", self.png_pred,
                "-y", out_pattern]


@dataclass(frozen=True)
class X264Recipe(Downscale):
    """An ffmpeg/libx264 fixed-QP recipe that downscales with ffmpeg's `-s` option."""

    qp: int = 28  # x264 --qp: constant quantiser for P frames (I/B derive from ipratio/pbratio)
    codec: str = "libx264"
    x264_threads: int = 1  # pinned libx264 thread count: the only setting that changes pixels here

    @property
    def setting(self) -> str:
        """Folder suffix and short name, e.g. 'qp28_x2'."""
        return setting_name(self.qp, self.scale)

    def encoder_args(self) -> list[str]:
        """Output options of the encoded stream, in the official order, with the thread pin."""
        return ["-vcodec", self.codec, "-r", str(self.fps), "-qp", str(self.qp), "-pix_fmt", self.pix_fmt,
                # -threads after -i is the encoder's thread count: pinned for determinism
                "-threads", str(self.x264_threads)]

    def official_commands(self, src_pattern: str, size: str, mp4: str, out_pattern: str,
                          pinned: bool = True) -> list[list[str]]:
        """The VOTES README's two commands (argv after the binary, compiled by ffmpeg-python), optionally
        with the thread pin."""
        encode = {"vcodec": self.codec, "r": self.fps, "qp": self.qp, "s": size, "pix_fmt": self.pix_fmt}
        if pinned:
            encode["threads"] = self.x264_threads
        return [command(src_pattern, mp4, before={"f": "image2"}, after=encode, overwrite=True),
                command(mp4, out_pattern, after={"f": "image2", "start_number": 0})]


@dataclass(frozen=True)
class LqTarget:
    """Where one setting's outputs for a clip go (paths as they appear on the command line)."""

    recipe: X264Recipe
    mp4: str
    png_pattern: str  # decoded frames, %08d.png
    rgb_sink: str  # raw RGB of the decoded frames (a pipe uvssm hashes)


@dataclass(frozen=True)
class CleanTarget:
    """Where the frames an encoder receives at one scale go, converted to RGB as decoded frames are."""

    recipe: Downscale
    png_pattern: str
    rgb_sink: str


def synth_command(src_pattern: str, lq: Sequence[LqTarget], clean: Sequence[CleanTarget] = (),
                  decoder_threads: int = 0) -> list[str]:
    """One ffmpeg argv that makes every target of one clip from a single decode of its HQ PNGs.

    Graph 0 decodes the PNGs once, scales once per scale and splits each scaled stream to the
    encoders of that scale (and to the clean output). Every encoder output gets a loopback decoder
    (`-dec k:0`); graph 1 sends each decoded stream through `showinfo` (the picture types, logged
    as `Parsed_showinfo_k` for target k) and converts it to RGB once for the PNG writer and the
    hash pipe. Each chain is the one the pinned two-command recipe runs, so the frames are the same.
    """
    if not lq and not clean:
        raise ValueError("synth_command needs at least one target")
    scales = sorted({t.recipe.scale for t in [*lq, *clean]})
    graph0 = [f"[0:v]split={len(scales)}" + "".join(f"[in{s}]" for s in scales)] if len(scales) > 1 else []
    for s in scales:
        users = [f"[e{k}]" for k, t in enumerate(lq) if t.recipe.scale == s]
        users += [f"[c{k}]" for k, t in enumerate(clean) if t.recipe.scale == s]
        recipe = next(t.recipe for t in [*lq, *clean] if t.recipe.scale == s)
        source = f"[in{s}]" if len(scales) > 1 else "[0:v]"
        fan = f",split={len(users)}" if len(users) > 1 else ""
        graph0.append(f"{source}{recipe.scale_filter()}{fan}{''.join(users)}")
    graph0 += [f"[c{k}]format=rgb24,split=2[cp{k}][ch{k}]" for k in range(len(clean))]
    args = ["-xerror", "-threads", str(decoder_threads), "-f", "image2", "-i", src_pattern,
            "-filter_complex", ";".join(graph0)]
    for k, t in enumerate(lq):
        args += ["-map", f"[e{k}]", *t.recipe.encoder_args(), "-y", t.mp4]
    if lq:
        for k, _ in enumerate(lq):
            args += ["-dec", f"{k}:0"]
        graph1 = [f"[dec:{k}]showinfo[i{k}]" for k, _ in enumerate(lq)]
        graph1 += [f"[i{k}]format=rgb24,split=2[p{k}][h{k}]" for k, _ in enumerate(lq)]
        args += ["-filter_complex", ";".join(graph1)]
    for k, t in enumerate(lq):
        args += ["-map", f"[p{k}]", *t.recipe.png_args(t.png_pattern),
                 "-map", f"[h{k}]", "-f", "rawvideo", "-y", t.rgb_sink]
    for k, t in enumerate(clean):
        args += ["-map", f"[cp{k}]", *t.recipe.png_args(t.png_pattern),
                 "-map", f"[ch{k}]", "-f", "rawvideo", "-y", t.rgb_sink]
    return args
