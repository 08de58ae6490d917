"""Generate hydra/v1 (messages, type stubs, gRPC stubs) from proto/hydra/v1/hydra.proto.

``make proto`` runs this; ``tests/unit/test_proto.py`` runs it into a temporary directory and
checks that the committed files are exactly what it makes.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
#: The proto files, relative to proto/ (their import path).
SOURCES = ("hydra/v1/hydra.proto",)
#: What protoc writes for each source, relative to the output root.
OUTPUTS = ("hydra/v1/hydra_pb2.py", "hydra/v1/hydra_pb2.pyi", "hydra/v1/hydra_pb2_grpc.py")


def generate(out: Path = REPO) -> list[Path]:
    """Run protoc (grpcio-tools) on :data:`SOURCES`, writing under ``out``; returns the files."""
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "protoc",
        f"-I{HERE}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *(str(HERE / source) for source in SOURCES),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return [out / name for name in OUTPUTS]


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO):
        print(f"wrote {path}")
