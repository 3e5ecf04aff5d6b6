"""Where the ffmpeg binary is, which versions it carries, and how to run it.

Every ffmpeg call in uvssm goes through this module, so that one binary is used for a whole run
and its versions end up in the provenance. The search order is:

1. an explicit path (`--ffmpeg PATH` on the command line),
2. the `UVSSM_FFMPEG` environment variable,
3. `ffmpeg` on `PATH`,
4. the static binary that the `imageio-ffmpeg` wheel ships.

`command` compiles a one-input, one-output command with ffmpeg-python; the runners take any argv.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import ffmpeg as ffmpeg_python

from uvssm.base.errors import UvssmError

ENV_VAR = "UVSSM_FFMPEG"


@dataclass(frozen=True)
class FFmpeg:
    """One ffmpeg binary and what it reports about itself."""

    path: str  # absolute path of the binary
    source: str  # how it was found: "option", "env", "PATH" or "imageio-ffmpeg"
    version: str  # e.g. "n9.0.2-17-g2a571b6068-20260930" (the word after "ffmpeg version")
    x264: str  # libx264 as it signs its streams, e.g. "core 165 r3222 b35605a"

    def as_dict(self) -> dict:
        return asdict(self)


def find_ffmpeg(explicit: str | os.PathLike | None = None) -> FFmpeg:
    """Locate ffmpeg (see the module docstring for the order) and read its versions."""
    if explicit:
        return _probe(_checked_path(str(explicit), "--ffmpeg"), "option")
    env = os.environ.get(ENV_VAR)
    if env:
        return _probe(_checked_path(env, ENV_VAR), "env")
    on_path = shutil.which("ffmpeg")
    if on_path:
        return _probe(str(Path(on_path).resolve()), "PATH")
    try:
        import imageio_ffmpeg
    except ImportError:
        raise UvssmError("ffmpeg: not on PATH and imageio-ffmpeg is not installed; install one or pass --ffmpeg") from None
    try:
        return _probe(imageio_ffmpeg.get_ffmpeg_exe(), "imageio-ffmpeg")
    except RuntimeError as exc:
        raise UvssmError(f"ffmpeg: imageio-ffmpeg has no binary for this platform ({exc})") from None


def _checked_path(candidate: str, origin: str) -> str:
    resolved = shutil.which(candidate) or (candidate if os.path.isfile(candidate) else None)
    if resolved is None:
        raise UvssmError(f"{candidate}: ffmpeg binary named by {origin} does not exist")
    if not os.access(resolved, os.X_OK):
        raise UvssmError(f"{resolved}: ffmpeg binary named by {origin} is not executable")
    return str(Path(resolved).resolve())


@functools.lru_cache(maxsize=8)
def _probe(path: str, source: str) -> FFmpeg:
    try:
        out = subprocess.run([path, "-hide_banner", "-version"], capture_output=True, text=True, timeout=60)
    except OSError as exc:
        raise UvssmError(f"{path}: cannot run ffmpeg ({exc.strerror})") from None
    match = re.search(r"ffmpeg version (\S+)", out.stdout)
    if out.returncode != 0 or match is None:
        raise UvssmError(f"{path}: does not answer like ffmpeg to -version")
    return FFmpeg(path=path, source=source, version=match.group(1), x264=_x264_version(path))


def command(source: str, target: str, *, before: dict | None = None, after: dict | None = None,
            overwrite: bool = False) -> list[str]:
    """The argv (after the binary) of `ffmpeg [before] -i source [after] target`, compiled by ffmpeg-python.

    Options are keyword dicts, {"pix_fmt": "rgb24", "frames:v": 10} for `-pix_fmt rgb24 -frames:v 10`;
    ffmpeg-python writes each group in name order (ffmpeg does not care about the order within a group).
    `overwrite` adds `-y`.
    """
    stream = ffmpeg_python.input(source, **(before or {})).output(target, **(after or {}))
    return (stream.overwrite_output() if overwrite else stream).get_args()


def _x264_version(path: str) -> str:
    """Encode one tiny frame and read the version string libx264 writes into its SEI."""
    with tempfile.TemporaryDirectory(prefix="uvssm-x264-") as tmp:
        h264 = Path(tmp) / "probe.h264"
        argv = [path, "-nostdin", "-hide_banner", "-loglevel", "error",
                *command("color=c=gray:s=16x16:d=0.04", str(h264), before={"f": "lavfi"},
                         after={"frames:v": 1, "c:v": "libx264", "f": "h264"})]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if done.returncode != 0 or not h264.exists():
            raise UvssmError(f"{path}: this ffmpeg cannot encode with libx264 ({_last_line(done.stderr)})")
        return x264_signature(h264.read_bytes())[0]


def x264_signature(stream: bytes) -> tuple[str, str]:
    """(version, options) from the "x264 - core ... options: ..." SEI text in an H.264 stream."""
    match = re.search(rb"x264 - (core \d+(?: r\d+ [0-9a-f]+)?).*?options: ([^\x00]*)", stream[:65536], re.S)
    if match is None:
        return "unknown", ""
    return match.group(1).decode("ascii", "replace"), match.group(2).decode("ascii", "replace")


def _failure_reason(returncode: int, stderr_text: str) -> str:
    """One line saying why ffmpeg failed: its last error line, or the signal that killed it."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (file size limit exceeded)" if name == "SIGXFSZ" else ""
        return f"ffmpeg was killed by {name}{hint}"
    return f"ffmpeg failed: {_last_line(stderr_text)}"


def _last_line(text: str) -> str:
    """The last error line of a log (level-tagged logs: the last `[error]`/`[fatal]` line)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    tagged = [line for line in lines if "[error] " in line or "[fatal] " in line]
    if tagged:
        return tagged[-1].replace("[error] ", "").replace("[fatal] ", "")
    return lines[-1] if lines else "no message"


def _argv(ffmpeg: FFmpeg, args: list[str], loglevel: str = "error") -> list[str]:
    return [ffmpeg.path, "-nostdin", "-hide_banner", "-nostats", "-loglevel", loglevel, *args]


def run(ffmpeg: FFmpeg, args: list[str], *, context: str) -> None:
    """Run ffmpeg with `args` (everything after the binary). Raise UvssmError naming `context`."""
    with tempfile.TemporaryFile() as err:
        try:
            done = subprocess.run(_argv(ffmpeg, args), stdout=subprocess.DEVNULL, stderr=err)
        except OSError as exc:
            raise UvssmError(f"{context}: cannot start ffmpeg ({exc.strerror})") from None
        if done.returncode != 0:
            raise UvssmError(f"{context}: {popen_failure(done.returncode, err)}")


def popen(ffmpeg: FFmpeg, args: list[str], stderr) -> subprocess.Popen:
    """Start ffmpeg with stdout as a pipe (for raw frames). stderr goes to the given file, not a
    pipe, so that a chatty ffmpeg can never block while the caller reads its stdout."""
    return subprocess.Popen(_argv(ffmpeg, args), stdout=subprocess.PIPE, stderr=stderr, bufsize=0)


def popen_writer(ffmpeg: FFmpeg, args: list[str], stderr) -> subprocess.Popen:
    """Start ffmpeg with stdin as a pipe (raw frames in), stdout discarded, stderr to the given file."""
    return subprocess.Popen(_argv(ffmpeg, args), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr)


class FrameWriter:
    """An ffmpeg process that reads raw frames on stdin (`args` name the raw input and the output).

    Use it as a context manager: on leaving normally the input is closed and ffmpeg waited for, and a
    failure raises UvssmError("<context>: <why ffmpeg failed>") in one line; on an exception ffmpeg is
    killed and the exception goes on. `write` returns False once ffmpeg has stopped reading (it failed
    or has all it wants), so the caller can stop feeding it."""

    def __init__(self, ffmpeg: FFmpeg, args: list[str], context: str):
        self.context = context
        self.err = tempfile.TemporaryFile()
        self.proc = popen_writer(ffmpeg, args, self.err)

    def write(self, frame) -> bool:
        """One frame: bytes, or an array (written in C order)."""
        try:
            self.proc.stdin.write(frame if isinstance(frame, (bytes, bytearray, memoryview)) else frame.tobytes())
        except BrokenPipeError:
            return False
        return True

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            code = self.proc.wait()
        except BaseException:  # Ctrl-C or SIGTERM while ffmpeg finishes: it must not go on writing
            self.kill()
            raise
        failure = popen_failure(code, self.err) if code else None
        self.err.close()
        if failure:
            raise UvssmError(f"{self.context}: {failure}")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.err.close()

    def __enter__(self) -> "FrameWriter":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.kill()


def raw_frames(ffmpeg: FFmpeg, args: list[str], frame_bytes: int, *, context: str):
    """Run ffmpeg with `args` (ending in a rawvideo output to stdout) and yield each frame's bytes.

    A stream that ends inside a frame, or an ffmpeg that fails, raises UvssmError starting with
    `context`. Closing the generator early (the caller has what it needs) stops ffmpeg.
    """
    with tempfile.TemporaryFile() as err:
        proc = popen(ffmpeg, args, err)
        try:
            while True:
                data = read_exactly(proc.stdout, frame_bytes)
                if not data:
                    break
                if len(data) != frame_bytes:
                    raise UvssmError(f"{context}: ffmpeg ended inside a frame ({len(data)} of {frame_bytes} bytes)")
                yield data
        except GeneratorExit:
            proc.kill()
            raise
        finally:
            proc.stdout.close()
            code = proc.wait()
        if code != 0:
            raise UvssmError(f"{context}: {popen_failure(code, err)}")


def read_exactly(stream, n: int) -> bytes:
    """Read n bytes from an unbuffered pipe (one read may return less); fewer only at end of stream."""
    chunks, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def popen_failure(returncode: int, stderr_file) -> str:
    """One line saying why ffmpeg failed, from its return code and the file holding its stderr."""
    stderr_file.seek(0)
    return _failure_reason(returncode, stderr_file.read().decode("utf-8", "replace"))


FrameSink = Callable[[int, bytes], None]  # (pipe index, one frame's bytes)


def run_with_pipes(ffmpeg: FFmpeg, args: list[str], pipes: Sequence[Path], frame_bytes: Sequence[int],
                   on_frame: FrameSink, *, context: str) -> str:
    """Run ffmpeg whose `args` write raw frames to the named pipes `pipes` (created here), and hand
    every frame to `on_frame` as it arrives. Returns ffmpeg's log, level-tagged at info level.

    Each pipe has its own reader thread, which keeps draining after a bad frame so that ffmpeg can
    never block on a full pipe. A reader still waiting for ffmpeg to open its pipe when ffmpeg
    exits is released by opening the pipe's write end once. Raises UvssmError starting with
    `context` when ffmpeg fails or a pipe ends inside a frame.
    """
    for path in pipes:
        path.unlink(missing_ok=True)
        os.mkfifo(path)
    problems: list[str] = []

    def read(index: int) -> None:
        size = frame_bytes[index]
        with open(pipes[index], "rb", buffering=0) as stream:
            while data := read_exactly(stream, size):
                if len(data) != size:
                    problems.append(f"ffmpeg ended inside a frame ({len(data)} of {size} bytes) of {pipes[index].name}")
                elif not problems:
                    try:
                        on_frame(index, data)
                    except Exception as exc:  # keep draining: a reader that stops would block ffmpeg
                        problems.append(f"{pipes[index].name}: {exc}")

    readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(len(pipes))]
    for reader in readers:
        reader.start()
    with tempfile.TemporaryFile() as err:
        try:
            code = subprocess.run(_argv(ffmpeg, args, "level+info"), stdout=subprocess.DEVNULL, stderr=err).returncode
        except OSError as exc:
            code = None
            problems.insert(0, f"cannot start ffmpeg ({exc.strerror})")
        for path, reader in zip(pipes, readers):
            while reader.is_alive():
                try:  # a reader blocked in open(): give it a writer that closes at once (EOF)
                    os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:
                    pass  # no reader on the pipe yet, or it is reading already
                reader.join(0.05)
        err.seek(0)
        log = err.read().decode("utf-8", "replace")
    for path in pipes:
        path.unlink(missing_ok=True)
    if code:
        raise UvssmError(f"{context}: {_failure_reason(code, log)}")
    if problems:
        raise UvssmError(f"{context}: {problems[0]}")
    return log
