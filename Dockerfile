# Blotter in one small image: the server compiled by `deno compile` into one executable with
# static/ and store/schema.sql embedded (the code reads them through import.meta.url, which
# resolves inside the executable). Built on a normal build machine (these CI machines have no
# Docker engine, and `deno compile` cannot download its runtime here).
#   docker build -t blotter . && docker run -p 8000:8000 --ulimit nofile=65536:65536 -e AUTH_MODE=dev blotter
# An image cannot set its own open-file limit: give it at run time (compose.yaml does), since
# every connection is a file and Blotter derives MAX_STREAMS from the limit (docs/operations.md).

FROM denoland/deno:2.9.6 AS build
WORKDIR /src
COPY . .
# deno.server.json: the server's own imports and lock, so the image fetches none of the tools'.
RUN deno install --config deno.server.json --frozen --entrypoint main.ts \
 && deno compile --config deno.server.json --frozen -A --include static --include store/schema.sql \
      --output /out/blotter main.ts

FROM gcr.io/distroless/cc-debian12:nonroot
WORKDIR /app
COPY --from=build /out/blotter /app/blotter
ENV HOST=0.0.0.0 \
    PORT=8000 \
    KV_PATH=/data/blotter.kv
VOLUME ["/data"]
EXPOSE 8000
USER nonroot
# The binary answers its own health check (the image has no shell or curl): GET /healthz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/app/blotter", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/blotter"]
