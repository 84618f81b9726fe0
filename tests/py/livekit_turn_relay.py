"""Media through the TURN servers the join response lists, and nothing else: both
participants connect with ice_transport_type=RELAY (native SDK, PyPI livekit), so their
only candidates are relayed ones, allocated with the credentials the server handed out.
Prints one JSON object on the last line; exit 0 only if every check held.

    python livekit_turn_relay.py <ws-url> <api-key> <api-secret> <room>
"""
import asyncio
import json
import sys

from livekit import rtc
from lk_common import join_token, publish_microphone, until
from livekit.rtc._proto import room_pb2 as proto_room

WS, KEY, SECRET, ROOM = sys.argv[1:5]


def token(identity):
    return join_token(KEY, SECRET, ROOM, identity)


async def main():
    relay_only = rtc.RoomOptions(
        rtc_config=rtc.RtcConfiguration(ice_transport_type=proto_room.IceTransportType.TRANSPORT_RELAY)
    )
    seen = {"frames": 0, "subscribed": 0}
    alice, bob = rtc.Room(), rtc.Room()

    async def count(track):
        async for _ in rtc.AudioStream(track):
            seen["frames"] += 1

    def on_sub(track, pub, p):
        seen["subscribed"] += 1
        asyncio.ensure_future(count(track))

    bob.on("track_subscribed", on_sub)
    await alice.connect(WS, token("alice"), relay_only)
    await bob.connect(WS, token("bob"), relay_only)
    _, feeder = await publish_microphone(alice)
    checks = {}
    try:
        checks["subscribed_over_relay"] = await until(lambda: seen["subscribed"] >= 1, timeout=15)
        checks["audio_over_relay"] = await until(lambda: seen["frames"] >= 50, timeout=15)
    finally:
        feeder.cancel()
        await alice.disconnect()
        await bob.disconnect()
    ok = all(checks.values())
    print(json.dumps({"ok": ok, "checks": checks, "seen": seen}))
    sys.exit(0 if ok else 1)


asyncio.run(main())
