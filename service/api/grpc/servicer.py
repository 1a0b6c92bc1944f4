"""The GRPCInferenceService: each RPC reads the caller, calls the shared V2 code, shapes protobuf.

Metadata, configuration, statistics and the repository index are the V2 HTTP documents
(`api/v2/views.py`, `stats.py`, `server.py`) turned into their messages; inference goes
through `api/v2/dataplane.py` like V2 HTTP. The API key travels in `x-api-key` metadata.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format
from seqserve.service.api.context import AppContext
from seqserve.service.api.grpc import messages, status
from seqserve.service.api.grpc.ordering import ordered
from seqserve.service.api.grpc.protos import model_config_pb2 as model_config_pb
from seqserve.service.api.grpc.protos import service_pb2 as pb
from seqserve.service.api.grpc.protos import service_pb2_grpc as pb_grpc
from seqserve.service.api.health import readiness
from seqserve.service.api.keys import check_admin
from seqserve.service.api.v2 import dataplane
from seqserve.service.api.v2.codec import InferRequest
from seqserve.service.api.v2.server import EXTENSIONS, repository_index_view
from seqserve.service.api.v2.stats import model_stats_views
from seqserve.service.api.v2.views import config, metadata, resolve
from seqserve.service.errors import InferenceFailed, MalformedRequest, SeqServeError

log = logging.getLogger("seqserve.grpc")
T = TypeVar("T")
MAX_IN_FLIGHT = 512  # requests of one stream running at once; reading pauses beyond it


def _parsed(document: Any, message: Any) -> Any:
    return json_format.ParseDict(document, message, ignore_unknown_fields=True)


def sequence_key(request: Any) -> Hashable | None:
    """What orders a stream's requests: (model, sequence id) with its type; None: unordered."""
    param = request.parameters.get("sequence_id")
    which = None if param is None else param.WhichOneof("parameter_choice")
    value = None if which is None else getattr(param, which)
    if value in (None, 0, ""):
        return None
    return (request.model_name, type(value).__name__, value)


class Servicer(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc,name-defined]  # generated
    def __init__(self, ctx: AppContext, version: str) -> None:
        self.ctx = ctx
        self.version = version

    @staticmethod
    def _key(context: Any) -> str | None:
        keys = [v for k, v in context.invocation_metadata() or () if k == "x-api-key"]
        if len(keys) > 1:
            raise MalformedRequest("send one x-api-key metadata entry, not several")
        key = keys[0] if keys else None
        return key.decode("latin-1") if isinstance(key, bytes) else key

    def _owner(self, context: Any) -> str | None:
        return self.ctx.keys.owner(self._key(context))

    def _caller(self, context: Any, owner: str | None) -> str:
        if owner is not None:
            return owner
        return "addr:" + str(context.peer()).rsplit(":", 1)[0]  # the port changes per connection

    async def _guard(self, context: Any, call: Callable[[], Awaitable[T]]) -> T:
        """Run `call`; a seqserve error ends the RPC with its status (internals never leak)."""
        try:
            return await call()
        except SeqServeError as exc:
            error = exc
        except Exception:
            log.exception("gRPC call failed")
            error = InferenceFailed("internal error")
        await context.abort(
            status.code_of(error), status.detail_of(error), status.trailers_of(error)
        )
        raise AssertionError("unreachable: abort raises")

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=await readiness(self.ctx) is None)

    async def ModelReady(self, request: Any, context: Any) -> Any:
        async def call() -> Any:
            self._owner(context)
            try:
                resolve(self.ctx.engine, request.name, request.version or None)
            except SeqServeError:  # Triton answers "not ready" for unknown models
                return pb.ModelReadyResponse(ready=False)
            return pb.ModelReadyResponse(ready=True)

        return await self._guard(context, call)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        async def call() -> Any:
            self._owner(context)
            return pb.ServerMetadataResponse(
                name="seqserve", version=self.version, extensions=EXTENSIONS
            )

        return await self._guard(context, call)

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        async def call() -> Any:
            self._owner(context)
            engine, version = self.ctx.engine, request.version or None
            loaded = resolve(engine, request.name, version)
            versions = [loaded.manifest.version]
            if version is None:
                versions = engine.registry.versions(request.name)
            return _parsed(metadata(loaded, versions), pb.ModelMetadataResponse())

        return await self._guard(context, call)

    async def ModelConfig(self, request: Any, context: Any) -> Any:
        async def call() -> Any:
            self._owner(context)
            engine = self.ctx.engine
            loaded = resolve(engine, request.name, request.version or None)
            document = config(loaded, engine.settings)
            return pb.ModelConfigResponse(config=_parsed(document, model_config_pb.ModelConfig()))

        return await self._guard(context, call)

    async def ModelStatistics(self, request: Any, context: Any) -> Any:
        async def call() -> Any:
            self._owner(context)
            views = model_stats_views(self.ctx, request.name or None, request.version or None)
            return _parsed({"model_stats": views}, pb.ModelStatisticsResponse())

        return await self._guard(context, call)

    async def RepositoryIndex(self, request: Any, context: Any) -> Any:
        async def call() -> Any:
            self._owner(context)
            index = repository_index_view(self.ctx.engine)
            return _parsed({"models": index}, pb.RepositoryIndexResponse())

        return await self._guard(context, call)

    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        async def call() -> Any:
            check_admin(self.ctx.keys, self.ctx.admin_keys, self._key(context))
            await self.ctx.engine.repository.load(request.model_name)
            return pb.RepositoryModelLoadResponse()

        return await self._guard(context, call)

    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        async def call() -> Any:
            check_admin(self.ctx.keys, self.ctx.admin_keys, self._key(context))
            await self.ctx.engine.repository.unload(request.model_name)
            return pb.RepositoryModelUnloadResponse()

        return await self._guard(context, call)

    async def _answer(self, request: Any, owner: str | None, caller: str) -> dataplane.Answer:
        async def read() -> InferRequest:
            return messages.parse(request)

        return await dataplane.infer(
            self.ctx, owner, caller, request.model_name, request.model_version or None, read
        )

    async def _infer(self, request: Any, owner: str | None, caller: str) -> Any:
        return messages.encode(await self._answer(request, owner, caller), pb)

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        async def call() -> Any:
            owner = self._owner(context)
            return await self._infer(request, owner, self._caller(context, owner))

        return await self._guard(context, call)

    async def ModelStreamInfer(self, requests: AsyncIterator[Any], context: Any) -> Any:
        """Triton's bidirectional stream: answers carry the request id; an error is an
        `error_message` answer and the stream stays open."""
        owner = await self._guard(context, self._stream_owner(context))
        caller = self._caller(context, owner)

        async def run(request: Any) -> Any:
            try:
                answer = await self._answer(request, owner, caller)
                reply = pb.ModelStreamInferResponse()
                messages.encode_into(answer, reply.infer_response)
                return reply
            except SeqServeError as exc:
                detail = status.detail_of(exc)
            except Exception:
                log.exception("gRPC stream request failed")
                detail = status.INTERNAL_DETAIL
            return pb.ModelStreamInferResponse(
                error_message=detail, infer_response=pb.ModelInferResponse(id=request.id)
            )

        async for answer in ordered(requests, sequence_key, run, MAX_IN_FLIGHT):
            yield answer

    def _stream_owner(self, context: Any) -> Callable[[], Awaitable[str | None]]:
        async def call() -> str | None:
            return self._owner(context)

        return call


def add_to(server: grpc.aio.Server, servicer: Servicer) -> None:
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
