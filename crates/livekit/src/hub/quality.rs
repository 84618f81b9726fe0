//! `connection_quality`: every participant's link graded EXCELLENT, GOOD or POOR from the
//! worst loss and round-trip time its streams reported (str0m's periodic statistics: loss
//! we count on what it publishes, receiver reports and NACKs on what it receives), LOST
//! while its signalling connection is gone. Rooms hear about a participant when its grade
//! changes, as the SDKs' `ConnectionQualityChanged` events expect.

use std::time::Duration;

use livekit_protocol as proto;
use proto::signal_response;
use switchyard_sfu::LinkStats;

use super::{Hub, signal};

/// A grade and the score (1–5, a MOS-like number) it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Grade {
    pub(crate) quality: proto::ConnectionQuality,
    pub(crate) score: f32,
}

impl Grade {
    pub(crate) const LOST: Grade = Grade {
        quality: proto::ConnectionQuality::Lost,
        score: 0.0,
    };

    /// A link with no loss and a short RTT, or one with nothing to report yet.
    pub(crate) const EXCELLENT: Grade = Grade {
        quality: proto::ConnectionQuality::Excellent,
        score: 4.5,
    };

    pub(crate) fn of(link: LinkStats) -> Grade {
        let rtt = link.rtt.unwrap_or(Duration::ZERO);
        let loss_pct = f64::from(link.loss) * 100.0;
        let score = (4.5 - loss_pct * 0.25 - rtt.as_secs_f64() * 2.5).clamp(1.0, 4.5) as f32;
        let quality = if loss_pct < 2.0 && rtt < Duration::from_millis(250) {
            proto::ConnectionQuality::Excellent
        } else if loss_pct < 8.0 && rtt < Duration::from_millis(500) {
            proto::ConnectionQuality::Good
        } else {
            proto::ConnectionQuality::Poor
        };
        Grade { quality, score }
    }
}

impl Hub {
    /// Grades every participant from the statistics since the last tick and sends
    /// `connection_quality` to each room whose grades changed.
    pub(crate) fn quality_tick(&mut self) {
        let mut changed_rooms = Vec::new();
        for (name, room) in &mut self.rooms {
            let mut updates = Vec::new();
            for p in room.participants.values_mut() {
                let link = self.router.take_link_stats(p.router);
                let grade = if p.tx.is_none() {
                    Grade::LOST
                } else {
                    match (link, p.quality) {
                        (Some(l), _) => Grade::of(l),
                        // No stream reported: keep the last grade (quiet is not bad).
                        (None, Some(last)) if last != Grade::LOST => last,
                        (None, _) => Grade::EXCELLENT,
                    }
                };
                if p.quality.map(|q| q.quality) != Some(grade.quality) {
                    updates.push(proto::ConnectionQualityInfo {
                        participant_sid: p.info.sid.clone(),
                        quality: grade.quality as i32,
                        score: grade.score,
                    });
                }
                p.quality = Some(grade);
            }
            if !updates.is_empty() {
                changed_rooms.push((name.clone(), updates));
            }
        }
        for (name, updates) in changed_rooms {
            let Some(room) = self.rooms.get(&name) else {
                continue;
            };
            tracing::debug!(room = name, ?updates, "connection quality");
            for p in room.participants.values() {
                if let Some(tx) = &p.tx {
                    let _ = tx.send(signal(signal_response::Message::ConnectionQuality(
                        proto::ConnectionQualityUpdate {
                            updates: updates.clone(),
                        },
                    )));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grade(loss: f32, rtt_ms: u64) -> proto::ConnectionQuality {
        Grade::of(LinkStats {
            loss,
            rtt: Some(Duration::from_millis(rtt_ms)),
        })
        .quality
    }

    #[test]
    fn grades_follow_loss_and_rtt() {
        use proto::ConnectionQuality::*;
        assert_eq!(grade(0.0, 20), Excellent);
        assert_eq!(grade(0.05, 20), Good);
        assert_eq!(grade(0.0, 400), Good);
        assert_eq!(grade(0.15, 20), Poor);
        assert_eq!(grade(0.0, 800), Poor);
        let good = Grade::of(LinkStats {
            loss: 0.05,
            rtt: None,
        });
        assert!(good.score < Grade::EXCELLENT.score && good.score > 1.0);
    }
}
