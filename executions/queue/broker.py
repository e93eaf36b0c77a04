"""django-q2's ORM broker, woken when a task is queued on this node.

The stock ORM broker sleeps `poll` seconds whenever its queue is empty: 10 ms
gives low latency but costs each idle cluster ~15 % of a core in queries.
This one waits on a wake-up socket instead (executions.queue.wakeups), so a task
queued on this node is picked up at once and an idle cluster does nearly
nothing; tasks queued by another node are still found within
QUEUE_IDLE_POLL_SECONDS. Delivery receipts and redelivery are the ORM
broker's own, unchanged; a task enqueued inside a transaction commits (and
wakes the queue) with it.
"""

from django.conf import settings
from django.db import transaction
from django_q.brokers.orm import ORM
from django_q.conf import Conf

from .wakeups import Waiter, wake


def queue_topic(list_key):
    return f"queue-{list_key}"


class WakeableORMBroker(ORM):
    waiter = None

    def enqueue(self, task):
        task_id = super().enqueue(task)
        # Inside a transaction the task is invisible until it commits.
        topic = queue_topic(self.list_key)
        transaction.on_commit(lambda: wake(topic), using=Conf.ORM)
        return task_id

    def dequeue(self):
        # With `poll` set to 0 the stock dequeue returns at once when empty.
        tasks = super().dequeue()
        if tasks:
            return tasks
        if self.waiter is None:
            self.waiter = Waiter(queue_topic(self.list_key))
        self.waiter.wait(settings.QUEUE_IDLE_POLL_SECONDS)
        return None
