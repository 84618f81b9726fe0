//! Fitting a subscriber's video into its bandwidth estimate.
//!
//! str0m turns the subscriber's transport-wide congestion control feedback (TWCC) into a
//! send-side estimate of what its link carries. Every video track the subscriber receives
//! then gets a simulcast layer so that, together with its audio, the sum stays within that
//! estimate: first the lowest layer of every track, in subscription order, pausing the
//! tracks for which even that does not fit; then one layer up at a time, round-robin, as
//! long as the next step fits and the subscriber asked for it. This is LiveKit's order too:
//! everyone sees something before anyone sees more.

/// One video track as the allocator sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Demand<'a> {
    /// The highest layer the subscriber asked for; `None` when it paused the track itself.
    pub(crate) cap: Option<usize>,
    /// Measured bitrate of each layer in bits per second, lowest first; `None` for a layer
    /// the publisher is not sending. A track without simulcast has one entry.
    pub(crate) layers: &'a [Option<u64>],
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

/// Grants layers to `demands` (in priority order) within `budget` bits per second, of
/// which `fixed` (audio) is spent first. Writes one grant per demand into `grants`.
pub(crate) fn allocate(budget: u64, fixed: u64, demands: &[Demand<'_>], grants: &mut Vec<Grant>) {
    grants.clear();
    let mut left = budget.saturating_sub(fixed);
    for d in demands {
        let lowest = d.layers.iter().position(Option::is_some);
        let grant = match (d.cap, lowest) {
            (None, _) | (_, None) => Grant::Idle,
            (Some(_), Some(i)) => {
                let cost = d.layers[i].unwrap_or(0);
                if cost <= left {
                    left -= cost;
                    Grant::UpTo(i)
                } else {
                    Grant::Starved
                }
            }
        };
        grants.push(grant);
    }
    loop {
        let mut raised = false;
        for (d, g) in demands.iter().zip(grants.iter_mut()) {
            let (Grant::UpTo(cur), Some(cap)) = (*g, d.cap) else {
                continue;
            };
            let Some(next) =
                (cur + 1..d.layers.len().min(cap + 1)).find(|&i| d.layers[i].is_some())
            else {
                continue;
            };
            let now_rate = d.layers[cur].unwrap_or(0);
            let step = d.layers[next].unwrap_or(0).saturating_sub(now_rate);
            if step <= left {
                left -= step;
                *g = Grant::UpTo(next);
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
            },
            Demand {
                cap: Some(1),
                layers: &SIM,
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
            },
            Demand {
                cap: Some(2),
                layers: &SIM,
            },
        ];
        // 1.2 Mbps: both low (300k), then both medium (+700k), no room for high.
        assert_eq!(run(1_200_000, 0, &d), [Grant::UpTo(1), Grant::UpTo(1)]);
        // 700 kbps: both low, one step up for the first only.
        assert_eq!(run(700_000, 0, &d), [Grant::UpTo(1), Grant::UpTo(0)]);
    }

    #[test]
    fn what_does_not_fit_is_starved_and_audio_comes_first() {
        let plain = [Some(1_000_000)];
        let d = [
            Demand {
                cap: Some(2),
                layers: &SIM,
            },
            Demand {
                cap: Some(0),
                layers: &plain,
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
            },
            Demand {
                cap: Some(2),
                layers: &none,
            },
            Demand {
                cap: Some(2),
                layers: &gappy,
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
        }];
        assert_eq!(run(2_000_000, 0, &capped), [Grant::UpTo(0)]);
        assert_eq!(wanted(0, &capped), 150_000);
    }
}
