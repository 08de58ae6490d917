"""The stores: every read and write of MongoDB, the record of truth.

* ``mongo``   - this process's client, and the translation of driver errors into
  ``StoreUnavailable``;
* ``schema``  - the collections and the indexes, declared in one place (``hydra init-db``);
* ``base``    - ``Store``, the base of every store;
* ``jobs``    - ``JobStore`` (``job_definitions``);
* ``runs``    - ``RunStore`` (``job_runs`` and the write-once ``run_fences``);
* ``workers`` - ``WorkerStore`` (the ``workers`` view behind ``GET /workers/``);
* ``output``  - ``OutputStore`` (live output chunks, ``run_output``);
* ``pages``   - keyset pages of a listing.

No module outside this package touches a collection, and records cross its boundary as
the typed records of ``hydra.model.records``.
"""
