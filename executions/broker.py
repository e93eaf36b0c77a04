"""django-q2's ORM broker, woken when a task is queued on this node.

The stock ORM broker sleeps `poll` seconds whenever its queue is empty: 10 ms
gives low latency but costs each idle cluster ~15 % of a core in queries.
This one waits on a wake-up socket instead (executions.wakeup), so a task
queued on this node is picked up at once and an idle cluster does nearly
nothing; tasks queued by another node are still found within
QUEUE_IDLE_POLL_SECONDS. Delivery receipts and redelivery are the ORM
broker's own, unchanged.
"""

from django.conf import settings
from django_q.brokers.orm import ORM

from .wakeup import Waiter, wake


def queue_topic(list_key):
    return f"queue-{list_key}"


class WakeableORMBroker(ORM):
    waiter = None

    def enqueue(self, task):
        task_id = super().enqueue(task)
        wake(queue_topic(self.list_key))
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
