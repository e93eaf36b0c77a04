#!/bin/sh
# The three priority clusters of one node in one container, as `make run`
# starts them; stopping the container stops them all.
trap 'kill 0' INT TERM
for cluster in executor-high executor-medium executor-low; do
    Q_CLUSTER_NAME=$cluster python manage.py qcluster &
done
wait
