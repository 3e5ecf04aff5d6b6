from uvssm.base.catalog import check_reds, load_catalog
from uvssm.base.reds import REDS4, REDS_OFFICIAL, reds_split


def test_reds_rows_and_splits():
    cat = load_catalog()
    reds = cat[cat["dataset"] == "REDS"]
    assert len(reds) == 270 and (reds["n_frames"] == 100).all()
    assert reds.groupby("split").size().to_dict() == {"test": 30, "train": 236, "val": 4}
    assert sorted(reds.loc[reds["split"] == "val", "clip"]) == list(REDS4)
    assert sorted(reds.loc[reds["split"] == "test", "clip"]) == list(REDS_OFFICIAL)
    assert all(reds_split(c) == s for c, s in zip(reds["clip"], reds["split"]))


def test_wechat_rows_and_paper_test_split():
    cat = load_catalog()
    wechat = cat[cat["platform"] == "wechat"]
    assert len(wechat) == 213 and not {"025", "089", "090", "128"} & set(wechat["clip"])
    assert sorted(wechat.loc[wechat["split"] == "test", "clip"]) == [
        "016", "048", "055", "065", "108", "130", "159", "166", "216", "217"]
    assert set(zip(wechat["hq_width"], wechat["lq_width"])) == {(1920, 960)}


def test_check_reds_reports_missing_unexpected_and_wrong_counts():
    found = {f"{i:03d}": 100 for i in range(270) if i != 5}
    found["011"] = 99
    found["900"] = 100
    notes = check_reds(found, complete_release=True)
    assert any("1 clip(s) not in the REDS catalogue: 900" in n for n in notes)
    assert any("1 of 270 REDS catalogue clips missing (005)" in n for n in notes)
    assert any("clip 011: 99 frames, the REDS catalogue has 100" in n for n in notes)
    assert not any("missing" in n for n in check_reds({"000": 100}, complete_release=False))
