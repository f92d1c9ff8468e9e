# switchyard: a static binary on a distroless base, run as a non-root user.
#
#   docker build -t switchyard .
#   docker run --rm -p 8080:8080 -v "$PWD/config.json:/etc/switchyard/config.json:ro" switchyard
#
# The admin API listens on 127.0.0.1 inside the container unless the config
# says otherwise (and then it needs admin_token); the health check below runs
# the binary itself against it, since the image has no shell.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static: no cgo, so that the binary needs nothing from the base image.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/switchyard ./cmd/proxy

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/switchyard /switchyard
# nonroot is uid 65532; ports above 1024 need no capability.
USER 65532:65532
EXPOSE 8080 8443
# SIGTERM starts the ordered shutdown (shutdown_delay, then shutdown_timeout);
# SIGHUP reloads config.json.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=3s CMD ["/switchyard", "-probe", "http://127.0.0.1:8081/healthz"]
ENTRYPOINT ["/switchyard"]
CMD ["-config", "/etc/switchyard/config.json", "-log-format", "json"]
