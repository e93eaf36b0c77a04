"""Fault injection: the whole service started as `make run` starts it, under a
steady stream of runs, while one of its processes is SIGKILLed, all of it is
killed and started again, or it is stopped with SIGTERM. Nothing accepted
may be lost, quotas and slots must add up, and the service must go on
serving."""
