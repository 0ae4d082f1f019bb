"""vista_api.jobs, `vista jobs` and the studio's jobs table: a job whose process dies (a studio restart) is marked
interrupted and resumes from its cache, a finished job's result stays listed, cancel works, the queue is bounded.

The render job is test_recipe's tiny scene along a 16-frame path; its worker is a real child process that kills
itself after 4 frames, as a server killed mid-render would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from render.encode import probe_video
from render.frame_cache import frame_cache_dir
from tests.conftest import REPO
from tests.test_recipe import scene_dir, write_path  # noqa: F401  (scene_dir is a module fixture)
from vista import main
from vista_api import jobs
from vista_api.jobs import JobStore
from vista_api.render import ShotRequest
from vista_core.errors import VistaError
from vista_core.progress import ProgressEvent
from vista_studio import jobs as studio_jobs
from vista_studio import workspace as wsp

FRAMES = 16

DIE_AFTER_4_FRAMES = """
import os, signal, sys
from vista_api import jobs
real = jobs.ACTIONS["render"]
def render_then_die(request, progress):
    def dying(event):
        progress(event)
        if event.done >= 4:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(request, dying)
jobs.ACTIONS["render"] = render_then_die
jobs.JobStore(sys.argv[1]).run(int(sys.argv[2]))
"""


@pytest.mark.slow  # a child process imports torch and renders; ~15 s of CPU, longer on a loaded box
def test_a_job_killed_with_its_process_is_interrupted_then_resumes_from_its_cache_and_stays_listed(
        scene_dir, tmp_path, capsys):  # noqa: F811
    root = tmp_path / "studio"
    workspace = root / "sessions" / "a"
    workspace.mkdir(parents=True)
    path = write_path(workspace / "path.json", n=FRAMES, width=48, height=32)
    out = workspace / "shot.mp4"
    store = studio_jobs.studio_store(root)
    job_id = store.submit("render", ShotRequest(scene_dir, path, out), owner=workspace.name)
    child = subprocess.run([sys.executable, "-c", DIE_AFTER_4_FRAMES, str(store.workspace), str(job_id)],
                           cwd=REPO, capture_output=True, text=True, timeout=300)
    assert child.returncode == -9, child.stderr  # SIGKILL, mid-render
    cached = len(list(frame_cache_dir(out).glob("[0-9]*.png")))
    assert 4 <= cached < FRAMES

    # the studio starts again: opening the table marks the dead worker's job interrupted
    [line] = studio_jobs.jobs_table(root, workspace)
    assert line[0] == job_id and line[2] == "interrupted" and "resume" in line[4]

    # resumed as a user would: `vista jobs resume` starts a worker process (`vista jobs run`) and returns
    assert main(["jobs", "resume", str(job_id), "--workspace", str(root)]) == 0
    store, deadline = studio_jobs.studio_store(root), time.monotonic() + 300
    while store.get(job_id).active and time.monotonic() < deadline:
        time.sleep(0.5)
    row = store.get(job_id)
    worker_log = (root / ".vista" / f"job-{job_id}.log").read_text()
    assert row.state == "done" and row.result == str(out), worker_log
    assert f"resuming: {cached} of {FRAMES} frames already rendered" in worker_log
    assert probe_video(out).frames == FRAMES

    # and again after another restart: the finished job and its result are still listed
    [line] = studio_jobs.jobs_table(root, workspace)
    assert line[2] == "done" and line[4] == "shot.mp4"
    assert main(["jobs", "--workspace", str(root)]) == 0
    assert "render  done" in capsys.readouterr().out


def test_cancel_stops_a_running_job_and_drops_a_queued_one(tmp_path, monkeypatch):
    def endless(request, progress):
        for step in range(10_000):
            progress(ProgressEvent("training", step, 10_000))
            time.sleep(0.01)
        raise AssertionError("never cancelled")

    monkeypatch.setitem(jobs.ACTIONS, "train", endless)
    store = JobStore(tmp_path)
    running = store.submit("train", ShotRequest(tmp_path, tmp_path / "p.json", tmp_path / "o.mp4"))
    queued = store.submit("render", ShotRequest(tmp_path, tmp_path / "p.json", tmp_path / "o.mp4"))
    worker = threading.Thread(target=store.run, args=(running,))
    worker.start()
    deadline = time.monotonic() + 30
    while store.get(running).state != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "asked to stop" in store.cancel(running)
    worker.join(30)
    assert store.get(running).state == "cancelled"
    assert store.cancel(queued) == f"job {queued} cancelled" and store.get(queued).state == "cancelled"
    with pytest.raises(VistaError, match="is cancelled: nothing to cancel"):
        store.cancel(queued)


def test_the_queue_is_bounded_and_a_session_has_one_job(tmp_path, monkeypatch, capsys):
    from vista_studio import limits

    monkeypatch.setattr(limits, "LIMITS", limits.StudioLimits(max_waiting_jobs=1))
    monkeypatch.setattr(studio_jobs, "start_worker", lambda *args: None)
    request = ShotRequest(tmp_path, tmp_path / "p.json", tmp_path / "o.mp4")
    sessions = [tmp_path / "sessions" / name for name in ("a", "b", "c")]
    for folder in sessions:
        folder.mkdir(parents=True)
    studio_jobs.submit(tmp_path, sessions[0], "render", request)
    with pytest.raises(VistaError, match="a job of this session is already queued or running"):
        studio_jobs.submit(tmp_path, sessions[0], "render", request)
    studio_jobs.submit(tmp_path, sessions[1], "render", request)  # one runs, one waits
    with pytest.raises(VistaError, match="the job queue is full: 2 jobs"):
        studio_jobs.submit(tmp_path, sessions[2], "render", request)
    with pytest.raises(VistaError, match="no job 1 in this session"):  # another session's job is not yours
        studio_jobs.cancel(tmp_path, sessions[1], 1)
    assert main(["jobs", "cancel", "99", "--workspace", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"vista jobs: error: {tmp_path / '.vista' / 'jobs.sqlite'}: no job 99"


def test_a_request_the_table_cannot_hold_is_refused(tmp_path):
    with pytest.raises(VistaError, match="unknown job kind 'paint'"):
        JobStore(tmp_path).submit("paint", ShotRequest(tmp_path, Path("p.json"), Path("o.mp4")))


STUDIO_KILLED_MID_BUILD = """
import os, signal, sys, time
from pathlib import Path
from vista_studio import jobs, workspace as wsp

def build(job):
    job.update(stage="training", step=5, total=100, force=True)
    os.kill(os.getpid(), signal.SIGKILL)  # the server dies mid-job

wsp.start_job(Path(sys.argv[1]), "build", build).thread.join(60)
"""


def test_the_studios_own_jobs_are_listed_cancelled_from_the_table_and_interrupted_by_a_restart(tmp_path):
    root = wsp.workspace_root(tmp_path / "studio")
    killed, mine = wsp.new_workspace(root), wsp.new_workspace(root)
    child = subprocess.run([sys.executable, "-c", STUDIO_KILLED_MID_BUILD, str(killed)], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -9, child.stderr
    [line] = studio_jobs.jobs_table(root, killed)  # the restarted studio opens the table
    assert line[1:3] == ["build", "interrupted"]
    with pytest.raises(VistaError, match="ran inside the studio: start its step there again"):
        studio_jobs.resume(root, killed, line[0])

    def work(job):
        for step in range(10_000):
            job.update(stage="rendering frames", step=step, total=10_000)
            job.check_cancelled()
            time.sleep(0.01)
        return {}

    wsp.start_job(mine, "render", work)
    deadline = time.monotonic() + 30
    while not studio_jobs.jobs_table(root, mine) and time.monotonic() < deadline:
        time.sleep(0.1)
    [line] = studio_jobs.jobs_table(root, mine)
    assert line[1] == "render" and line[2] in ("queued", "running")
    assert studio_jobs.jobs_table(root, killed)[0][0] != line[0]  # each session sees its own
    assert "asked to stop" in studio_jobs.cancel(root, mine, line[0])
    assert wsp.wait_job(mine, 30).status == "cancelled"
    assert studio_jobs.jobs_table(root, mine)[0][2] == "cancelled"


def test_requests_round_trip_with_their_options_and_only_vista_api_classes_are_made(tmp_path):
    from vista_api.farm import RayFarm
    from vista_api.render import Quality

    request = ShotRequest(tmp_path, tmp_path / "p.json", tmp_path / "o.mp4", width=64, height=48,
                          quality=Quality(supersample=2), farm=RayFarm("local", threads=2))
    assert jobs.request_from_dict(json.loads(json.dumps(jobs.request_to_dict(request)))) == request
    for forged in ("os:system", "vista_api.render:render_shot", "vista_api.render:nothing"):
        with pytest.raises(VistaError, match="not a vista_api request"):
            jobs.request_from_dict({"__class__": forged})
