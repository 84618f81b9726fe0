"""What the LiveKit SDK scripts share: join tokens, polling for an expected event and a
published microphone fed with silence."""
import asyncio
import time

from livekit import api, rtc


def join_token(key, secret, room, identity):
    """An access token that may join `room` as `identity` (livekit-api)."""
    return (
        api.AccessToken(key, secret)
        .with_identity(identity)
        .with_grants(api.VideoGrants(room_join=True, room=room))
        .to_jwt()
    )


async def until(pred, timeout=10):
    """True once `pred()` holds, polled every 50 ms; False after `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        await asyncio.sleep(0.05)
    return False


async def publish_microphone(room):
    """Publishes a microphone track on `room` and feeds it 10 ms frames until the returned
    task is cancelled; returns (publication, feeder task)."""
    source = rtc.AudioSource(48000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("mic", source)
    pub = await room.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )

    async def feed():
        frame = rtc.AudioFrame.create(48000, 1, 480)
        while True:
            await source.capture_frame(frame)
            await asyncio.sleep(0.005)

    return pub, asyncio.ensure_future(feed())
