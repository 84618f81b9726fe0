"""What the LiveKit SDK scripts share: join tokens and polling for an expected event."""
import asyncio
import time

from livekit import api


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
