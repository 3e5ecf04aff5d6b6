"""Compression recipes as data: what ffmpeg is asked to do, serialisable into provenance.

The `votes` recipe reproduces the command of the official VOTES README:

    ffmpeg -f image2 -i %08d.png -vcodec libx264 -r 25 -qp Q -s (W/s)x(H/s) -pix_fmt yuv420p clip.mp4
    ffmpeg -i clip.mp4 -f image2 -start_number 0 %08d.png

with one change: the libx264 thread count is pinned (`-threads 1` after the inputs, which sets the
encoder's threads). libx264's output depends on its thread count and its default thread count
depends on the machine's cores, so the unpinned command gives different frames on different
machines. uvssm gets its parallelism from running clips side by side instead.

What uvssm does differently from the two commands, none of which changes a pixel:
- the PNG writer uses `-compression_level 1 -pred paeth` (ffmpeg's default level spends ~5x
  the CPU on a ~10% smaller file);
- the decoded frames are also piped to uvssm as raw RGB so that it can hash them;
- input decoding may use several threads (decoder threads do not change decoded pixels);
- `-xerror` stops on a damaged source PNG: the plain command logs the error, repeats the previous
  frame in its place and exits 0.
Tests check that the frames equal those of the pinned two-command recipe, bit for bit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class X264Recipe:
    """An ffmpeg/libx264 fixed-QP recipe that downscales with ffmpeg's `-s` option."""

    name: str = "votes"  # recipe name recorded in provenance
    qp: int = 28  # x264 --qp: constant quantiser for P frames (I/B derive from ipratio/pbratio)
    scale: int = 2  # integer downscale factor; LQ size = (W/scale, H/scale)
    fps: int = 25  # output frame rate (`-r 25`); the image2 input also defaults to 25
    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    scaler: str = "ffmpeg -s (libswscale, ffmpeg's default flags: bicubic)"
    x264_threads: int = 1  # pinned libx264 thread count: the only setting that changes pixels here
    png_compression_level: int = 1  # PNG writer only: same pixels as the default, 5x less CPU
    png_pred: str = "paeth"

    @property
    def setting(self) -> str:
        """Folder suffix and short name, e.g. 'qp28_x2'."""
        return f"qp{self.qp}_x{self.scale}"

    def as_dict(self) -> dict:
        return asdict(self)

    def lq_size(self, width: int, height: int) -> tuple[int, int]:
        return width // self.scale, height // self.scale

    def size_arg(self, width: int, height: int) -> str:
        """The `-s` value for an HQ clip of width x height, e.g. '640x360'."""
        w, h = self.lq_size(width, height)
        return f"{w}x{h}"

    def size_placeholder(self) -> str:
        """The `-s` value as provenance writes it for any clip."""
        return f"<W/{self.scale}>x<H/{self.scale}>"

    def encode_args(self, src_pattern: str, size: str, mp4: str, decoder_threads: int = 0) -> list[str]:
        """ffmpeg arguments that encode the HQ PNG sequence into the LQ .mp4 (`size` as for -s)."""
        return [
            # -xerror: stop on a damaged source PNG (without it ffmpeg logs the error, repeats the
            # previous frame to keep the frame rate, and exits 0)
            "-xerror",
            # input options must come before -i; decoder threads never change decoded pixels
            "-threads", str(decoder_threads),
            "-f", "image2", "-i", src_pattern,
            # output options, in the official order; -s resizes with swscale before the encoder
            "-vcodec", self.codec, "-r", str(self.fps), "-qp", str(self.qp),
            "-s", size, "-pix_fmt", self.pix_fmt,
            # -threads after -i is the encoder's thread count: pinned for determinism
            "-threads", str(self.x264_threads),
            "-y", mp4,
        ]

    def clean_args(self, src_pattern: str, size: str, raw: str, decoder_threads: int = 0) -> list[str]:
        """The frames exactly as the encoder receives them (same -r/-s/-pix_fmt), as raw yuv."""
        return ["-xerror", "-threads", str(decoder_threads), "-f", "image2", "-i", src_pattern,
                "-r", str(self.fps), "-s", size, "-pix_fmt", self.pix_fmt,
                "-f", "rawvideo", "-y", raw]

    def png_args(self, out_pattern: str) -> list[str]:
        """Output options that write a decoded stream as %08d.png numbered from 0."""
        return ["-f", "image2", "-start_number", "0",
                "-compression_level", str(self.png_compression_level), "-pred", self.png_pred,
                "-y", out_pattern]

    def official_commands(self, src_pattern: str, size: str, mp4: str, out_pattern: str,
                          pinned: bool = True) -> list[list[str]]:
        """The VOTES README's two commands (argv after the binary), optionally with the thread pin."""
        encode = ["-f", "image2", "-i", src_pattern, "-vcodec", self.codec, "-r", str(self.fps),
                  "-qp", str(self.qp), "-y", "-s", size, "-pix_fmt", self.pix_fmt]
        if pinned:
            encode += ["-threads", str(self.x264_threads)]
        decode = ["-i", mp4, "-f", "image2", "-start_number", "0", out_pattern]
        return [encode + [mp4], decode]
