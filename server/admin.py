"""The Admin gRPC service: artifact status and live reloads, for operators."""

from __future__ import annotations

import time

import grpc

from personabid.artifact import version_time
from personabid.failures import detail_of, failure_of
from personabid.reload import Kind, Reloader, ReloadRefused
from personabid.v1 import admin_pb2 as pb
from personabid.v1 import admin_pb2_grpc as pb_grpc


class AdminServicer(pb_grpc.AdminServicer):
    def __init__(self, reloader: Reloader) -> None:
        self._reloader = reloader

    async def _reload(
        self, kind: Kind, request: pb.ReloadRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReloadResponse:
        try:
            result = await self._reloader.reload(kind, request.version or None)
        except ReloadRefused as exc:
            await context.abort(failure_of(exc).code, detail_of(exc))
            raise  # abort raises; this keeps type checkers informed
        return pb.ReloadResponse(
            swapped=result.swapped,
            version=result.version,
            previous_version=result.previous_version,
            load_seconds=result.load_seconds,
        )

    async def ReloadIndex(
        self, request: pb.ReloadRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReloadResponse:
        return await self._reload("index", request, context)

    async def ReloadModel(
        self, request: pb.ReloadRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReloadResponse:
        return await self._reload("model", request, context)

    async def ReloadProfiles(
        self, request: pb.ReloadRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReloadResponse:
        if "profiles" not in self._reloader.states:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this server reads no profile artifact (profile_store is not 'embedded')",
            )
        return await self._reload("profiles", request, context)

    async def GetStatus(self, request: pb.StatusRequest, context: grpc.aio.ServicerContext) -> pb.Status:
        decider = self._reloader.decider
        status = pb.Status(serving=decider is not None)
        now = time.time()
        for kind, target in (("index", status.index), ("model", status.model), ("profiles", status.profiles)):
            state = self._reloader.states.get(kind)  # type: ignore[call-overload]
            if state is None:
                continue
            target.path = str(state.path)
            target.version = state.version
            target.loaded_unix = int(state.loaded_unix)
            target.reloads_succeeded = state.succeeded
            target.reloads_failed = state.failed
            target.last_error = state.last_error
        if decider is not None:
            index, model = decider.snapshot.bundle, decider.snapshot.model
            built = version_time(index.version)
            status.index.built_unix = int(built)
            status.index.age_seconds = now - built
            status.index.type = index.manifest.index_type
            status.index.campaigns = index.manifest.campaigns
            status.index.vectors = index.manifest.vectors
            status.index.recall = index.manifest.recall.value
            model_built = version_time(model.version)
            status.model.built_unix = int(model_built)
            status.model.age_seconds = now - model_built
            status.model.type = model.model_type
        profiles = self._reloader.profiles
        if profiles is not None:
            profiles_built = version_time(profiles.version)
            status.profiles.built_unix = int(profiles_built)
            status.profiles.age_seconds = now - profiles_built
            status.profiles.type = "embedded"
            status.profiles.users = profiles.arrays.users
        return status
