"""Manual subscriptions, driven by LiveKit's own SDKs: bob connects with
auto_subscribe=False (native SDK, PyPI livekit) and receives nothing until a track is named,
by the server (livekit-api UpdateSubscriptions) or by bob himself (set_subscribed); carol,
connected with the default, receives everything at once, and connection-quality grades
for the room (EXCELLENT on loopback).
Prints one JSON object on the last line; exit 0 only if every check held.

    python livekit_subscriptions.py <ws-url> <http-url> <api-key> <api-secret> <room>
"""
import asyncio
import json
import sys

from livekit import api, rtc
from lk_common import join_token, publish_microphone, until

WS, HTTP, KEY, SECRET, ROOM = sys.argv[1:6]


def token(identity):
    return join_token(KEY, SECRET, ROOM, identity)


async def main():
    seen = {"bob_pub": [], "bob_sub": [], "bob_unsub": [], "carol_sub": [], "bob_frames": 0, "carol_quality": {}}
    alice, bob, carol = rtc.Room(), rtc.Room(), rtc.Room()
    bob.on("track_published", lambda pub, p: seen["bob_pub"].append(pub.sid))
    bob.on("track_unsubscribed", lambda t, pub, p: seen["bob_unsub"].append(pub.sid))
    carol.on("track_subscribed", lambda t, pub, p: seen["carol_sub"].append(pub.sid))
    # connection_quality: grades for everyone in the room, carol included.
    carol.on(
        "connection_quality_changed",
        lambda p, q: seen["carol_quality"].__setitem__(p.identity, int(q)),
    )

    async def count_frames(track):
        async for _ in rtc.AudioStream(track):
            seen["bob_frames"] += 1

    def bob_subscribed(track, pub, p):
        seen["bob_sub"].append(pub.sid)
        asyncio.ensure_future(count_frames(track))

    bob.on("track_subscribed", bob_subscribed)

    await alice.connect(WS, token("alice"))
    await bob.connect(WS, token("bob"), rtc.RoomOptions(auto_subscribe=False))
    await carol.connect(WS, token("carol"))
    pub, feeder = await publish_microphone(alice)
    lk = api.LiveKitAPI(HTTP, KEY, SECRET)
    checks = {}
    try:
        checks["bob_told_of_track"] = await until(lambda: pub.sid in seen["bob_pub"])
        checks["carol_auto_subscribed"] = await until(lambda: pub.sid in seen["carol_sub"])
        # Carol got it; bob, who asked for nothing, must still have nothing.
        await asyncio.sleep(1.0)
        checks["bob_not_subscribed_yet"] = seen["bob_sub"] == []

        await lk.room.update_subscriptions(
            api.UpdateSubscriptionsRequest(room=ROOM, identity="bob", track_sids=[pub.sid], subscribe=True)
        )
        checks["server_subscribed_bob"] = await until(lambda: pub.sid in seen["bob_sub"])
        checks["bob_receives_audio"] = await until(lambda: seen["bob_frames"] >= 20)

        remote = bob.remote_participants["alice"].track_publications[pub.sid]
        remote.set_subscribed(False)
        checks["bob_unsubscribed_himself"] = await until(lambda: pub.sid in seen["bob_unsub"])
        remote.set_subscribed(True)
        checks["bob_resubscribed_himself"] = await until(lambda: seen["bob_sub"].count(pub.sid) >= 2)

        excellent = int(rtc.ConnectionQuality.QUALITY_EXCELLENT)
        checks["quality_for_alice_and_carol"] = await until(
            lambda: seen["carol_quality"].get("alice") == excellent
            and seen["carol_quality"].get("carol") == excellent
        )
        try:
            await lk.room.update_subscriptions(
                api.UpdateSubscriptionsRequest(room=ROOM, identity="nobody", track_sids=[pub.sid], subscribe=True)
            )
            checks["absent_not_found"] = False
        except api.TwirpError as e:
            checks["absent_not_found"] = e.code == "not_found"
    finally:
        feeder.cancel()
        await lk.aclose()
        for r in (alice, bob, carol):
            await r.disconnect()
    ok = all(checks.values())
    print(json.dumps({"ok": ok, "checks": checks, "seen": {k: str(v) for k, v in seen.items()}}))
    sys.exit(0 if ok else 1)


asyncio.run(main())
