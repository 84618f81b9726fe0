# switchyard turn — a drop-in for the coturn/coturn image in Matrix compose stacks.
#
# Build with docker/build.sh, which first builds the static binary into docker/out/ and then
# runs, with docker/out/ as the build context:
#   podman build -t switchyard-turn -f docker/turn.Dockerfile docker/out
#
# The image is one static binary on an empty base: no shell, no libc, no CA bundle, no
# package manager. Nothing is pulled, so it builds on machines without registry access, and
# the build does not depend on a `rust:` builder image (the binary is built on the host with
# the workspace's `container` cargo profile: musl, or glibc with crt-static; see build.sh).
#
# How it starts, compared with coturn/coturn:
#   - ENTRYPOINT is the binary itself, installed as /usr/bin/turnserver: called by that
#     name it behaves as `switchyard turn`, with coturn's flags and turnserver.conf grammar.
#     coturn's entrypoint script prepends `turnserver` to a command that starts with an
#     option, and runs any other command as a program; here a leading `turnserver` word is
#     skipped, so `command: turnserver -c FILE` and `command: ["-c", "FILE"]` both work.
#     `--entrypoint turnserver` (matrix-docker-ansible-deploy) works too: it is on PATH.
#   - CMD reads the config where coturn's image documents it. A compose `command:` replaces
#     CMD; without `-c`, the binary still finds /etc/coturn/turnserver.conf on coturn's
#     search path. Unlike coturn's image, a missing config file with the default CMD is an
#     error rather than an open relay with coturn's defaults.
#   - coturn's CMD also runs `--external-ip=$(detect-external-ip)` through a shell (a DNS
#     query to a public resolver). There is no shell here and no address detection: set
#     `external-ip=` in turnserver.conf when the relay is behind NAT.
#   - Logs go to stdout (`log-file=stdout`, `syslog` and no log-file all mean stdout).
#   - It runs as UID/GID 65532 (coturn's image: nobody, 65534). Mounted cert=/pkey= files
#     and the config must be readable by that user. Ports >= 1024 (3478, 5349, the relay
#     range) need no capability; listening on 443 or another port < 1024 needs
#     `cap_add: [NET_BIND_SERVICE]` (with `cap_drop: [ALL]` for the rest).
#   - It writes nothing to the filesystem unless the config asks for it (`pidfile=`,
#     a `log-file=` path), so `read_only: true` works; a failed pidfile write is only a
#     warning. Stacks that set `pidfile=/var/tmp/turnserver.pid` can mount a tmpfs there.
#   - TLS needs no CA bundle: the server presents the mounted certificate (`cert=`, full
#     chain) and key (`pkey=`) and verifies no one.
#   - No HEALTHCHECK: an empty image has no probe program to run, and the relay's health is
#     what clients see anyway. Probe from outside with a STUN Binding request to 3478/udp
#     (any STUN client, e.g. coturn's `turnutils_stunclient`), or watch the container state:
#     the process exits non-zero when its config is invalid or a listener cannot bind.
#   - SIGTERM stops it cleanly (exit 0).
FROM scratch

COPY switchyard /usr/bin/turnserver

ENV PATH=/usr/bin
USER 65532:65532
WORKDIR /
EXPOSE 3478/udp 3478/tcp 5349/tcp
ENTRYPOINT ["/usr/bin/turnserver"]
CMD ["-c", "/etc/coturn/turnserver.conf"]

LABEL org.opencontainers.image.title="switchyard turn" \
      org.opencontainers.image.description="TURN/STUN relay that reads coturn's turnserver.conf; drop-in for coturn/coturn" \
      org.opencontainers.image.licenses="Apache-2.0"
