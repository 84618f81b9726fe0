"""RoomService calls that change a live room, made with LiveKit's own server SDK (PyPI
livekit-api) and observed by a second participant on the native SDK (PyPI livekit): a
participant's metadata and attributes, the room's metadata, data sent by the server (to the
room and to one identity) and a published track muted by an admin.
Prints one JSON object on the last line; exit 0 only if every check held.

    python livekit_roomservice.py <ws-url> <http-url> <api-key> <api-secret> <room>
"""
import asyncio
import json
import sys

from livekit import api, rtc
from lk_common import join_token, until

WS, HTTP, KEY, SECRET, ROOM = sys.argv[1:6]


def token(identity):
    return join_token(KEY, SECRET, ROOM, identity)


async def main():
    seen = {"meta": [], "attrs": [], "room_meta": [], "data_bob": [], "data_alice": [], "muted": []}
    alice, bob = rtc.Room(), rtc.Room()
    bob.on("participant_metadata_changed", lambda p, old, new: seen["meta"].append((p.identity, new)))
    bob.on("participant_attributes_changed", lambda changed, p: seen["attrs"].append((p.identity, dict(p.attributes))))
    bob.on("room_metadata_changed", lambda old, new: seen["room_meta"].append(new))
    bob.on("data_received", lambda d: seen["data_bob"].append(d.data.decode()))
    alice.on("data_received", lambda d: seen["data_alice"].append(d.data.decode()))
    bob.on("track_muted", lambda p, pub: seen["muted"].append((p.identity, pub.sid)))
    await alice.connect(WS, token("alice"))
    await bob.connect(WS, token("bob"))
    source = rtc.AudioSource(48000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("mic", source)
    pub = await alice.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )
    frame = rtc.AudioFrame.create(48000, 1, 480)
    for _ in range(50):
        await source.capture_frame(frame)

    lk = api.LiveKitAPI(HTTP, KEY, SECRET)
    checks = {}
    try:
        info = await lk.room.update_participant(
            api.UpdateParticipantRequest(room=ROOM, identity="alice", metadata="m1", attributes={"role": "speaker"})
        )
        checks["update_participant_answer"] = info.metadata == "m1" and info.attributes.get("role") == "speaker"
        checks["metadata_at_bob"] = await until(lambda: ("alice", "m1") in seen["meta"])
        checks["attributes_at_bob"] = await until(lambda: ("alice", {"role": "speaker"}) in seen["attrs"])

        room = await lk.room.update_room_metadata(api.UpdateRoomMetadataRequest(room=ROOM, metadata="rm1"))
        checks["room_metadata_answer"] = room.metadata == "rm1"
        checks["room_metadata_at_bob"] = await until(lambda: "rm1" in seen["room_meta"])

        await lk.room.send_data(api.SendDataRequest(room=ROOM, data=b"to-all", kind=api.DataPacket.Kind.RELIABLE))
        await lk.room.send_data(
            api.SendDataRequest(room=ROOM, data=b"to-bob", kind=api.DataPacket.Kind.RELIABLE, destination_identities=["bob"])
        )
        checks["data_to_all"] = await until(lambda: "to-all" in seen["data_bob"] and "to-all" in seen["data_alice"])
        checks["data_to_bob_only"] = await until(lambda: "to-bob" in seen["data_bob"]) and "to-bob" not in seen["data_alice"]

        muted = await lk.room.mute_published_track(
            api.MuteRoomTrackRequest(room=ROOM, identity="alice", track_sid=pub.sid, muted=True)
        )
        checks["mute_answer"] = muted.track.sid == pub.sid and muted.track.muted
        checks["mute_at_bob"] = await until(lambda: ("alice", pub.sid) in seen["muted"])

        try:
            await lk.room.update_participant(api.UpdateParticipantRequest(room=ROOM, identity="nobody", metadata="x"))
            checks["absent_not_found"] = False
        except api.TwirpError as e:
            checks["absent_not_found"] = e.code == "not_found"
    finally:
        await lk.aclose()
        await alice.disconnect()
        await bob.disconnect()
    ok = all(checks.values())
    print(json.dumps({"ok": ok, "checks": checks, "seen": {k: [str(x) for x in v] for k, v in seen.items()}}))
    sys.exit(0 if ok else 1)


asyncio.run(main())
