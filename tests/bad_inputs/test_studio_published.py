"""The copies the studio publishes for a session's views go when idle cleaning deletes the session (issue #23).

Published copies are hard links where possible (vista_studio.published), so without this a deleted session's
renders would live on, readable, in the publisher's folder.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from vista_studio import published, session
from vista_studio import workspace as wsp


def test_idle_cleaning_deletes_the_sessions_published_copies_and_keeps_the_others(tmp_path):
    root = wsp.workspace_root(tmp_path / "root")
    old, fresh = wsp.new_workspace(root), wsp.new_workspace(root)
    publisher = published.Publisher(root, tmp_path / "out")
    shown = {}
    for name, folder in (("old", old), ("fresh", fresh)):
        (folder / "shot.mp4").write_bytes(f"{name} video".encode())
        shown[name] = Path(publisher.values(folder, {"video": str(folder / "shot.mp4")})["video"])
        assert shown[name].read_bytes() == f"{name} video".encode() and shown[name].is_relative_to(tmp_path / "out")
    long_ago = time.time() - 73 * 3600
    os.utime(old, (long_ago, long_ago))

    assert session.clean_idle_sessions(root, ttl_hours=72) == [old.name]
    assert not old.exists() and not shown["old"].exists()
    assert not shown["old"].parent.parent.exists()  # the session's whole folder of copies
    assert shown["fresh"].read_bytes() == b"fresh video"  # another session's copies stay


def test_a_closed_publisher_is_not_kept_alive_by_the_cleaner(tmp_path):
    root = wsp.workspace_root(tmp_path / "root")
    publisher = published.Publisher(root, tmp_path / "out")
    del publisher  # weakly held: the cleaner neither keeps it nor fails on it
    old = wsp.new_workspace(root)
    long_ago = time.time() - 73 * 3600
    os.utime(old, (long_ago, long_ago))
    assert session.clean_idle_sessions(root, ttl_hours=72) == [old.name]
