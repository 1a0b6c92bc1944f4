"""The server loads tritonclient's generated modules alone, not tritonclient's client."""

from __future__ import annotations

import subprocess
import sys


def test_the_generated_modules_load_without_the_client() -> None:
    code = (
        "import sys\n"
        "from seqserve.service.api.grpc import protos, servicer\n"
        "assert protos.service_pb2.ModelInferRequest(model_name='m').model_name == 'm'\n"
        "heavy = [m for m in ('tritonclient.grpc', 'tritonclient.utils', 'rapidjson',"
        " 'ml_dtypes') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "import tritonclient.grpc as client\n"  # the stock client still imports beside them
        "assert client.service_pb2.ModelInferRequest is protos.service_pb2.ModelInferRequest\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
