// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Fault injection: what the simulated host does wrong on purpose, set with
//! `fault ...` on the control socket, so tests can check what the guest sees.
//!
//! ```text
//! fault hold                 keep every completion back (requests stay pending)
//! fault release              send the held completions (and stop holding)
//! fault status HEX [N]       the next N requests fail with this host status
//! fault delay MS [N]         the next N requests are answered MS later
//! fault duplicate [N]        the next N completions are sent twice, in one
//!                            ring update (the guest sees both together)
//! fault garbage [N]          before each of the next N completions, send three
//!                            malformed ones: an unknown id, a bad length, a
//!                            wrong packet type
//! fault stall MS             stop reading the guest's ring for MS (back-pressure)
//! fault random SEED PERCENT  that share of requests gets one of: status
//!                            0x80004005, a 1-20 ms delay, a duplicate, garbage
//! fault clear                no faults (held completions are released)
//! fault show                 the plan
//! ```
//! A rescind always releases held completions first.

use std::time::{Duration, Instant};

/// The host status `fault random` injects (E_FAIL).
pub const RANDOM_STATUS: u32 = 0x8000_4005;

/// What to do to one completion.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    /// Keep it back until `fault release` (or a rescind).
    pub hold: bool,
    /// Replace the status (and report no response bytes).
    pub status: Option<u32>,
    /// Answer this much later.
    pub delay: Duration,
    /// Send the completion twice.
    pub duplicate: bool,
    /// Send malformed completions before it.
    pub garbage: bool,
}

/// The faults in force, shared by every channel of a host.
#[derive(Debug, Default)]
pub struct FaultPlan {
    hold: bool,
    status: Option<(u32, u32)>,
    delay: Option<(Duration, u32)>,
    duplicate: u32,
    garbage: u32,
    stall_until: Option<Instant>,
    random: Option<(fastrand::Rng, u32)>,
    /// Faults applied so far.
    pub injected: u64,
}

fn number<T: std::str::FromStr>(
    w: Option<&&str>,
    what: &str,
    default: Option<T>,
) -> Result<T, String> {
    match w {
        Some(s) => s.parse().map_err(|_| format!("bad {what} '{s}'")),
        None => default.ok_or_else(|| format!("missing {what}")),
    }
}

impl FaultPlan {
    /// Runs `fault WORDS...`; the answer for the control socket.
    pub fn command(&mut self, words: &[&str]) -> Result<String, String> {
        let count = |w: Option<&&str>| number::<u32>(w, "count", Some(1));
        match words {
            ["hold"] => self.hold = true,
            ["release"] => self.hold = false,
            ["clear"] => *self = FaultPlan { injected: self.injected, ..Default::default() },
            ["status", hex, rest @ ..] if rest.len() <= 1 => {
                let v = u32::from_str_radix(hex.trim_start_matches("0x"), 16)
                    .map_err(|_| format!("bad status '{hex}'"))?;
                self.status = Some((v, count(rest.first())?));
            }
            ["delay", ms, rest @ ..] if rest.len() <= 1 => {
                let ms = number::<u64>(Some(ms), "delay", None)?;
                self.delay = Some((Duration::from_millis(ms), count(rest.first())?));
            }
            ["duplicate", rest @ ..] if rest.len() <= 1 => self.duplicate = count(rest.first())?,
            ["garbage", rest @ ..] if rest.len() <= 1 => self.garbage = count(rest.first())?,
            ["stall", ms] => {
                let ms = number::<u64>(Some(ms), "stall", None)?;
                self.stall_until = Some(Instant::now() + Duration::from_millis(ms));
            }
            ["random", seed, pct] => {
                let seed = number::<u64>(Some(seed), "seed", None)?;
                let pct = number::<u32>(Some(pct), "percent", None)?;
                if pct > 100 {
                    return Err(format!("percent {pct} is over 100"));
                }
                self.random = Some((fastrand::Rng::with_seed(seed), pct));
            }
            ["show"] => {}
            _ => {
                return Err(
                    "usage: fault hold|release|clear|show|status HEX [N]|delay MS [N]|duplicate [N]|garbage [N]|stall MS|random SEED PERCENT"
                        .into(),
                )
            }
        }
        Ok(self.describe())
    }

    fn describe(&self) -> String {
        let mut s = format!("faults: hold={} injected={}", self.hold, self.injected);
        if let Some((v, n)) = self.status {
            s += &format!(" status={v:#x}x{n}");
        }
        if let Some((d, n)) = self.delay {
            s += &format!(" delay={}msx{n}", d.as_millis());
        }
        if self.duplicate > 0 {
            s += &format!(" duplicate={}", self.duplicate);
        }
        if self.garbage > 0 {
            s += &format!(" garbage={}", self.garbage);
        }
        if let Some(left) = self.stalled() {
            s += &format!(" stalled={}ms", left.as_millis());
        }
        if let Some((_, p)) = &self.random {
            s += &format!(" random={p}%");
        }
        s
    }

    /// Whether completions are held back.
    pub fn holding(&self) -> bool {
        self.hold
    }

    /// How much longer the guest's ring is left unread.
    pub fn stalled(&self) -> Option<Duration> {
        let left = self.stall_until?.checked_duration_since(Instant::now())?;
        (!left.is_zero()).then_some(left)
    }

    /// The action for the next completion of a valid request.
    pub fn next_action(&mut self) -> Action {
        let mut a = Action {
            hold: self.hold,
            ..Action::default()
        };
        if let Some((v, n)) = self.status.take() {
            a.status = Some(v);
            if n > 1 {
                self.status = Some((v, n - 1));
            }
        }
        if let Some((d, n)) = self.delay.take() {
            a.delay = d;
            if n > 1 {
                self.delay = Some((d, n - 1));
            }
        }
        if self.duplicate > 0 {
            self.duplicate -= 1;
            a.duplicate = true;
        }
        if self.garbage > 0 {
            self.garbage -= 1;
            a.garbage = true;
        }
        if let Some((rng, pct)) = &mut self.random {
            if rng.u32(0..100) < *pct {
                match rng.u32(0..4) {
                    0 => a.status = Some(RANDOM_STATUS),
                    1 => a.delay = Duration::from_millis(rng.u64(1..=20)),
                    2 => a.duplicate = true,
                    _ => a.garbage = true,
                }
            }
        }
        if a != (Action {
            hold: self.hold,
            ..Action::default()
        }) || a.hold
        {
            self.injected += 1;
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_faults_apply_to_the_next_requests_only() {
        let mut p = FaultPlan::default();
        p.command(&["status", "0x80070102", "2"]).unwrap();
        p.command(&["duplicate"]).unwrap();
        assert_eq!(p.next_action().status, Some(0x8007_0102));
        let a = p.next_action();
        assert_eq!(a.status, Some(0x8007_0102));
        assert!(!a.duplicate);
        assert_eq!(p.next_action(), Action::default());
    }

    #[test]
    fn hold_release_clear_and_bad_commands() {
        let mut p = FaultPlan::default();
        p.command(&["hold"]).unwrap();
        assert!(p.next_action().hold && p.holding());
        p.command(&["release"]).unwrap();
        assert!(!p.holding());
        assert!(p.command(&["status", "zz"]).is_err());
        assert!(p.command(&["random", "1", "101"]).is_err());
        assert!(p.command(&["explode"]).is_err());
        p.command(&["stall", "10000"]).unwrap();
        assert!(p.stalled().is_some());
        p.command(&["clear"]).unwrap();
        assert!(p.stalled().is_none());
    }

    #[test]
    fn random_faults_are_reproducible_from_the_seed() {
        let run = || {
            let mut p = FaultPlan::default();
            p.command(&["random", "42", "50"]).unwrap();
            (0..200).map(|_| p.next_action()).collect::<Vec<_>>()
        };
        let (a, b) = (run(), run());
        assert_eq!(a, b);
        let faulty = a.iter().filter(|x| **x != Action::default()).count();
        assert!((60..140).contains(&faulty), "{faulty} of 200");
    }
}
