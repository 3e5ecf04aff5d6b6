"""Regenerate data_manifest.csv, the catalogue of clips uvssm knows.

Sources (public material: the REDS and UVSSM release pages, the VOTES paper and repository):
- REDS (NTIRE 2019): 240 train_sharp + 30 val_sharp clips of 100 frames at 1280x720; val merged as
  240..269 (BasicSR convention); REDS4 = 000/011/015/020 (val); REDSOfficial = 240..269 (test).
- UVSSM WeChat: the 213 clip ids of VOTES' meta_info_UVSSMWeChat.txt (001..217 without 025, 089,
  090, 128), 100 frames each, originals 1920x1080 shared at 960x540 (paper Table 1); the paper's
  test split is the 10 clips of meta_info_UVSSMWeChat_test2.txt. The val file the VOTES training
  config names is not public, so the remaining clips are listed as train.
- UVSSM Twitter / Bilibili / YouTube: 50 clips each (1280x720 -> 640x360), but no clip ids are
  public, so they have no rows.

Run: python tools/make_data_manifest.py > data_manifest.csv
"""

import csv
import sys

WECHAT_MISSING = {25, 89, 90, 128}
WECHAT_TEST = {"016", "048", "055", "065", "108", "130", "159", "166", "216", "217"}
REDS4 = {"000", "011", "015", "020"}

COLUMNS = ["dataset", "platform", "clip", "split", "split_source", "n_frames",
           "hq_width", "hq_height", "lq_width", "lq_height", "source", "note"]


def rows():
    for i in range(270):
        clip = f"{i:03d}"
        if clip in REDS4:
            split, why = "val", "REDS4 (BasicSR/VOTES validation)"
        elif i >= 240:
            split, why = "test", "REDSOfficial (REDS val_sharp; VOTES test)"
        else:
            split, why = "train", "REDS train_sharp minus REDS4"
        source = f"train_sharp/{clip}" if i < 240 else f"val_sharp/{i - 240:03d}"
        yield ["REDS", "", clip, split, why, 100, 1280, 720, "", "", source, "LQ size depends on --scale"]
    for i in range(1, 218):
        if i in WECHAT_MISSING:
            continue
        clip = f"{i:03d}"
        if clip in WECHAT_TEST:
            split, why = "test", "VOTES meta_info_UVSSMWeChat_test2.txt (paper test split)"
        else:
            split, why = "train", "VOTES meta_info_UVSSMWeChat.txt minus test2 (val list not public)"
        yield ["UVSSM", "wechat", clip, split, why, 100, 1920, 1080, 960, 540,
               f"WeChat/HQ_frames/{clip}", "paper Table 1 sizes; some originals may be 1280x720"]


if __name__ == "__main__":
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows())
