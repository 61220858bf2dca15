// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The blob lease state machine (Lease Blob: acquire, renew, change, release, break) and the
//! lease checks of ordinary reads, writes and deletes.

use std::time::{Duration, SystemTime};

use crate::error::{ErrorCode, SResult, ServiceError};
use crate::storage::LeaseRecord;

/// Lease state as reported in `x-ms-lease-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// No lease.
    Available,
    /// Leased (infinite or not yet expired).
    Leased,
    /// A timed lease ran out.
    Expired,
    /// Break issued, break period running.
    Breaking,
    /// Break period over.
    Broken,
}

impl LeaseState {
    /// `x-ms-lease-state` value.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Available => "available",
            LeaseState::Leased => "leased",
            LeaseState::Expired => "expired",
            LeaseState::Breaking => "breaking",
            LeaseState::Broken => "broken",
        }
    }

    /// Whether the lease blocks writers without the lease id.
    pub fn is_active(self) -> bool {
        matches!(self, LeaseState::Leased | LeaseState::Breaking)
    }
}

/// The state of a lease record at `now`.
pub fn state(l: &LeaseRecord, now: SystemTime) -> LeaseState {
    if l.id.is_none() {
        return LeaseState::Available;
    }
    if l.breaking {
        return match l.break_at {
            Some(t) if t > now => LeaseState::Breaking,
            _ => LeaseState::Broken,
        };
    }
    match l.expires {
        Some(t) if t <= now => LeaseState::Expired,
        _ => LeaseState::Leased,
    }
}

/// Headers describing a lease (`x-ms-lease-state`, `-status`, `-duration`).
pub fn headers(l: &LeaseRecord, now: SystemTime) -> Vec<(&'static str, &'static str)> {
    let st = state(l, now);
    let mut v = vec![
        ("x-ms-lease-state", st.as_str()),
        (
            "x-ms-lease-status",
            if st.is_active() { "locked" } else { "unlocked" },
        ),
    ];
    if st == LeaseState::Leased {
        v.push((
            "x-ms-lease-duration",
            if l.duration.is_none() {
                "infinite"
            } else {
                "fixed"
            },
        ));
    }
    v
}

/// Lease check for operations that modify or delete the blob.
pub fn check_write(l: &LeaseRecord, given: Option<&str>, now: SystemTime) -> SResult<()> {
    let st = state(l, now);
    match (st.is_active(), given) {
        (true, None) => Err(ServiceError::new(ErrorCode::LeaseIdMissing)),
        (true, Some(g)) if !same_id(l.id.as_deref(), g) => Err(ServiceError::new(
            ErrorCode::LeaseIdMismatchWithBlobOperation,
        )),
        (false, Some(_)) => Err(ServiceError::new(
            ErrorCode::LeaseNotPresentWithBlobOperation,
        )),
        _ => Ok(()),
    }
}

/// Lease check for reads: a lease id, when given, must match the active lease.
pub fn check_read(l: &LeaseRecord, given: Option<&str>, now: SystemTime) -> SResult<()> {
    match given {
        None => Ok(()),
        Some(_) => check_write(l, given, now),
    }
}

fn same_id(a: Option<&str>, b: &str) -> bool {
    a.is_some_and(|a| a.eq_ignore_ascii_case(b))
}

/// A Lease Blob request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAction {
    /// Acquire with a duration (`None` = infinite) and an optional proposed id.
    Acquire {
        /// Seconds, or `None` for infinite.
        duration: Option<u64>,
        /// Proposed lease id.
        proposed: Option<String>,
    },
    /// Renew.
    Renew {
        /// Lease id.
        id: String,
    },
    /// Change to a proposed id.
    Change {
        /// Current lease id.
        id: String,
        /// New lease id.
        proposed: String,
    },
    /// Release.
    Release {
        /// Lease id.
        id: String,
    },
    /// Break with an optional period in seconds.
    Break {
        /// Break period.
        period: Option<u64>,
    },
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn guid(v: &str) -> SResult<String> {
    uuid::Uuid::parse_str(v)
        .map(|_| v.to_string())
        .map_err(|_| ServiceError::with_detail(ErrorCode::InvalidHeaderValue, "lease id"))
}

fn required(h: &[(String, String)], name: &str) -> SResult<String> {
    header(h, name)
        .map(str::to_string)
        .ok_or_else(|| ServiceError::with_detail(ErrorCode::MissingRequiredHeader, name))
}

impl LeaseAction {
    /// Parses the lease headers of a Lease Blob request.
    pub fn from_headers(h: &[(String, String)]) -> SResult<Self> {
        let action = header(h, "x-ms-lease-action").ok_or_else(|| {
            ServiceError::with_detail(ErrorCode::MissingRequiredHeader, "x-ms-lease-action")
        })?;
        match action.to_ascii_lowercase().as_str() {
            "acquire" => {
                let d = required(h, "x-ms-lease-duration")?;
                let duration = match d.parse::<i64>() {
                    Ok(-1) => None,
                    Ok(s @ 15..=60) => Some(s.unsigned_abs()),
                    _ => {
                        return Err(ServiceError::with_detail(
                            ErrorCode::InvalidHeaderValue,
                            "x-ms-lease-duration",
                        ))
                    }
                };
                let proposed = header(h, "x-ms-proposed-lease-id").map(guid).transpose()?;
                Ok(LeaseAction::Acquire { duration, proposed })
            }
            "renew" => Ok(LeaseAction::Renew {
                id: required(h, "x-ms-lease-id")?,
            }),
            "change" => Ok(LeaseAction::Change {
                id: required(h, "x-ms-lease-id")?,
                proposed: guid(&required(h, "x-ms-proposed-lease-id")?)?,
            }),
            "release" => Ok(LeaseAction::Release {
                id: required(h, "x-ms-lease-id")?,
            }),
            "break" => {
                let period = match header(h, "x-ms-lease-break-period") {
                    None => None,
                    Some(p) => match p.parse::<u64>() {
                        Ok(s @ 0..=60) => Some(s),
                        _ => {
                            return Err(ServiceError::with_detail(
                                ErrorCode::InvalidHeaderValue,
                                "x-ms-lease-break-period",
                            ))
                        }
                    },
                };
                Ok(LeaseAction::Break { period })
            }
            _ => Err(ServiceError::with_detail(
                ErrorCode::InvalidHeaderValue,
                "x-ms-lease-action",
            )),
        }
    }
}

/// Result of a lease action: the status to answer and the headers to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOutcome {
    /// 200, 201 or 202.
    pub status: u16,
    /// `x-ms-lease-id` to return.
    pub lease_id: Option<String>,
    /// `x-ms-lease-time` (break) in seconds.
    pub lease_time: Option<u64>,
}

fn remaining(t: Option<SystemTime>, now: SystemTime) -> u64 {
    t.and_then(|t| t.duration_since(now).ok())
        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
        .unwrap_or(0)
}

/// Applies a lease action to a lease record at `now`.
pub fn apply(l: &mut LeaseRecord, action: LeaseAction, now: SystemTime) -> SResult<LeaseOutcome> {
    use ErrorCode as E;
    let st = state(l, now);
    let err = |c| Err(ServiceError::new(c));
    match action {
        LeaseAction::Acquire { duration, proposed } => {
            let same = proposed
                .as_deref()
                .is_some_and(|p| same_id(l.id.as_deref(), p));
            match st {
                LeaseState::Leased if !same => return err(E::LeaseAlreadyPresent),
                LeaseState::Breaking if same => return err(E::LeaseIsBreakingAndCannotBeAcquired),
                LeaseState::Breaking => return err(E::LeaseAlreadyPresent),
                _ => {}
            }
            let id = proposed.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            *l = LeaseRecord {
                id: Some(id.clone()),
                duration,
                expires: duration.map(|d| now + Duration::from_secs(d)),
                break_at: None,
                breaking: false,
            };
            Ok(LeaseOutcome {
                status: 201,
                lease_id: Some(id),
                lease_time: None,
            })
        }
        LeaseAction::Renew { id } => {
            if st == LeaseState::Available {
                return err(E::LeaseNotPresentWithLeaseOperation);
            }
            if !same_id(l.id.as_deref(), &id) {
                return err(E::LeaseIdMismatchWithLeaseOperation);
            }
            if matches!(st, LeaseState::Breaking | LeaseState::Broken) {
                return err(E::LeaseIsBrokenAndCannotBeRenewed);
            }
            l.expires = l.duration.map(|d| now + Duration::from_secs(d));
            Ok(LeaseOutcome {
                status: 200,
                lease_id: l.id.clone(),
                lease_time: None,
            })
        }
        LeaseAction::Change { id, proposed } => {
            match st {
                LeaseState::Available | LeaseState::Expired | LeaseState::Broken => {
                    return err(E::LeaseNotPresentWithLeaseOperation)
                }
                LeaseState::Breaking => {
                    return if same_id(l.id.as_deref(), &id) {
                        err(E::LeaseIsBreakingAndCannotBeChanged)
                    } else {
                        err(E::LeaseIdMismatchWithLeaseOperation)
                    }
                }
                LeaseState::Leased => {}
            }
            if !same_id(l.id.as_deref(), &id) && !same_id(l.id.as_deref(), &proposed) {
                return err(E::LeaseIdMismatchWithLeaseOperation);
            }
            l.id = Some(proposed.clone());
            Ok(LeaseOutcome {
                status: 200,
                lease_id: Some(proposed),
                lease_time: None,
            })
        }
        LeaseAction::Release { id } => {
            if st == LeaseState::Available {
                return err(E::LeaseNotPresentWithLeaseOperation);
            }
            if !same_id(l.id.as_deref(), &id) {
                return err(E::LeaseIdMismatchWithLeaseOperation);
            }
            *l = LeaseRecord::default();
            Ok(LeaseOutcome {
                status: 200,
                lease_id: None,
                lease_time: None,
            })
        }
        LeaseAction::Break { period } => {
            let time = match st {
                LeaseState::Available => return err(E::LeaseNotPresentWithLeaseOperation),
                LeaseState::Expired | LeaseState::Broken => {
                    l.breaking = true;
                    l.break_at = Some(now);
                    0
                }
                LeaseState::Leased => {
                    let left = match l.duration {
                        None => 0,
                        Some(_) => remaining(l.expires, now),
                    };
                    let p = match (period, l.duration) {
                        (Some(p), None) => p,
                        (Some(p), Some(_)) => p.min(left),
                        (None, _) => left,
                    };
                    l.breaking = true;
                    l.break_at = Some(now + Duration::from_secs(p));
                    p
                }
                LeaseState::Breaking => {
                    let left = remaining(l.break_at, now);
                    let p = period.map_or(left, |p| p.min(left));
                    l.break_at = Some(now + Duration::from_secs(p));
                    p
                }
            };
            Ok(LeaseOutcome {
                status: 202,
                lease_id: None,
                lease_time: Some(time),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "6a7e8a1c-9f3b-4a55-8d0e-3c1f2b4a5d6e";
    const B: &str = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";

    fn acquire(
        l: &mut LeaseRecord,
        d: Option<u64>,
        p: Option<&str>,
        now: SystemTime,
    ) -> SResult<LeaseOutcome> {
        apply(
            l,
            LeaseAction::Acquire {
                duration: d,
                proposed: p.map(str::to_string),
            },
            now,
        )
    }

    #[test]
    fn timed_lease_expires_and_can_be_reacquired() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut l = LeaseRecord::default();
        assert_eq!(acquire(&mut l, Some(15), Some(A), t0).unwrap().status, 201);
        assert_eq!(state(&l, t0 + Duration::from_secs(14)), LeaseState::Leased);
        assert_eq!(state(&l, t0 + Duration::from_secs(15)), LeaseState::Expired);
        let e = acquire(&mut l, Some(15), Some(B), t0).unwrap_err();
        assert_eq!(e.code, ErrorCode::LeaseAlreadyPresent);
        let t1 = t0 + Duration::from_secs(16);
        assert!(check_write(&l, None, t1).is_ok());
        acquire(&mut l, None, Some(B), t1).unwrap();
        assert_eq!(l.id.as_deref(), Some(B));
        assert_eq!(
            check_write(&l, None, t1).unwrap_err().code,
            ErrorCode::LeaseIdMissing
        );
        assert_eq!(
            check_write(&l, Some(A), t1).unwrap_err().code,
            ErrorCode::LeaseIdMismatchWithBlobOperation
        );
        assert!(check_write(&l, Some(B), t1).is_ok());
    }

    #[test]
    fn break_period_then_broken_then_release() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(5_000);
        let mut l = LeaseRecord::default();
        acquire(&mut l, Some(60), Some(A), t0).unwrap();
        let o = apply(&mut l, LeaseAction::Break { period: Some(10) }, t0).unwrap();
        assert_eq!((o.status, o.lease_time), (202, Some(10)));
        assert_eq!(state(&l, t0 + Duration::from_secs(9)), LeaseState::Breaking);
        let e = apply(&mut l, LeaseAction::Renew { id: A.into() }, t0).unwrap_err();
        assert_eq!(e.code, ErrorCode::LeaseIsBrokenAndCannotBeRenewed);
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(state(&l, t1), LeaseState::Broken);
        assert!(check_write(&l, None, t1).is_ok());
        let e = apply(&mut l, LeaseAction::Release { id: B.into() }, t1).unwrap_err();
        assert_eq!(e.code, ErrorCode::LeaseIdMismatchWithLeaseOperation);
        apply(&mut l, LeaseAction::Release { id: A.into() }, t1).unwrap();
        assert_eq!(state(&l, t1), LeaseState::Available);
        let e = apply(&mut l, LeaseAction::Break { period: None }, t1).unwrap_err();
        assert_eq!(e.code, ErrorCode::LeaseNotPresentWithLeaseOperation);
    }

    #[test]
    fn change_requires_a_matching_id() {
        let t0 = SystemTime::UNIX_EPOCH;
        let mut l = LeaseRecord::default();
        acquire(&mut l, None, Some(A), t0).unwrap();
        let e = apply(
            &mut l,
            LeaseAction::Change {
                id: B.into(),
                proposed: "11111111-2222-4333-8444-555555555555".into(),
            },
            t0,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::LeaseIdMismatchWithLeaseOperation);
        let o = apply(
            &mut l,
            LeaseAction::Change {
                id: A.into(),
                proposed: B.into(),
            },
            t0,
        )
        .unwrap();
        assert_eq!(o.lease_id.as_deref(), Some(B));
        assert!(check_write(&l, Some(B), t0).is_ok());
    }
}
