"""LiveKit's native Python SDK (PyPI livekit: Rust core + libwebrtc) against the server under
test. One participant publishes a synthetic audio track (sine) and video track (RGBA frames);
two subscribers count the frames they receive. Reliable data packets must arrive in order, and a
packet targeted at one subscriber must reach only that one. Prints one JSON object on the last
line; exit 0 only if every check held.

    python livekit_rtc.py <ws-url> <api-key> <api-secret> <room>
"""
import asyncio
import json
import math
import sys

from livekit import rtc
from lk_common import join_token as token

W, H = 320, 240


class Subscriber:
    def __init__(self, name):
        self.name = name
        self.room = rtc.Room()
        self.audio_frames = 0
        self.video_frames = 0
        self.data = []
        self.tasks = []
        self.room.on("track_subscribed", self._on_track)
        self.room.on("data_received", self._on_data)

    def _on_track(self, track, publication, participant):
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            self.tasks.append(asyncio.ensure_future(self._count(rtc.AudioStream(track), "audio_frames")))
        elif track.kind == rtc.TrackKind.KIND_VIDEO:
            self.tasks.append(asyncio.ensure_future(self._count(rtc.VideoStream(track), "video_frames")))

    async def _count(self, stream, attr):
        async for _ in stream:
            setattr(self, attr, getattr(self, attr) + 1)

    def _on_data(self, packet):
        who = packet.participant.identity if packet.participant else "?"
        self.data.append(f"{who}:{packet.data.decode()}")


async def wait_until(what, cond, secs):
    for _ in range(int(secs * 10)):
        if cond():
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


async def main(url, key, secret, room_name):
    out = {"ok": False}
    opts = rtc.RoomOptions(auto_subscribe=True)
    subs = [Subscriber("sub1"), Subscriber("sub2")]
    for s in subs:
        await asyncio.wait_for(s.room.connect(url, token(key, secret, room_name, s.name), opts), 15)

    pub = rtc.Room()
    await asyncio.wait_for(pub.connect(url, token(key, secret, room_name, "pub"), opts), 15)
    asrc = rtc.AudioSource(48000, 1)
    vsrc = rtc.VideoSource(W, H)
    await pub.local_participant.publish_track(
        rtc.LocalAudioTrack.create_audio_track("sine", asrc),
        rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE),
    )
    await pub.local_participant.publish_track(
        rtc.LocalVideoTrack.create_video_track("pattern", vsrc),
        rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, simulcast=False),
    )

    stop = asyncio.Event()

    async def feed_audio():
        n = 0
        while not stop.is_set():
            frame = rtc.AudioFrame.create(48000, 1, 480)
            samples = memoryview(frame.data).cast("h")
            for i in range(480):
                samples[i] = int(8000 * math.sin(2 * math.pi * 440 * (n + i) / 48000))
            n += 480
            await asrc.capture_frame(frame)
            await asyncio.sleep(0.01)

    async def feed_video():
        i = 0
        while not stop.is_set():
            buf = bytearray([i % 256, 64, 128, 255]) * (W * H)
            vsrc.capture_frame(rtc.VideoFrame(W, H, rtc.VideoBufferType.RGBA, buf))
            i += 1
            await asyncio.sleep(1 / 15)

    feeders = [asyncio.ensure_future(feed_audio()), asyncio.ensure_future(feed_video())]
    try:
        await wait_until("frames at both subscribers",
                         lambda: all(s.audio_frames > 20 and s.video_frames > 5 for s in subs), 20)
        first = [(s.audio_frames, s.video_frames) for s in subs]
        await asyncio.sleep(2)
        out["frames"] = {s.name: {"audio": s.audio_frames, "video": s.video_frames} for s in subs}
        for (a0, v0), s in zip(first, subs):
            assert s.audio_frames > a0 and s.video_frames > v0, f"{s.name} stopped receiving"

        for i in range(20):
            await pub.local_participant.publish_data(f"m{i}".encode(), reliable=True)
        await pub.local_participant.publish_data(b"only-sub2", reliable=True, destination_identities=["sub2"])
        await pub.local_participant.publish_data(b"end", reliable=True)
        await wait_until("data at both subscribers", lambda: all("pub:end" in s.data for s in subs), 10)
        out["data"] = {s.name: s.data for s in subs}
        expected = [f"pub:m{i}" for i in range(20)]
        for s in subs:
            got = [d for d in s.data if d.startswith("pub:m")]
            assert got == expected, f"{s.name}: reliable packets out of order or lost: {got}"
        assert "pub:only-sub2" in subs[1].data, "targeted packet missing at its target"
        assert "pub:only-sub2" not in subs[0].data, "targeted packet leaked to another participant"
        out["ok"] = True
    finally:
        stop.set()
        for f in feeders:
            f.cancel()
        for s in subs:
            for t in s.tasks:
                t.cancel()
        await pub.disconnect()
        for s in subs:
            await s.room.disconnect()
    return out


if __name__ == "__main__":
    try:
        result = asyncio.run(asyncio.wait_for(main(*sys.argv[1:5]), 60))
    except Exception as e:  # noqa: BLE001 - the verdict line carries any failure
        result = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result))
    sys.exit(0 if result.get("ok") else 1)
