import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from executions.queue.cluster import ExecutionCluster


class Command(BaseCommand):
    help = (
        "Start the django-q2 cluster of one priority (Q_CLUSTER_NAME: executor-high, executor-medium or "
        "executor-low), its workers taking runs from the executions table. SIGTERM or Ctrl-C drains it."
    )

    def handle(self, *args, **options):
        # Runs yield the CPU to the web: when both want more than the host
        # has, admission and refusals stay fast and runs queue (and are
        # refused by the queue's limit) instead of every request slowing.
        os.nice(settings.CLUSTER_NICENESS)
        status = ExecutionCluster().serve()
        if status:
            self.stderr.write("the cluster's sentinel died; exiting so that the supervisor restarts the cluster")
            sys.exit(status)
