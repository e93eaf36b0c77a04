"""Keep a gevent web process's loop free of long, CPU-heavy requests.

Greenlets switch only where one blocks, so an operator page that spends
100 ms in Python and SQLite over many rows (/stats, /metrics, the
dashboard) would hold every other request of its process for that long.
`off_the_loop` runs such work in a thread of gevent's pool instead: the OS
scheduler then shares the CPU between it and the loop. Outside gevent
(tests, runserver, the management commands) it simply calls the function.
"""


def off_the_loop(function, *args, **kwargs):
    try:
        from gevent import get_hub
        from gevent.monkey import is_module_patched
    except ImportError:
        return function(*args, **kwargs)
    if not is_module_patched("threading"):
        return function(*args, **kwargs)
    return get_hub().threadpool.apply(function, args, kwargs)
