# syntax=docker/dockerfile:1
# personabid: the Bidder gRPC service on :50051 and Prometheus metrics on :9464, serving a demo world
# built into the image. The install steps live in .docker/install.sh and the HEALTHCHECK and CMD below
# are parsed and run by tests/test_container_install.py, so keep each of those on one line.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
RUN bash .docker/install.sh /opt/personabid

# Only the virtual environment reaches the runtime image: no source tree, no stub generator, no build
# leftovers. It keeps working when copied because both stages have the same interpreter at the same path.
FROM python:3.11-slim
COPY --from=build /opt/personabid /opt/personabid
# A fixed uid, so that orchestrators can be told which uid to expect (runAsUser).
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/personabid --shell /usr/sbin/nologin personabid \
    && install -d -o personabid -g personabid /var/lib/personabid

# numba caches compiled kernels next to the source by default, which the service user cannot write.
ENV PATH=/opt/personabid/bin:$PATH \
    PERSONABID_GRPC_ADDR=0.0.0.0:50051 \
    PERSONABID_METRICS_ADDR=0.0.0.0:9464 \
    PERSONABID_DATA_DIR=/var/lib/personabid/demo \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    PYTHONUNBUFFERED=1
EXPOSE 50051 9464
USER 10001:10001

# Built here rather than at start-up, so a new container is ready in seconds. The directory stays
# writable by the service user: the pseudonymisation key is created in it on first start, per container,
# unless PERSONABID_PSEUDONYM_KEY is set. The build's kernel cache is not shipped: /tmp is often a fresh
# tmpfs at run time anyway, and compiling the kernels at start-up costs about 2 s.
RUN /opt/personabid/bin/personabid demo --out /var/lib/personabid/demo \
    && rm -rf /tmp/numba-cache

HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["/opt/personabid/bin/personabid", "health", "--addr", "127.0.0.1:50051"]
CMD ["/opt/personabid/bin/personabid", "serve"]
