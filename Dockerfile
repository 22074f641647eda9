# syntax=docker/dockerfile:1
# adtracker: a static Go binary on a distroless base, run as the image's nonroot user.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so a source-only change reuses this layer and the module cache.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/adtracker ./cmd/adtracker
# The ring file and spill segments live here. Created in the image owned by nonroot (65532) so a
# fresh named volume mounted on it starts with that owner: distroless has no shell to chown later.
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/adtracker /adtracker
COPY --from=build --chown=65532:65532 /out/data /var/lib/adtracker
ENV ADTRACKER_INGEST_DATA_DIR=/var/lib/adtracker
USER nonroot:nonroot
VOLUME ["/var/lib/adtracker"]
EXPOSE 8080
# No curl in distroless: the binary checks its own /healthz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["/adtracker", "healthcheck"]
ENTRYPOINT ["/adtracker"]
CMD ["serve"]
