"""Hydra's gRPC interface (``hydra.v1.Hydra``), beside the REST API and as thin as it.

* ``service``  - the calls: each authenticates from the ``authorization`` metadata and calls
  the verbs and readers of ``hydra.control``, as ``api/`` does;
* ``convert``  - requests to the job bodies and query arguments the shared schemas validate,
  and records to messages (environment values redacted);
* ``errors``   - Hydra's errors as gRPC statuses (INVALID_ARGUMENT with field violations, ...);
* ``server``   - the server: the service, the standard health service and server reflection;
  ``python -m hydra.rpc`` runs it (HYDRA_GRPC_BIND, default 127.0.0.1:50051).

The contract is ``proto/hydra/v1/hydra.proto``; its generated code is ``hydra.v1``.
"""
