//! Fitting a subscriber's video into its bandwidth estimate.
//!
//! str0m turns the subscriber's transport-wide congestion control feedback (TWCC) into a
//! send-side estimate of what its link carries. Every video track the subscriber receives
//! then gets a simulcast layer so that, together with its audio, the sum stays within that
//! estimate: first the lowest layer of every track, in subscription order, pausing the
//! tracks for which even that does not fit; then one layer up at a time, round-robin, as
//! long as the next step fits and the subscriber asked for it. This is LiveKit's order too:
//! everyone sees something before anyone sees more.
//!
//! Estimates and measured bitrates wobble from one allocation to the next, and every
//! switch costs a keyframe. So what a subscriber has is kept as long as it fits the whole
//! estimate, and steps up are only taken within [`HEADROOM`] of it: a layer is dropped when
//! the link cannot carry it, not when a keyframe made one measurement look expensive.

/// Steps up must fit within this share of the estimate; the rest absorbs the variation
/// of video bitrates between measurements so the pacer queue stays short.
pub(crate) const HEADROOM: f64 = 0.9;

/// One video track as the allocator sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Demand<'a> {
    /// The highest layer the subscriber asked for; `None` when it paused the track itself.
    pub(crate) cap: Option<usize>,
    /// Measured bitrate of each layer in bits per second, lowest first; `None` for a layer
    /// the publisher is not sending. A track without simulcast has one entry.
    pub(crate) layers: &'a [Option<u64>],
    /// What the track was granted last time (`None`: never allocated yet).
    pub(crate) held: Option<Grant>,
}

impl Demand<'_> {
    fn lowest(&self) -> Option<usize> {
        self.layers.iter().position(Option::is_some)
    }

    fn rate(&self, layer: usize) -> u64 {
        self.layers[layer].unwrap_or(0)
    }

    /// What it costs to keep: the grant it holds, moved to the best layer still sent
    /// within it and the subscriber's cap.
    fn kept(&self) -> Grant {
        let (Some(cap), Some(lowest)) = (self.cap, self.lowest()) else {
            return Grant::Idle;
        };
        match self.held {
            Some(Grant::UpTo(l)) => Grant::UpTo(
                (lowest..=l.min(cap).min(self.layers.len() - 1))
                    .rfind(|&i| self.layers[i].is_some())
                    .unwrap_or(lowest),
            ),
            // New, unpaused, or paused for bandwidth: it starts from nothing.
            _ => Grant::Starved,
        }
    }

    fn cost(&self, g: Grant) -> u64 {
        match g {
            Grant::UpTo(l) => self.rate(l),
            Grant::Starved | Grant::Idle => 0,
        }
    }

    /// The next step up from `g` and what it adds, if the subscriber wants one.
    fn step_up(&self, g: Grant) -> Option<(Grant, u64)> {
        let cap = self.cap?;
        match g {
            Grant::Idle => None,
            Grant::Starved => self.lowest().map(|i| (Grant::UpTo(i), self.rate(i))),
            Grant::UpTo(cur) => {
                let next = (cur + 1..self.layers.len().min(cap + 1))
                    .find(|&i| self.layers[i].is_some())?;
                Some((
                    Grant::UpTo(next),
                    self.rate(next).saturating_sub(self.rate(cur)),
                ))
            }
        }
    }
}

/// What a track gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    /// Layers up to this index fit (the forwarder still picks the best one actually sent).
    UpTo(usize),
    /// Not even the lowest layer sent fits: the track is paused for lack of bandwidth.
    Starved,
    /// Costs nothing: the subscriber paused it, or the publisher sends no layer at all.
    Idle,
}

/// Grants layers to `demands` (in priority order) within `estimate` bits per second, of
/// which `fixed` (audio) is spent first. Writes one grant per demand into `grants`.
pub(crate) fn allocate(estimate: u64, fixed: u64, demands: &[Demand<'_>], grants: &mut Vec<Grant>) {
    let room = (estimate as f64 * HEADROOM) as u64;
    grants.clear();
    grants.extend(demands.iter().map(Demand::kept));
    let kept = fixed
        + demands
            .iter()
            .zip(grants.iter())
            .map(|(d, g)| d.cost(*g))
            .sum::<u64>();
    let mut left = if kept <= estimate {
        room.saturating_sub(kept)
    } else {
        // What it has no longer fits: start again from the lowest layers.
        for g in grants.iter_mut().filter(|g| **g != Grant::Idle) {
            *g = Grant::Starved;
        }
        room.saturating_sub(fixed)
    };
    // Everyone sees something before anyone sees more.
    for (d, g) in demands.iter().zip(grants.iter_mut()) {
        if *g == Grant::Starved
            && let Some((up, step)) = d.step_up(*g)
            && step <= left
        {
            left -= step;
            *g = up;
        }
    }
    loop {
        let mut raised = false;
        for (d, g) in demands.iter().zip(grants.iter_mut()) {
            if let Some((up, step)) = d.step_up(*g)
                && step <= left
            {
                left -= step;
                *g = up;
                raised = true;
            }
        }
        if !raised {
            return;
        }
    }
}

/// What the subscriber would take with unlimited bandwidth: the rate of the highest layer
/// it asked for of every track, plus `fixed`. str0m probes the link up towards this.
pub(crate) fn wanted(fixed: u64, demands: &[Demand<'_>]) -> u64 {
    demands
        .iter()
        .filter_map(|d| {
            let cap = d.cap?;
            d.layers[..d.layers.len().min(cap + 1)]
                .iter()
                .rev()
                .find_map(|r| *r)
                .or_else(|| d.layers.iter().find_map(|r| *r))
        })
        .sum::<u64>()
        + fixed
}

/// Whether the estimate holds a track below a layer the subscriber asked for and the
/// publisher sends (the subscriber would take more if the link carried it).
pub(crate) fn held_back(demands: &[Demand<'_>], grants: &[Grant]) -> bool {
    demands
        .iter()
        .zip(grants)
        .any(|(d, g)| d.step_up(*g).is_some())
}

/// Turns every pause into the lowest layer sent (`allow_pause: false`).
pub(crate) fn never_starve(demands: &[Demand<'_>], grants: &mut [Grant]) {
    for (d, g) in demands.iter().zip(grants.iter_mut()) {
        if *g == Grant::Starved
            && let Some(i) = d.layers.iter().position(Option::is_some)
        {
            *g = Grant::UpTo(i);
        }
    }
}

/// What the lowest layer of every track the subscriber has not paused costs, plus
/// `fixed`: the least that lets every track show something.
pub(crate) fn lowest(fixed: u64, demands: &[Demand<'_>]) -> u64 {
    demands
        .iter()
        .filter(|d| d.cap.is_some())
        .filter_map(|d| d.layers.iter().find_map(|r| *r))
        .sum::<u64>()
        + fixed
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIM: [Option<u64>; 3] = [Some(150_000), Some(500_000), Some(1_700_000)];

    fn run(budget: u64, fixed: u64, demands: &[Demand<'_>]) -> Vec<Grant> {
        let mut g = Vec::new();
        allocate(budget, fixed, demands, &mut g);
        g
    }

    #[test]
    fn plenty_gives_everyone_what_they_asked_for() {
        let d = [
            Demand {
                cap: Some(2),
                layers: &SIM,
                held: None,
            },
            Demand {
                cap: Some(1),
                layers: &SIM,
                held: None,
            },
        ];
        assert_eq!(
            run(10_000_000, 64_000, &d),
            [Grant::UpTo(2), Grant::UpTo(1)]
        );
        assert_eq!(wanted(64_000, &d), 64_000 + 1_700_000 + 500_000);
    }

    #[test]
    fn everyone_gets_the_lowest_layer_before_anyone_gets_more() {
        let d = [
            Demand {
                cap: Some(2),
                layers: &SIM,
                held: None,
            },
            Demand {
                cap: Some(2),
                layers: &SIM,
                held: None,
            },
        ];
        // 1.2 Mbps (1.08 within the headroom): both low (300k), then both medium
        // (+700k), no room for high.
        assert_eq!(run(1_200_000, 0, &d), [Grant::UpTo(1), Grant::UpTo(1)]);
        // 800 kbps (720k): both low, one step up for the first only.
        assert_eq!(run(800_000, 0, &d), [Grant::UpTo(1), Grant::UpTo(0)]);
    }

    #[test]
    fn what_does_not_fit_is_starved_and_audio_comes_first() {
        let plain = [Some(1_000_000)];
        let d = [
            Demand {
                cap: Some(2),
                layers: &SIM,
                held: None,
            },
            Demand {
                cap: Some(0),
                layers: &plain,
                held: None,
            },
        ];
        assert_eq!(run(900_000, 64_000, &d), [Grant::UpTo(1), Grant::Starved]);
        assert_eq!(run(180_000, 64_000, &d), [Grant::Starved, Grant::Starved]);
        assert_eq!(lowest(64_000, &d), 64_000 + 150_000 + 1_000_000);
        let mut g = run(900_000, 64_000, &d);
        never_starve(&d, &mut g);
        assert_eq!(g, [Grant::UpTo(1), Grant::UpTo(0)]);
    }

    #[test]
    fn paused_and_unsent_tracks_cost_nothing_and_gaps_are_skipped() {
        let gappy = [Some(150_000), None, Some(1_700_000)];
        let none = [None, None, None];
        let d = [
            Demand {
                cap: None,
                layers: &SIM,
                held: None,
            },
            Demand {
                cap: Some(2),
                layers: &none,
                held: None,
            },
            Demand {
                cap: Some(2),
                layers: &gappy,
                held: None,
            },
        ];
        assert_eq!(
            run(2_000_000, 0, &d),
            [Grant::Idle, Grant::Idle, Grant::UpTo(2)]
        );
        // The cap stops at a layer not being sent: the highest one sent below it counts.
        let capped = [Demand {
            cap: Some(1),
            layers: &gappy,
            held: None,
        }];
        assert_eq!(run(2_000_000, 0, &capped), [Grant::UpTo(0)]);
        assert_eq!(wanted(0, &capped), 150_000);
    }

    #[test]
    fn what_a_subscriber_has_is_kept_while_it_fits_the_whole_estimate() {
        let held = |g| Demand {
            cap: Some(2),
            layers: &SIM,
            held: Some(g),
        };
        // 1.8 Mbps: the top layer (1.7M) is not taken anew within the 90 % headroom...
        let fresh = [Demand {
            cap: Some(2),
            layers: &SIM,
            held: None,
        }];
        assert_eq!(run(1_800_000, 0, &fresh), [Grant::UpTo(1)]);
        // ...but one who has it keeps it.
        assert_eq!(run(1_800_000, 0, &[held(Grant::UpTo(2))]), [Grant::UpTo(2)]);
        // Below the whole estimate it goes, and the rest is allocated afresh.
        assert_eq!(run(1_600_000, 0, &[held(Grant::UpTo(2))]), [Grant::UpTo(1)]);
        // A lowered cap is followed at once.
        let capped = Demand {
            cap: Some(1),
            ..held(Grant::UpTo(2))
        };
        assert_eq!(run(10_000_000, 0, &[capped]), [Grant::UpTo(1)]);
        // A paused track comes back only within the headroom (as a new one would).
        assert_eq!(run(160_000, 0, &[held(Grant::Starved)]), [Grant::Starved]);
        assert_eq!(run(170_000, 0, &[held(Grant::Starved)]), [Grant::UpTo(0)]);
    }

    #[test]
    fn a_new_track_gets_its_lowest_layer_before_others_step_up() {
        let d = [
            Demand {
                cap: Some(2),
                layers: &SIM,
                held: Some(Grant::UpTo(0)),
            },
            Demand {
                cap: Some(2),
                layers: &SIM,
                held: None,
            },
        ];
        // 540k within the headroom: 150k kept, 150k for the newcomer, 240k left is not
        // enough for anyone's next step (+350k).
        assert_eq!(run(600_000, 0, &d), [Grant::UpTo(0), Grant::UpTo(0)]);
    }

    #[test]
    fn held_back_means_a_wanted_layer_is_sent_but_not_granted() {
        let d = |cap| Demand {
            cap,
            layers: &SIM,
            held: None,
        };
        // Below the top it asked for: held back.
        assert!(held_back(&[d(Some(2))], &[Grant::UpTo(1)]));
        assert!(held_back(&[d(Some(2))], &[Grant::Starved]));
        // At its own cap, paused by the subscriber, or at the top: not.
        assert!(!held_back(&[d(Some(1))], &[Grant::UpTo(1)]));
        assert!(!held_back(&[d(None)], &[Grant::Idle]));
        assert!(!held_back(&[d(Some(2))], &[Grant::UpTo(2)]));
        // The layer above is not sent: nothing to probe for.
        let top_off = [Some(150_000), Some(500_000), None];
        let no_top = Demand {
            cap: Some(2),
            layers: &top_off,
            held: None,
        };
        assert!(!held_back(&[no_top], &[Grant::UpTo(1)]));
    }
}
