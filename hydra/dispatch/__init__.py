"""Dispatch: getting attempts to workers, and from one attempt to the next.

* ``router``   - the affinity router: which worker's queue an attempt goes to;
* ``pipeline`` - build, validate, place, record, send: the one way a message is published;
* ``attempts`` - ending an attempt and starting what follows it (retry, failover, delayed runs).
"""
