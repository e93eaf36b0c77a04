"""Fold a dead process's Prometheus files into an archive of its parent's.

In multiprocess mode every process writes its samples to files of its own
under PROMETHEUS_MULTIPROC_DIR, kept after it dies so that its counts stay
in the totals, and every scrape reads every file. Cluster workers are
replaced every WORKER_RECYCLE runs: after ten minutes at 100 runs/s the
folder held 1,864 files and a scrape took 150–400 ms, growing without end.

So the sentinel that replaces a worker adds the worker's counters,
histograms and summaries into archive files of its own and deletes the
worker's files; the worker's gauges go (a dead process's gauges are not
reported, and the service's are set by the scraping web process anyway).
A scrape that lands between the archive's update and the deletion counts
the worker twice, once: a blip that Prometheus reads as a counter reset.
"""

import glob
import os

from prometheus_client.mmap_dict import MmapedDict

ADDITIVE_KINDS = ("counter", "histogram", "summary")


def fold_dead_process(pid, archive, directory):
    """Add process `pid`'s additive samples into the files named `archive`
    (no underscore: the collector reads the kind from the name's first part)
    and delete every file of `pid`."""
    for kind in ADDITIVE_KINDS:
        dead = os.path.join(directory, f"{kind}_{pid}.db")
        if not os.path.exists(dead):
            continue
        totals = MmapedDict(os.path.join(directory, f"{kind}_{archive}.db"))
        try:
            for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(dead):
                current, latest = totals.read_value(key)
                totals.write_value(key, current + value, max(latest, timestamp))
        finally:
            totals.close()
        os.remove(dead)
    for gauge in glob.glob(os.path.join(directory, f"gauge_*_{pid}.db")):
        os.remove(gauge)
