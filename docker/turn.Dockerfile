# switchyard turn — drop-in for the coturn/coturn image.
# Status: a first draft, not yet built or tested here (the container work is its own issue).
#   podman build -t switchyard-turn -f docker/turn.Dockerfile .
#   podman --runtime runc run --rm --network host switchyard-turn -c /etc/coturn/turnserver.conf
# Static musl binary on an empty base, running as an unprivileged user.
FROM docker.io/library/rust:1-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl && apt-get update && apt-get install -y musl-tools
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p switchyard --target x86_64-unknown-linux-musl \
 && mkdir -p /out/etc/coturn /out/var/tmp \
 && cp target/x86_64-unknown-linux-musl/release/switchyard /out/turnserver \
 && cp config/turnserver.conf /out/etc/coturn/turnserver.conf

FROM scratch
COPY --from=build /out/ /
USER 65534:65534
EXPOSE 3478/udp 3478/tcp 5349/tcp
ENTRYPOINT ["/turnserver"]
CMD ["-c", "/etc/coturn/turnserver.conf"]
