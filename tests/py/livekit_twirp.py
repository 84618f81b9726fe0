"""Twirp RoomService of the server under test, driven by LiveKit's own Python server SDK
(PyPI livekit-api). Prints one JSON object on the last line; exit 0 only if every check held.

    python livekit_twirp.py <http-url> <api-key> <api-secret>
"""
import asyncio
import json
import sys

from livekit import api


async def main(url: str, key: str, secret: str) -> dict:
    out = {"ok": False}
    lk = api.LiveKitAPI(url, key, secret)
    try:
        room = await lk.room.create_room(api.CreateRoomRequest(name="twirp-room", empty_timeout=120, departure_timeout=20))
        out["created"] = {"name": room.name, "sid": room.sid, "empty_timeout": room.empty_timeout}
        assert room.name == "twirp-room" and room.sid.startswith("RM_") and room.empty_timeout == 120
        again = await lk.room.create_room(api.CreateRoomRequest(name="twirp-room"))
        assert again.sid == room.sid, "CreateRoom is idempotent"
        await lk.room.create_room(api.CreateRoomRequest(name="other-room"))

        rooms = await lk.room.list_rooms(api.ListRoomsRequest())
        out["rooms"] = sorted(r.name for r in rooms.rooms)
        assert {"twirp-room", "other-room"} <= set(out["rooms"])
        only = await lk.room.list_rooms(api.ListRoomsRequest(names=["other-room"]))
        assert [r.name for r in only.rooms] == ["other-room"]

        parts = await lk.room.list_participants(api.ListParticipantsRequest(room="twirp-room"))
        assert len(parts.participants) == 0

        try:
            await lk.room.get_participant(api.RoomParticipantIdentity(room="twirp-room", identity="nobody"))
            raise AssertionError("GetParticipant of an absent identity succeeded")
        except api.TwirpError as e:
            out["absent"] = {"code": e.code, "status": e.status}
            assert e.code == "not_found", e.code

        try:
            await lk.room.remove_participant(api.RoomParticipantIdentity(room="twirp-room", identity="nobody"))
            raise AssertionError("RemoveParticipant of an absent identity succeeded")
        except api.TwirpError as e:
            assert e.code == "not_found", e.code

        await lk.room.delete_room(api.DeleteRoomRequest(room="other-room"))
        rooms = await lk.room.list_rooms(api.ListRoomsRequest())
        assert "other-room" not in [r.name for r in rooms.rooms]
    finally:
        await lk.aclose()

    # Wrong secret: refused as unauthenticated.
    bad = api.LiveKitAPI(url, key, "not-the-secret-not-the-secret-not-the-secret")
    try:
        await bad.room.list_rooms(api.ListRoomsRequest())
        raise AssertionError("wrong secret accepted")
    except api.TwirpError as e:
        out["wrong_secret"] = e.code
        assert e.code == "unauthenticated", e.code
    finally:
        await bad.aclose()
    out["ok"] = True
    return out


if __name__ == "__main__":
    try:
        result = asyncio.run(asyncio.wait_for(main(*sys.argv[1:4]), 30))
    except Exception as e:  # noqa: BLE001 - the verdict line carries any failure
        result = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result))
    sys.exit(0 if result.get("ok") else 1)
