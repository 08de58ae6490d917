"""Execution: carrying out one attempt on this machine. No Celery, no stores.

* ``command``   - a job's argv under the right shell, and its scrubbed environment;
* ``process``   - running it: a session of its own, the timeout, killing the whole tree;
* ``capture``   - output kept in bounded memory (head and tail);
* ``live``      - output stored in numbered chunks while the command runs;
* ``executors`` - what a job's ``executor`` names: ``shell``, ``http``.
"""
