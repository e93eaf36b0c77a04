"""Whether this process is shutting down: a web worker told to stop (SIGTERM)
finishes the requests it holds but admits no new run (SHUTTING_DOWN), so
that what it accepted is all that a drain has to finish."""

_draining = False


def start_draining():
    global _draining
    _draining = True


def is_draining():
    return _draining
