"""The stores: every read and write of MongoDB, the record of truth.

* ``mongo``   - this process's client, and the translation of driver errors into
  ``StoreUnavailable``;
* ``schema``  - the collections, the indexes and every query (with the index it relies on),
  declared in one place (``hydra init-db``);
* ``base``    - ``Store``, the base of every store (and of keeping their Redis index entries);
* ``jobs``    - ``JobStore`` (``job_definitions``);
* ``fences``  - ``RunFences``: the write-once ``run_fences`` (claim, end, refusals, hold, retry)
  that decide every race over a run, and a run read back through them;
* ``runs``    - ``RunStore`` (``job_runs``): the fences, recording an attempt, the queries;
* ``workers`` - ``WorkerStore`` (the ``workers`` view behind ``GET /workers/``);
* ``output``  - ``OutputStore`` (live output chunks, ``run_output``);
* ``pages``   - keyset pages of a listing from the Redis indexes;
* ``reindex`` - filing records in the indexes again: the backlog, and a full rebuild;
* ``retention`` - pruning old history in batches, and exporting it as JSON Lines;
* ``tokens``, ``audit``, ``namespaces``, ``idempotency``, ``sessions`` - API tokens, the audit
  trail, namespaces' limits, idempotency claims, the console's signed-in sessions.

No module outside this package touches a collection, and records cross its boundary as
the typed records of ``hydra.model.records``. Listings and sweeps read the Redis indexes
(``hydra.broker.index``) and MongoDB only by ``_id`` (FerretDB filters nothing else cheaply).
"""
