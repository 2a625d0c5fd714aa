"""The background lane of tests/conftest.py: a session that is killed stops the lane's subprocess too."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

MODULE = '''
import os, sys
import pytest

def background_command():
    code = "import os, time; open(os.environ['PIDFILE'], 'w').write(str(os.getpid())); time.sleep(600)"
    return [sys.executable, "-c", code], dict(os.environ)

@pytest.mark.background
def test_waits(background_result):
    assert background_result[0] == 0

def test_long():
    import time
    time.sleep(600)
'''


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_terminated_session_stops_the_lane(tmp_path: Path) -> None:
    """SIGTERM, as a CI timeout sends it (SIGHUP takes the same handler)."""
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nmarkers = ["background: runs beside the session", "slow: slow", "gpu: gpu"]\n')
    (tmp_path / "test_lane.py").write_text(MODULE)
    pidfile = tmp_path / "lane.pid"
    session = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                               cwd=tmp_path, env=dict(os.environ, PIDFILE=str(pidfile)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        lane_pid = int(pidfile.read_text())
        assert _alive(lane_pid)
        session.send_signal(signal.SIGTERM)
        session.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(lane_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(lane_pid), "the lane's subprocess outlived its session"
    finally:
        session.kill()
        session.wait()
