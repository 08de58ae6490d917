"""``python -m hydra.rpc``: run the gRPC server (``hydra.rpc.server``) until SIGTERM."""

from hydra import logs
from hydra.rpc.server import serve

if __name__ == "__main__":
    logs.configure("grpc")
    serve()
