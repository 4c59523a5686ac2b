# Switchboard bridge image: build with the Rust toolchain, run on a slim Debian.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin switchboard

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/switchboard /usr/local/bin/switchboard
COPY config/config.example.yaml /usr/share/switchboard/config.example.yaml
WORKDIR /data
EXPOSE 29340
ENTRYPOINT ["switchboard"]
CMD ["run", "-c", "/data/config.yaml"]
