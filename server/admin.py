"""The Admin gRPC service: artifact status, live reloads and A/B experiments, for operators."""

from __future__ import annotations

import hashlib
import time

import grpc

from personabid.artifact import version_time
from personabid.clock import Clock
from personabid.experiments.registry import Experiments, Loaded, Traffic
from personabid.experiments.spec import ExperimentError
from personabid.failures import detail_of, failure_of
from personabid.reload import Kind, Reloader, ReloadRefused
from personabid.v1 import admin_pb2 as pb
from personabid.v1 import admin_pb2_grpc as pb_grpc


class AdminServicer(pb_grpc.AdminServicer):
    def __init__(
        self, reloader: Reloader, experiments: Experiments | None = None, clock: Clock | None = None
    ) -> None:
        self._reloader = reloader
        self._experiments = experiments
        self._clock = clock or Clock()

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
        status = pb.Status(
            serving=decider is not None, clock_unix=self._clock.now(), clock_speed=self._clock.speed
        )
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

    async def ListExperiments(
        self, request: pb.ListExperimentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExperimentList:
        registry = await self._registry(context)
        outcomes = registry.outcomes
        return pb.ExperimentList(
            experiments=[_experiment(loaded, registry.traffic) for loaded in registry.in_force()],
            changes_succeeded=outcomes.succeeded,
            changes_failed=outcomes.failed,
            last_error=outcomes.last_error,
        )

    async def PutExperiment(
        self, request: pb.PutExperimentRequest, context: grpc.aio.ServicerContext
    ) -> pb.Experiment:
        registry = await self._registry(context)
        try:
            loaded = await registry.put(request.toml)
        except ExperimentError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise  # abort raises; this keeps type checkers informed
        except ReloadRefused as exc:
            await context.abort(failure_of(exc).code, detail_of(exc))
            raise
        return _experiment(loaded, registry.traffic)

    async def EndExperiment(
        self, request: pb.EndExperimentRequest, context: grpc.aio.ServicerContext
    ) -> pb.Experiment:
        registry = await self._registry(context)
        traffic = {  # read before the end resets it
            arm.name: registry.traffic.of(loaded.experiment.name, arm.name)
            for loaded in registry.in_force()
            if loaded.experiment.name == request.name
            for arm in loaded.experiment.arms
        }
        try:
            loaded = await registry.end(request.name)
        except KeyError:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"name={request.name!r}: no experiment in force by that name"
            )
            raise
        except ReloadRefused as exc:
            await context.abort(failure_of(exc).code, detail_of(exc))
            raise
        return _experiment(loaded, traffic)

    async def _registry(self, context: grpc.aio.ServicerContext) -> Experiments:
        if self._experiments is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this server runs no experiments")
        assert self._experiments is not None
        return self._experiments


def _experiment(loaded: Loaded, traffic: Traffic | dict[str, tuple[int, int]]) -> pb.Experiment:
    experiment = loaded.experiment
    message = pb.Experiment(
        name=experiment.name,
        version=experiment.version,
        salt_hash=hashlib.sha256(experiment.salt.encode("utf-8")).hexdigest()[:12],
        description=experiment.description,
        control=experiment.control,
        path=str(loaded.path),
        loaded_unix=loaded.loaded_unix,
    )
    for arm in experiment.arms:
        if isinstance(traffic, Traffic):
            requests, bids = traffic.of(experiment.name, arm.name)
        else:
            requests, bids = traffic.get(arm.name, (0, 0))
        message.arms.append(
            pb.ExperimentArm(
                name=arm.name,
                share=arm.share,
                changes=list(arm.knobs),
                model=arm.model or "",
                index=arm.index or "",
                strategy=arm.strategy or "",
                strategy_params=dict(arm.strategy_params),
                bid_multiplier=arm.bid_multiplier or 0.0,
                requests=requests,
                bids=bids,
            )
        )
    return message
