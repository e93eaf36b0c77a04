"""A dead process's Prometheus files folded into an archive: the scrape
reads the same totals from fewer files."""

import os
import subprocess
import sys

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from core.metrics_files import fold_dead_process

ONE_PROCESS = """
from prometheus_client import Counter, Gauge, Histogram
Counter("runs", "Runs.", ["status"]).labels("{status}").inc({count})
Histogram("run_seconds", "Run time.").observe({seconds})
Gauge("busy", "Busy.", multiprocess_mode="livesum").set(1)
import os; print(os.getpid())
"""


def record(directory, **values):
    code = ONE_PROCESS.format(**values)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    return int(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)


def scrape(directory):
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return sorted(line for line in generate_latest(registry).decode().splitlines() if not line.startswith("#"))


def test_folded_processes_add_up_to_what_their_own_files_said(tmp_path):
    first = record(tmp_path, status="success", count=3, seconds=0.2)
    second = record(tmp_path, status="error", count=2, seconds=4.0)
    third = record(tmp_path, status="success", count=5, seconds=0.2)
    before = [line for line in scrape(tmp_path) if not line.startswith("busy")]

    for pid in (first, second, third):
        fold_dead_process(pid, "archive-test", tmp_path)

    assert scrape(tmp_path) == before
    assert 'runs_total{status="success"} 8.0' in before
    assert sorted(os.listdir(tmp_path)) == ["counter_archive-test.db", "histogram_archive-test.db"]


def test_a_process_without_files_changes_nothing(tmp_path):
    fold_dead_process(999999, "archive-test", tmp_path)
    assert os.listdir(tmp_path) == []
