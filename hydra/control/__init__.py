"""Control: what decides what runs, and what happens to runs nobody else ends.

* ``verbs``      - submit, update, delete, pause, resume, trigger, retry;
* ``cancel``     - cancelling a run, decided by its fences;
* ``controller`` - the controller process: composes the loops below, one thread each;
  one controller leads (a lease), the others stand by;
* ``tracking``   - Celery's worker events, profiles and heartbeats into the ``fleet``;
* ``ticker``     - the leader's tick: offline detection, then ``gone`` (failover, drains),
  ``placement`` (pending runs) and ``sweeps`` (unpublished, vanished, quotas);
* ``upkeep``     - the leader's indexer, retention and notifier loops;
* ``lease``      - the controller's leader lease, renewed by a thread of its own;
* ``failover``   - lost workers' attempts, draining their queues, reconciling after Redis loss;
* ``scheduler``  - the cron scheduler, a controller thread with a lease of its own.
"""
