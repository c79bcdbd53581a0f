# syntax=docker/dockerfile:1
# tasker-sim's three binaries in one small image, for docker-compose.yml.
# Build: docker build -t tasker-sim .   (docker compose builds it as tasker-sim:local)
#
# The build line is `make build`'s (internal/deploytest checks that they agree), with
# CGO_ENABLED=0 so the binaries are static and run on distroless/static.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
# Modules first: this layer stays cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ENV CGO_ENABLED=0
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -o /out/ ./cmd/orchestrator ./cmd/worker ./cmd/taskerctl

# Static, non-root (uid 65532), no shell: healthchecks run `taskerctl health`.
# The digest is the :nonroot tag's as of 2026-08; update both together.
FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab
COPY --from=build /out/orchestrator /out/worker /out/taskerctl /usr/local/bin/
USER nonroot:nonroot
# The orchestrator's API and a worker's health listener; inside a container they must
# bind 0.0.0.0 (TASKER_WEB_BIND_ADDRESS, TASKER_WORKER_BIND_ADDRESS), as the compose file does.
EXPOSE 8080 8081
CMD ["/usr/local/bin/orchestrator"]
