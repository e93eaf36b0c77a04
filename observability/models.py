from django.db import models


class SharedKeyFingerprint(models.Model):
    """What the nodes recorded of a key they must all share (observability.shared_keys):
    a node holding another one is found by `manage.py check --deploy`."""

    name = models.CharField(max_length=40, unique=True)
    fingerprint = models.CharField(max_length=64, help_text="A keyed hash of the key; never the key itself.")
    recorded_by = models.CharField(max_length=100, help_text="The node (host name) that recorded it.")
    recorded_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.name} {self.fingerprint[:12]}… ({self.recorded_by})"
