"""generator/frames.py: every file name a file system can hold survives a DataFrame, pyarrow installed or not."""

from __future__ import annotations

from generator.frames import pd


def test_undecodable_file_names_survive_a_table():
    names = ["cat.jpg", "caf\udce9.jpg", "\udcff\udcfe.png", "한국어.jpg"]  # surrogate escapes: undecodable bytes
    df = pd.DataFrame({"file": names})
    assert list(df["file"]) == names
    assert list(df.sort_values("file")["file"]) == sorted(names)
    assert df["file"].str.endswith(".jpg").sum() == 3
