# switchyard livekit — a drop-in for the livekit/livekit-server image in Element Call stacks.
#
# Built by `FLAVOUR=livekit bash docker/build.sh`, which builds the static binary (with the SFU)
# into docker/out/livekit/ and then runs, with that directory as the build context:
#   podman build -t switchyard-livekit -f docker/livekit.Dockerfile docker/out/livekit
#
# As in livekit-server's image, the binary is /livekit-server and the ENTRYPOINT: called by
# that name it behaves as `switchyard livekit`, so a compose `command: --config
# /etc/livekit.yaml` (plus `--node-ip`, `--dev`, …) works unchanged, and so do
# LIVEKIT_CONFIG / LIVEKIT_KEYS in `environment:`. One static binary on an empty base: no
# shell, no libc, no CA bundle (webhooks to https:// URLs use the bundled WebPKI roots).
#
# Ports: 7880/tcp (signalling, Twirp, health `GET /`), 7881/tcp (ICE-TCP), and ONE UDP port
# for all media (rtc.udp_port, 7882 by default); a stack that publishes 50000-60000/udp keeps
# working (switchyard uses rtc.port_range_start when no udp_port is set).
# It runs as UID/GID 65532 and writes nothing: `read_only: true` and `cap_drop: [ALL]` work.
FROM scratch

COPY switchyard /livekit-server

USER 65532:65532
WORKDIR /
EXPOSE 7880/tcp 7881/tcp 7882/udp
ENTRYPOINT ["/livekit-server"]

LABEL org.opencontainers.image.title="switchyard livekit" \
      org.opencontainers.image.description="LiveKit-compatible SFU that reads livekit.yaml; drop-in for livekit/livekit-server" \
      org.opencontainers.image.licenses="Apache-2.0"
