# Plato in a container: the plato binary and the reference plugins, static (CGO off), on a
# distroless base, as a non-root user. docs/operations.md, "Packaging"; deploy/compose.yaml runs a
# small fleet of it. cmd/plato/packaging_test.go checks that this file builds what the compose
# file runs.
#
#   docker build -t plato .
#   docker run --rm plato version

ARG GO_VERSION=1.26

# ---- build: the same commands as `make build`, static ----
FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
# Modules first, so that a source change does not download them again. The SDK modules are
# replaced by their directories (go.mod), so their go.mod files come along.
COPY go.mod go.sum ./
COPY sdk/go.mod sdk/
COPY sdk/stage/go.mod sdk/stage/go.sum sdk/stage/
COPY sdk/business/go.mod sdk/business/go.sum sdk/business/
RUN go mod download
COPY . .
RUN mkdir -p /out/bin/plugins /out/data \
 && go build -ldflags='-s -w' -o /out/bin/plato ./cmd/plato \
 && for d in plugins/*/; do \
      n=$(basename "$d"); [ -f "$d/main.go" ] || continue; \
      go build -ldflags='-s -w' -o "/out/bin/plugins/$n" "./plugins/$n" || exit 1; \
    done

# ---- run: no shell, no package manager; uid 65532 ----
FROM gcr.io/distroless/static-debian12:nonroot
WORKDIR /plato
# The layout `make build` makes in a checkout: bin/plato, bin/plugins/<name> (pipeline.plugin_dir)
# and configs/ (the default --config and pipeline.dir), all relative to the working directory.
COPY --from=build /out/bin/ /plato/bin/
COPY configs/ /plato/configs/
COPY --from=build --chown=65532:65532 /out/data/ /plato/data/
USER 65532:65532
ENV PATH=/plato/bin:/usr/local/bin:/usr/bin:/bin
# Device TCP, device WebSocket, state RPC, ipconf HTTP, admin (/metrics, /healthz), NATS.
EXPOSE 8900 8910 8901 8080 9464 4222
VOLUME ["/plato/data"]
ENTRYPOINT ["/plato/bin/plato"]
CMD ["up"]
