//! Per-subscriber forwarding decisions for one track: which simulcast layer to pass, when a
//! switch may happen, and the RTP timestamp rewrite that hides the switch from the receiver.
//!
//! Sequence numbers and SSRCs are already per-subscriber: str0m packetizes every forwarded
//! frame afresh on the subscriber's own send stream. Timestamps are ours to keep continuous,
//! because each simulcast layer arrives with its own RTP clock offset.

/// What the subscriber asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Paused,
    /// Index into the publisher's layer list (0 = lowest). Clamped to the active layers.
    Layer(usize),
}

/// Outcome for one incoming frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Drop,
    /// Drop, and ask the publisher for a keyframe on this layer so a switch can happen.
    DropWantKeyframe(usize),
    /// Forward with this rewritten RTP time (same clock rate as the input).
    Forward(u64),
}

/// Frame spacing assumed when splicing two layers' clocks: one frame at 30 fps at 90 kHz.
const SPLICE_GAP: u64 = 3000;

#[derive(Debug)]
pub(crate) struct Forwarder {
    pub(crate) target: Target,
    current: Option<usize>,
    /// Added (wrapping) to the input RTP time of the current layer.
    offset: u64,
    last_out: Option<u64>,
    /// Plain (non-simulcast) video: the receiver has had a keyframe since the stream last
    /// started or was interrupted, so delta frames decode.
    synced: bool,
}

impl Forwarder {
    pub(crate) fn new(target: Target) -> Self {
        Forwarder {
            target,
            current: None,
            offset: 0,
            last_out: None,
            synced: false,
        }
    }

    /// The stream stops for a while (paused by the subscriber, or for lack of bandwidth):
    /// whatever comes next must start with a keyframe. The RTP clock stays continuous.
    pub(crate) fn interrupt(&mut self) {
        self.current = None;
        self.synced = false;
    }

    /// The layer currently passed through, if any.
    pub(crate) fn current(&self) -> Option<usize> {
        self.current
    }

    /// Decides on a frame of `layer` (None for a track without simulcast). `best` is the
    /// layer the subscriber should get given what the publisher is sending right now.
    pub(crate) fn on_frame(
        &mut self,
        layer: Option<usize>,
        best: Option<usize>,
        keyframe: bool,
        is_video: bool,
        time: u64,
    ) -> Verdict {
        if self.target == Target::Paused {
            self.interrupt();
            return Verdict::Drop;
        }
        let Some(layer) = layer else {
            // Plain track: one stream, no switching, but video restarts on a keyframe.
            if is_video && !self.synced {
                if !keyframe {
                    return Verdict::DropWantKeyframe(0);
                }
                self.synced = true;
            }
            return Verdict::Forward(self.rewrite(time));
        };
        let want = best.unwrap_or(layer);
        if Some(layer) == self.current && want == layer {
            return Verdict::Forward(self.rewrite(time));
        }
        if layer != want {
            // A frame of a layer we are not (or no longer) after. Keep passing the current
            // layer until the wanted one delivers a keyframe.
            if Some(layer) == self.current {
                return Verdict::Forward(self.rewrite(time));
            }
            return Verdict::Drop;
        }
        // `layer == want` but it is not the current one: switch on a keyframe.
        if is_video && !keyframe {
            return Verdict::DropWantKeyframe(want);
        }
        self.current = Some(layer);
        self.offset = match self.last_out {
            Some(last) => last.wrapping_add(SPLICE_GAP).wrapping_sub(time),
            None => 0,
        };
        Verdict::Forward(self.rewrite(time))
    }

    fn rewrite(&mut self, time: u64) -> u64 {
        let out = time.wrapping_add(self.offset);
        self.last_out = Some(out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_keyframe_then_splices_clocks() {
        let mut f = Forwarder::new(Target::Layer(2));
        // Layer 1 is the best there is; its first frame is a delta frame.
        assert_eq!(
            f.on_frame(Some(1), Some(1), false, true, 1000),
            Verdict::DropWantKeyframe(1)
        );
        assert_eq!(
            f.on_frame(Some(1), Some(1), true, true, 4000),
            Verdict::Forward(4000)
        );
        assert_eq!(
            f.on_frame(Some(1), Some(1), false, true, 7000),
            Verdict::Forward(7000)
        );
        // Layer 2 shows up with another clock; layer 1 keeps flowing until 2 has a keyframe.
        assert_eq!(
            f.on_frame(Some(2), Some(2), false, true, 900_000),
            Verdict::DropWantKeyframe(2)
        );
        assert_eq!(
            f.on_frame(Some(1), Some(2), false, true, 10_000),
            Verdict::Forward(10_000)
        );
        assert_eq!(
            f.on_frame(Some(2), Some(2), true, true, 903_000),
            Verdict::Forward(13_000)
        );
        assert_eq!(f.current(), Some(2));
        // The old layer is dropped from now on; the new one keeps its spliced clock.
        assert_eq!(
            f.on_frame(Some(1), Some(2), false, true, 13_000),
            Verdict::Drop
        );
        assert_eq!(
            f.on_frame(Some(2), Some(2), false, true, 906_000),
            Verdict::Forward(16_000)
        );
    }

    #[test]
    fn plain_video_starts_and_resumes_on_keyframes() {
        let mut f = Forwarder::new(Target::Layer(0));
        assert_eq!(
            f.on_frame(None, None, false, true, 1),
            Verdict::DropWantKeyframe(0)
        );
        assert_eq!(f.on_frame(None, None, true, true, 2), Verdict::Forward(2));
        assert_eq!(f.on_frame(None, None, false, true, 3), Verdict::Forward(3));
        // Audio never waits.
        let mut a = Forwarder::new(Target::Layer(0));
        assert_eq!(a.on_frame(None, None, false, false, 7), Verdict::Forward(7));
        // Paused and resumed: the next delta frame would not decode.
        f.target = Target::Paused;
        assert_eq!(f.on_frame(None, None, false, true, 4), Verdict::Drop);
        f.target = Target::Layer(0);
        assert_eq!(
            f.on_frame(None, None, false, true, 5),
            Verdict::DropWantKeyframe(0)
        );
        assert_eq!(f.on_frame(None, None, true, true, 6), Verdict::Forward(6));
    }

    #[test]
    fn an_interrupted_layer_waits_for_a_keyframe() {
        let mut f = Forwarder::new(Target::Layer(1));
        assert_eq!(
            f.on_frame(Some(1), Some(1), true, true, 100),
            Verdict::Forward(100)
        );
        f.interrupt();
        assert_eq!(
            f.on_frame(Some(1), Some(1), false, true, 200),
            Verdict::DropWantKeyframe(1)
        );
        assert_eq!(
            f.on_frame(Some(1), Some(1), true, true, 300),
            Verdict::Forward(3100)
        );
    }

    #[test]
    fn paused_drops_everything() {
        let mut f = Forwarder::new(Target::Paused);
        assert_eq!(f.on_frame(None, None, true, false, 1), Verdict::Drop);
        assert_eq!(f.on_frame(Some(0), Some(0), true, true, 1), Verdict::Drop);
    }
}
