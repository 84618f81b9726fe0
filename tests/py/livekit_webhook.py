"""Webhooks from the server under test, checked the way receivers check them: every request
goes through livekit-api's WebhookReceiver (JWT signed with the webhook key's secret, sha256
claim over the body, protojson WebhookEvent). One participant joins with the native SDK,
publishes an audio track, unpublishes it and leaves; the room then empties and closes.
Prints one JSON object on the last line; exit 0 only if every check held.

    python livekit_webhook.py <ws-url> <api-key> <api-secret> <room> <listen-port>
"""
import asyncio
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from livekit import api, rtc

URL, KEY, SECRET, ROOM, PORT = sys.argv[1:6]
receiver = api.WebhookReceiver(api.TokenVerifier(KEY, SECRET))
events = []  # (event name, WebhookEvent)
problems = []
lock = threading.Lock()


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        auth = self.headers.get("Authorization", "")
        try:
            ev = receiver.receive(body, auth)
            if self.headers.get("Content-Type") != "application/webhook+json":
                raise Exception("content type " + str(self.headers.get("Content-Type")))
            with lock:
                events.append((ev.event, ev))
            # The check is real: the same token over a changed body is refused.
            try:
                receiver.receive(body + " ", auth)
                problems.append("a tampered body verified")
            except Exception:
                pass
        except Exception as e:  # noqa: BLE001 - any refusal is a finding
            problems.append(f"refused: {e}")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def names():
    with lock:
        return [n for n, _ in events]


async def wait_for(name, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if name in names():
            return True
        await asyncio.sleep(0.05)
    return False


async def main():
    server = HTTPServer(("127.0.0.1", int(PORT)), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = (
        api.AccessToken(KEY, SECRET)
        .with_identity("hooked")
        .with_grants(api.VideoGrants(room_join=True, room=ROOM))
        .to_jwt()
    )
    room = rtc.Room()
    await room.connect(URL, token)
    source = rtc.AudioSource(48000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("mic", source)
    pub = await room.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )
    frame = rtc.AudioFrame.create(48000, 1, 480)
    published = False
    for _ in range(300):  # 3 s of 10 ms frames until the server reports the track
        await source.capture_frame(frame)
        if "track_published" in names():
            published = True
            break
    await room.local_participant.unpublish_track(pub.sid)
    unpublished = await wait_for("track_unpublished", 5)
    await room.disconnect()
    left = await wait_for("participant_left", 5)
    finished = await wait_for("room_finished", 10)
    got = names()
    with lock:
        joined = [ev for n, ev in events if n == "participant_joined"]
        track_ev = [ev for n, ev in events if n == "track_published"]
    checks = {
        "room_started_first": got[:1] == ["room_started"],
        "joined_names_participant": bool(joined) and joined[0].participant.identity == "hooked",
        "joined_names_room": bool(joined) and joined[0].room.name == ROOM,
        "track_published": published and bool(track_ev) and track_ev[0].track.sid == pub.sid,
        "track_unpublished": unpublished,
        "participant_left": left,
        "room_finished_last": finished and got[-1] == "room_finished",
        "ids_unique": len({ev.id for _, ev in events}) == len(events),
        "no_problems": not problems,
    }
    print(json.dumps({"ok": all(checks.values()), "checks": checks, "events": got,
                      "problems": problems}))
    server.shutdown()
    sys.exit(0 if all(checks.values()) else 1)


asyncio.run(main())
