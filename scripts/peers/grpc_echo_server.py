"""The gRPC transport floor: Triton's ModelStreamInfer answered with no model behind it.

A grpcio asyncio server on uvloop, as seqserve's, with the same generated messages. Each
request's answer (its id and one 4-byte output) is queued and written by the stream's
response generator, as seqserve's stream is; nothing else runs. What it costs a message is
what grpcio costs seqserve before any step logic:

    python scripts/peers/grpc_echo_server.py --port 8021
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import uvloop
from seqserve.service.api.grpc.protos import service_pb2 as pb
from seqserve.service.api.grpc.protos import service_pb2_grpc as pb_grpc

OUTPUT = b"\0\0\0\0"


class Echo(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc,name-defined]
    async def ModelStreamInfer(self, requests: AsyncIterator[Any], context: Any) -> Any:
        answers: asyncio.Queue[Any] = asyncio.Queue()

        async def read() -> None:
            async for request in requests:
                reply = pb.ModelStreamInferResponse()
                reply.infer_response.id = request.id
                reply.infer_response.model_name = request.model_name
                reply.infer_response.raw_output_contents.append(OUTPUT)
                answers.put_nowait(reply)
            answers.put_nowait(None)

        reader = asyncio.create_task(read())
        while (answer := await answers.get()) is not None:
            yield answer
        await reader


async def serve(port: int) -> None:
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(Echo(), server)
    if not server.add_insecure_port(f"127.0.0.1:{port}"):
        raise OSError(f"port {port} is taken")
    await server.start()
    print(f"gRPC echo listening on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    uvloop.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
