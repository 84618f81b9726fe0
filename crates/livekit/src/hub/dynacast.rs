//! Dynacast: publishers are told which simulcast layers anyone watches
//! (`subscribed_quality_update`) and stop encoding the rest, which saves their uplink and
//! CPU. A layer is on when some subscriber's choice reaches it (lower layers stay on, so a
//! subscriber can always fall back); a track nobody subscribes to is paused entirely.

use livekit_protocol as proto;
use proto::signal_response;

use super::{Hub, signal};

impl Hub {
    /// Recomputes the watched layers of every video track in `room` and tells each
    /// publisher what changed.
    pub(crate) fn dynacast(&mut self, room: &str) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let mut updates = Vec::new();
        for (publisher, p) in &r.participants {
            for (i, t) in p.tracks.iter().enumerate() {
                if t.info.r#type != proto::TrackType::Video as i32 || t.info.layers.is_empty() {
                    continue;
                }
                let top = t.info.layers.len() - 1;
                let watched = r
                    .participants
                    .iter()
                    .filter(|(sub, s)| *sub != publisher && s.claims.video.can_subscribe())
                    // Once the track is open, only those who receive it (manual
                    // subscriptions leave some out).
                    .filter(|(_, s)| {
                        t.router
                            .is_none_or(|track| self.router.is_subscribed(s.router, track))
                    })
                    .filter_map(|(sub, _)| {
                        r.choices
                            .get(&(sub.clone(), t.info.sid.clone()))
                            .copied()
                            .unwrap_or(Some(top))
                    })
                    .max();
                if t.watched != Some(watched) {
                    updates.push((publisher.clone(), i, watched));
                }
            }
        }
        for (publisher, i, watched) in updates {
            let Some(p) = self
                .rooms
                .get_mut(room)
                .and_then(|r| r.participants.get_mut(&publisher))
            else {
                continue;
            };
            let t = &mut p.tracks[i];
            t.watched = Some(watched);
            let update = quality_update(&t.info, watched);
            tracing::debug!(room, publisher, track = t.info.sid, ?watched, "dynacast");
            if let Some(tx) = &p.tx {
                let _ = tx.send(signal(signal_response::Message::SubscribedQualityUpdate(
                    update,
                )));
            }
        }
    }
}

/// The update for a track whose watched layers go up to rank `watched` (`None`: none).
fn quality_update(
    info: &proto::TrackInfo,
    watched: Option<usize>,
) -> proto::SubscribedQualityUpdate {
    let mut layers: Vec<&proto::VideoLayer> = info.layers.iter().collect();
    layers.sort_by_key(|l| l.quality);
    let qualities: Vec<proto::SubscribedQuality> = layers
        .iter()
        .enumerate()
        .map(|(rank, l)| proto::SubscribedQuality {
            quality: l.quality,
            enabled: watched.is_some_and(|w| rank <= w),
        })
        .collect();
    // The SDK matches the codec by its short name (`vp8`, `h264`, …).
    let codec = info
        .mime_type
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    #[allow(deprecated)] // Older SDKs read the flat list.
    proto::SubscribedQualityUpdate {
        track_sid: info.sid.clone(),
        subscribed_qualities: qualities.clone(),
        subscribed_codecs: vec![proto::SubscribedCodec { codec, qualities }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track() -> proto::TrackInfo {
        let layer = |q: proto::VideoQuality, w| proto::VideoLayer {
            quality: q as i32,
            width: w,
            ..Default::default()
        };
        proto::TrackInfo {
            sid: "TR_x".into(),
            mime_type: "video/VP8".into(),
            // Out of order on purpose: ranks come from quality, not position.
            layers: vec![
                layer(proto::VideoQuality::High, 1280),
                layer(proto::VideoQuality::Low, 320),
                layer(proto::VideoQuality::Medium, 640),
            ],
            ..Default::default()
        }
    }

    fn enabled(u: &proto::SubscribedQualityUpdate) -> Vec<(i32, bool)> {
        u.subscribed_codecs[0]
            .qualities
            .iter()
            .map(|q| (q.quality, q.enabled))
            .collect()
    }

    #[test]
    fn layers_up_to_the_watched_one_are_on() {
        let u = quality_update(&track(), Some(0));
        assert_eq!(enabled(&u), [(0, true), (1, false), (2, false)]);
        assert_eq!(u.subscribed_codecs[0].codec, "vp8");
        let u = quality_update(&track(), Some(2));
        assert_eq!(enabled(&u), [(0, true), (1, true), (2, true)]);
        let u = quality_update(&track(), None);
        assert_eq!(enabled(&u), [(0, false), (1, false), (2, false)]);
    }
}
