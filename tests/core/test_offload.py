"""`off_the_loop` runs work in a thread of gevent's pool under gevent (so a
long operator page does not hold the web process's loop), and in place
everywhere else."""

import subprocess
import sys
import threading

from core.offload import off_the_loop
from tests.factories import ROOT

UNDER_GEVENT = """
from gevent import monkey
monkey.patch_all()
import threading
from core.offload import off_the_loop
loop_thread = threading.get_native_id()
print(off_the_loop(threading.get_native_id) != loop_thread, off_the_loop(lambda a, b=0: a + b, 2, b=3))
"""


def test_under_gevent_the_work_runs_in_another_os_thread_and_its_result_comes_back():
    out = subprocess.run([sys.executable, "-c", UNDER_GEVENT], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "5"]


def test_without_gevent_the_work_runs_in_place():
    assert off_the_loop(threading.get_native_id) == threading.get_native_id()
    assert off_the_loop(lambda a, b=0: a + b, 2, b=3) == 5
