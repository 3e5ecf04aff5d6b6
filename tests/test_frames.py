import pytest

from uvssm.base.frames import ClipProblem, check_clip, read_png_header


def test_good_clip(clips):
    clip = check_clip("000", clips / "000")
    assert (clip.n_frames, clip.width, clip.height) == (8, 128, 72)


def test_gap_in_numbering_names_the_missing_file(clips):
    (clips / "000" / "00000003.png").unlink()
    with pytest.raises(ClipProblem, match=r"clip 000: .*00000003\.png is missing"):
        check_clip("000", clips / "000")


def test_not_a_png_is_named(clips):
    (clips / "000" / "00000005.png").write_bytes(b"garbage")
    with pytest.raises(ClipProblem, match=r"clip 000: .*00000005\.png: unreadable PNG"):
        check_clip("000", clips / "000")


def test_mixed_sizes_are_named(clips, ffmpeg):
    from tests.conftest import make_clip

    other = make_clip(ffmpeg, clips.parent / "other", seed=9, frames=1, size="64x36")
    (other / "00000000.png").replace(clips / "000" / "00000004.png")
    with pytest.raises(ClipProblem, match=r"00000004\.png is 64x36, frame 00000000\.png is 128x72"):
        check_clip("000", clips / "000")


def test_empty_folder(tmp_path):
    (tmp_path / "c").mkdir()
    with pytest.raises(ClipProblem, match="holds no %08d.png frames"):
        check_clip("c", tmp_path / "c")


def test_header_reader(clips):
    h = read_png_header(clips / "001" / "00000000.png")
    assert (h.width, h.height, h.bit_depth, h.color) == (128, 72, 8, "rgb")
