import os
import stat

import pytest

from uvssm.base.errors import UvssmError
from uvssm.base.ffmpeg import ENV_VAR, find_ffmpeg, x264_signature


def test_found_binary_reports_versions(ffmpeg):
    assert os.access(ffmpeg.path, os.X_OK)
    assert ffmpeg.version and ffmpeg.version != "unknown"
    assert ffmpeg.x264.startswith("core ")


def test_explicit_path_wins_over_env(ffmpeg, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "/nonexistent/ffmpeg")
    found = find_ffmpeg(ffmpeg.path)
    assert found.source == "option" and found.path == ffmpeg.path


def test_env_var_is_used(ffmpeg, monkeypatch):
    monkeypatch.setenv(ENV_VAR, ffmpeg.path)
    assert find_ffmpeg().source == "env"


def test_missing_override_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "/nonexistent/ffmpeg")
    with pytest.raises(UvssmError, match="/nonexistent/ffmpeg.*does not exist"):
        find_ffmpeg()


def test_a_binary_that_is_not_ffmpeg_is_rejected(tmp_path):
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho hello\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(UvssmError, match="does not answer like ffmpeg"):
        find_ffmpeg(str(fake))


def test_x264_signature_parses_sei_text():
    blob = b"\x00\x00x264 - core 164 r3108 31e19f9 - H.264/MPEG-4 AVC codec - options: cabac=1 ref=3\x00rest"
    assert x264_signature(blob) == ("core 164 r3108 31e19f9", "cabac=1 ref=3")
    assert x264_signature(b"no sei here") == ("unknown", "")
