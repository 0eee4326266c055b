# Multi-stage build of a small edgeprom image for linux/amd64 and linux/arm64:
#   docker buildx build --platform linux/amd64,linux/arm64 -t edgeprom .
# It accepts the Prometheus tutorial's invocation unchanged:
#   docker run -d --network=host -v CONFIG:/etc/prometheus -v DATA:/data edgeprom \
#     --config.file=/etc/prometheus/prometheus.yml --storage.tsdb.path=/data \
#     --web.enable-lifecycle --storage.tsdb.retention.time=10d
FROM --platform=$BUILDPLATFORM rust:1-bookworm AS build
ARG TARGETARCH
RUN apt-get update && apt-get install -y --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN case "$TARGETARCH" in \
      arm64) T=aarch64-unknown-linux-gnu ;; \
      *) T=x86_64-unknown-linux-gnu ;; \
    esac \
    && rustup target add "$T" \
    && cargo build --release --target "$T" \
    && install -D -m 0755 "target/$T/release/edgeprom" /out/edgeprom \
    && install -d -o 65534 -g 65534 /out/data

# distroless/cc carries glibc and libgcc, all a Rust binary with C dependencies needs.
FROM gcr.io/distroless/cc-debian12
COPY --from=build /out/edgeprom /bin/edgeprom
COPY --from=build --chown=65534:65534 /out/data /data
COPY systemd/edgeprom.yml /etc/prometheus/prometheus.yml
USER 65534:65534
WORKDIR /data
EXPOSE 9090
VOLUME ["/data"]
ENTRYPOINT ["/bin/edgeprom"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/data"]
