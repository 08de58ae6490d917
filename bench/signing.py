"""What signing costs per message: HMAC-SHA256 (Hydra's former scheme) beside Ed25519 (its
scheme, ``hydra.dispatch.signing``), on the canonical bytes of a typical message
(``hydra.dispatch.envelope``), and the whole seal / check a publisher and a worker make.

Runs in-process, no stack: ``python bench/signing.py`` (``make bench`` runs it last). Each
figure is the best of 5 rounds of N calls, in microseconds of CPU time per message (process
time, so that other processes on the cores do not inflate it), on one core.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROUNDS = 5


def per_call(fn, number: int) -> float:
    """Microseconds per call: the best of ROUNDS rounds of ``number`` calls."""
    return min(timeit.repeat(fn, number=number, repeat=ROUNDS, timer=time.process_time)) / number * 1e6


def main() -> None:
    from hydra.dispatch import signing
    from hydra.dispatch.envelope import Envelope, seal
    from hydra.model.records import Chain
    from hydra.settings import get_settings

    key = signing.generate()
    with tempfile.TemporaryDirectory() as root:
        path = Path(root) / "signing.pem"
        path.write_text(signing.private_pem(key))
        path.chmod(0o600)
        os.environ["HYDRA_SIGNING_KEY_FILE"] = str(path)
        os.environ.pop("HYDRA_SIGNING_KEY", None)
        get_settings.cache_clear()

        message = {
            "name": "nightly-build",
            "user": "rich",
            "namespace": "default",
            "command": "cd /src && make -j8 all test " + "x" * 400,
            "affinity": {"os": ["linux"], "tags": ["gpu"]},
            "env": {"TOKEN": "s" * 40, "REGION": "eu-west-1"},
            "priority": 50,
            "timeout": 3600,
            "job_id": "0" * 32,
            "attempt": 1,
        }
        sealed = seal("1" * 32, message, Chain(), {})
        payload = sealed.envelope.canonical()
        secret = os.urandom(32)
        mac = hmac.new(secret, payload, hashlib.sha256).hexdigest()
        public = key.public_key()
        raw = key.sign(payload)
        request = Envelope.for_send(sealed.envelope.task, sealed.envelope.id, (), message, {})

        rows = [
            ("canonical form (JSON)", per_call(sealed.envelope.canonical, 20000)),
            ("HMAC-SHA256 sign", per_call(lambda: hmac.new(secret, payload, hashlib.sha256).hexdigest(), 50000)),
            (
                "HMAC-SHA256 verify",
                per_call(
                    lambda: hmac.compare_digest(hmac.new(secret, payload, hashlib.sha256).hexdigest(), mac), 50000
                ),
            ),
            ("Ed25519 sign", per_call(lambda: key.sign(payload), 5000)),
            ("Ed25519 verify", per_call(lambda: public.verify(raw, payload), 5000)),
            (
                "publisher: seal (canonical + Ed25519 sign)",
                per_call(lambda: seal("1" * 32, message, Chain(), {}), 2000),
            ),
            ("worker: check (canonical + Ed25519 verify)", per_call(lambda: request.verify(sealed.signature), 2000)),
        ]
    print(f"signing: a {len(payload)}-byte canonical message, CPU time, best of {ROUNDS} rounds, one core")
    for name, micros in rows:
        print(f"  {name:<44} {micros:8.1f} us/message  ({1e6 / micros:>9,.0f}/s)")


if __name__ == "__main__":
    main()
