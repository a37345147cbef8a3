"""generator/pause.py: the tests' pause points, and a signal that reaches a paused build."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent("""
    import os, signal, sys, threading, time
    from generator import pause

    def terminate(signum, frame):
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, terminate)
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()  # another thread the signal can land on
    if sys.argv[1] == "elsewhere":  # the main thread blocks it, so the kernel must hand it to the other thread
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    pause.pause_at("explaining")
    print("went on", flush=True)
""")


def _paused(how: str) -> subprocess.Popen:
    env = {"CAM_PAUSE_AT": "explaining", "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, how], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    assert line.startswith("paused at explaining "), line
    return proc


def test_a_line_on_standard_input_lets_the_paused_process_go_on():
    proc = _paused("main")
    proc.stdin.write("\n")
    proc.stdin.flush()
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out == "went on\n"


def test_a_signal_taken_by_another_thread_still_stops_the_paused_process():
    """The main thread blocks SIGTERM, so another thread takes it: its handler must run all the same, while the
    process waits for a line that never comes (one blocking readline waited for ever)."""
    for how in ("main", "elsewhere"):
        proc = _paused(how)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 143, how
        proc.stdin.close()
