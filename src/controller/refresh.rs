//! When to fetch (pure): `refreshPolicy` × `refreshInterval` × what happened since the last sync.
//! ESO's rules (ExternalSecret API reference, "refreshPolicy"; its controller's shouldRefresh), plus ours:
//! a missing or edited Secret is repaired under every policy, and Periodic also answers store edits
//! and rotation events at once instead of waiting for the interval.
//!
//! | what happened                     | `"0"` | OnChange | CreatedOnce | Periodic |
//! |-----------------------------------|-------|----------|-------------|----------|
//! | never synced                      | sync  | sync     | sync        | sync     |
//! | Secret deleted or edited          | sync  | sync     | sync        | sync     |
//! | last attempt failed (retry)       | sync  | sync     | sync        | sync     |
//! | spec, labels or annotations edit  | —     | sync     | —           | sync     |
//! | store edited                      | —     | —        | —           | sync     |
//! | rotation event                    | —     | —        | —           | sync     |
//! | interval elapsed                  | —     | —        | —           | sync     |
//! | operator restart                  | —     | —        | —           | sync     |
//! | generated credential to renew     | sync  | sync     | —           | sync     |
//!
//! `"0"` is `refreshInterval: 0` with the default policy (Periodic); with OnChange or CreatedOnce the
//! interval plays no part.
//!
//! An ExternalSecret with generators differs in two Periodic cells: an operator restart or a store edit
//! does not sync it before its interval has passed since `status.refreshTime` (each sync generates new
//! values; ESO counts the interval from refreshTime too).
//!
//! Generated credentials that expire (ECR tokens: 12 hours on AWS) are renewed before they expire,
//! whatever `refreshInterval` says ([`renewal_delay`]); CreatedOnce alone keeps what it created.

use std::time::Duration;

use crate::api::RefreshPolicy;

/// What is known at this reconcile, relative to the last successful sync.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Since {
    /// Synced before, by this process or (status.syncedResourceVersion) by an earlier one.
    pub synced_before: bool,
    /// This process has synced it (false right after a restart).
    pub synced_by_us: bool,
    /// The Secret is gone, or someone else changed it since our write.
    pub secret_disturbed: bool,
    /// The last attempt failed; this reconcile is its retry.
    pub retrying: bool,
    /// Generation, labels or annotations differ from the synced ones.
    pub spec_changed: bool,
    /// The store's generation (or the store itself) differs from the synced one.
    pub store_changed: bool,
    /// A rotation event named one of its sources.
    pub event: bool,
    /// Time since the last successful sync by this process.
    pub elapsed: Option<Duration>,
    /// Time left until a generated credential in the Secret must be renewed ([`renewal_delay`]);
    /// zero when due. None when nothing generated expires.
    pub renew_in: Option<Duration>,
    /// The Secret holds generated values (a generator entry), written this long ago
    /// (`status.refreshTime`). A sync would generate new ones, so, as in ESO, Periodic waits for its
    /// interval after an operator restart or a store edit instead of syncing at once.
    pub generated_age: Option<Duration>,
}

/// Whether the refresh timer is the only reason this sync is due: synced by this process, nothing
/// disturbed, edited, retried, announced or expiring. Only such a refresh may be skipped by change
/// detection; any other reason fetches.
pub fn timer_only(since: &Since) -> bool {
    since.synced_by_us
        && !since.secret_disturbed
        && !since.retrying
        && !since.spec_changed
        && !since.store_changed
        && !since.event
        && since.renew_in.is_none()
        && since.generated_age.is_none()
}

/// Never renew sooner than this after a generation: an answer that is already expired (or a clock
/// gone wrong) must not turn into a hot loop of provider calls.
pub const MIN_RENEWAL: Duration = Duration::from_secs(5);

/// How long after generating a credential that expires in `lifetime_left` it is renewed: once two
/// thirds of that lifetime have passed, so a token is never served in its last third and a failed
/// renewal has that third to be retried (for a 12-hour ECR token: renewed after 8 hours, 4 hours
/// ahead of its expiry). At least [`MIN_RENEWAL`].
pub fn renewal_delay(lifetime_left: Duration) -> Duration {
    (lifetime_left * 2 / 3).max(MIN_RENEWAL)
}

/// The decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    Now,
    /// Not yet: check again after this long.
    After(Duration),
    /// Not until something on the table above happens.
    Never,
}

/// Whether to fetch now. `interval` None is `refreshInterval: "0"`.
pub fn decide(policy: RefreshPolicy, interval: Option<Duration>, since: Since) -> Due {
    if !since.synced_before || since.secret_disturbed || since.retrying {
        return Due::Now;
    }
    let renew_in = since
        .renew_in
        .filter(|_| policy != RefreshPolicy::CreatedOnce);
    if renew_in == Some(Duration::ZERO) {
        return Due::Now;
    }
    match (by_policy(policy, interval, since), renew_in) {
        (due, None) | (due @ Due::Now, _) => due,
        (Due::After(wait), Some(renew)) => Due::After(wait.min(renew)),
        (Due::Never, Some(renew)) => Due::After(renew),
    }
}

/// The table without the renewal row.
fn by_policy(policy: RefreshPolicy, interval: Option<Duration>, since: Since) -> Due {
    match (policy, interval) {
        (RefreshPolicy::CreatedOnce, _) | (RefreshPolicy::Periodic, None) => Due::Never,
        (RefreshPolicy::OnChange, _) if since.spec_changed => Due::Now,
        (RefreshPolicy::OnChange, _) => Due::Never,
        (RefreshPolicy::Periodic, Some(every)) => {
            // A sync replaces generated values: only the interval (ESO's rule) and an edit may.
            let (store_changed, restarted, elapsed) = match since.generated_age {
                Some(age) => (false, false, since.elapsed.or(Some(age))),
                None => (since.store_changed, !since.synced_by_us, since.elapsed),
            };
            if since.spec_changed || store_changed || since.event || restarted {
                return Due::Now;
            }
            match elapsed {
                Some(elapsed) if elapsed < every => Due::After(every - elapsed),
                _ => Due::Now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_secs(5);

    /// The four columns of the table: (name, policy, interval).
    fn columns() -> [(&'static str, RefreshPolicy, Option<Duration>); 4] {
        [
            ("0", RefreshPolicy::Periodic, None),
            ("OnChange", RefreshPolicy::OnChange, Some(EVERY)),
            ("CreatedOnce", RefreshPolicy::CreatedOnce, Some(EVERY)),
            ("Periodic", RefreshPolicy::Periodic, Some(EVERY)),
        ]
    }

    /// A synced object in its steady state, half-way through its interval.
    fn steady() -> Since {
        Since {
            synced_before: true,
            synced_by_us: true,
            elapsed: Some(Duration::from_secs(2)),
            ..Since::default()
        }
    }

    #[test]
    fn only_a_timer_refresh_of_our_own_sync_may_be_skipped() {
        let timer = Since {
            elapsed: Some(EVERY),
            ..steady()
        };
        assert!(timer_only(&timer));
        let others: [(&str, Since); 9] = [
            ("never synced", Since::default()),
            (
                "after a restart",
                Since {
                    synced_by_us: false,
                    ..timer
                },
            ),
            (
                "Secret disturbed",
                Since {
                    secret_disturbed: true,
                    ..timer
                },
            ),
            (
                "retry",
                Since {
                    retrying: true,
                    ..timer
                },
            ),
            (
                "spec edit",
                Since {
                    spec_changed: true,
                    ..timer
                },
            ),
            (
                "store edit",
                Since {
                    store_changed: true,
                    ..timer
                },
            ),
            (
                "rotation event",
                Since {
                    event: true,
                    ..timer
                },
            ),
            (
                "renewal",
                Since {
                    renew_in: Some(Duration::ZERO),
                    ..timer
                },
            ),
            (
                "generated",
                Since {
                    generated_age: Some(EVERY),
                    ..timer
                },
            ),
        ];
        for (what, since) in others {
            assert!(!timer_only(&since), "{what} must fetch");
        }
    }

    /// Every row of the module's table, cell by cell.
    #[test]
    fn the_policy_table_cell_by_cell() {
        let rows: [(&str, Since, [bool; 4]); 10] = [
            ("never synced", Since::default(), [true, true, true, true]),
            (
                "Secret deleted or edited",
                Since {
                    secret_disturbed: true,
                    ..steady()
                },
                [true, true, true, true],
            ),
            (
                "retry",
                Since {
                    retrying: true,
                    ..steady()
                },
                [true, true, true, true],
            ),
            (
                "spec edit",
                Since {
                    spec_changed: true,
                    ..steady()
                },
                [false, true, false, true],
            ),
            (
                "store edit",
                Since {
                    store_changed: true,
                    ..steady()
                },
                [false, false, false, true],
            ),
            (
                "rotation event",
                Since {
                    event: true,
                    ..steady()
                },
                [false, false, false, true],
            ),
            (
                "interval elapsed",
                Since {
                    elapsed: Some(EVERY),
                    ..steady()
                },
                [false, false, false, true],
            ),
            (
                "operator restart",
                Since {
                    synced_by_us: false,
                    elapsed: None,
                    ..steady()
                },
                [false, false, false, true],
            ),
            (
                "generated credential to renew",
                Since {
                    renew_in: Some(Duration::ZERO),
                    ..steady()
                },
                [true, true, false, true],
            ),
            ("nothing happened", steady(), [false, false, false, false]),
        ];
        for (row, since, expected) in rows {
            for ((column, policy, interval), want) in columns().into_iter().zip(expected) {
                let got = decide(policy, interval, since);
                assert_eq!(got == Due::Now, want, "{row} × {column}: {got:?}");
            }
        }
    }

    /// The README's refresh-policy table says what the code does, cell by cell.
    #[test]
    fn the_readme_table_matches_the_code() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("| what happened | \"0\" | OnChange | CreatedOnce | Periodic |")
            .expect("the table in README.md");
        let rows: Vec<&str> = readme[start..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .collect();
        assert_eq!(rows.len(), 9, "{rows:?}");
        for row in rows {
            let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
            let since = match cells[0] {
                "never synced" => Since::default(),
                "Secret deleted or edited" => Since {
                    secret_disturbed: true,
                    ..steady()
                },
                "last attempt failed (retry)" => Since {
                    retrying: true,
                    ..steady()
                },
                "spec, labels or annotations edit" => Since {
                    spec_changed: true,
                    ..steady()
                },
                "store edited" => Since {
                    store_changed: true,
                    ..steady()
                },
                "rotation event" => Since {
                    event: true,
                    ..steady()
                },
                "interval elapsed" => Since {
                    elapsed: Some(EVERY),
                    ..steady()
                },
                "operator restart" => Since {
                    synced_by_us: false,
                    elapsed: None,
                    ..steady()
                },
                "generated credential to renew" => Since {
                    renew_in: Some(Duration::ZERO),
                    ..steady()
                },
                other => panic!("README row {other:?} has no meaning in the code"),
            };
            for ((column, policy, interval), cell) in columns().into_iter().zip(&cells[1..]) {
                let syncs = decide(policy, interval, since) == Due::Now;
                assert_eq!(
                    *cell == "sync",
                    syncs,
                    "README row {:?} × {column}",
                    cells[0]
                );
            }
        }
    }

    #[test]
    fn periodic_waits_for_what_is_left_of_its_interval() {
        assert_eq!(
            decide(RefreshPolicy::Periodic, Some(EVERY), steady()),
            Due::After(Duration::from_secs(3))
        );
        assert_eq!(
            decide(RefreshPolicy::OnChange, Some(EVERY), steady()),
            Due::Never,
            "OnChange never refreshes on a timer"
        );
    }

    #[test]
    fn a_credential_is_renewed_after_two_thirds_of_its_lifetime_and_never_in_a_hot_loop() {
        let hours = |h: u64| Duration::from_secs(h * 3600);
        assert_eq!(renewal_delay(hours(12)), hours(8));
        assert_eq!(
            renewal_delay(Duration::from_secs(15)),
            Duration::from_secs(10)
        );
        // Before expiry for any lifetime above the floor.
        for secs in [8, 9, 60, 3600, 43_200, 86_400] {
            let life = Duration::from_secs(secs);
            assert!(renewal_delay(life) < life, "{life:?}");
        }
        // Already expired, or nearly: the floor, not zero.
        assert_eq!(renewal_delay(Duration::ZERO), MIN_RENEWAL);
        assert_eq!(renewal_delay(Duration::from_secs(1)), MIN_RENEWAL);
    }

    #[test]
    fn renewal_comes_before_a_longer_refresh_interval_and_replaces_never() {
        // A 24h interval half gone, a token due in 2h: wake up in 2h.
        let day = Duration::from_secs(86_400);
        let since = Since {
            elapsed: Some(day / 2),
            renew_in: Some(Duration::from_secs(7200)),
            ..steady()
        };
        assert_eq!(
            decide(RefreshPolicy::Periodic, Some(day), since),
            Due::After(Duration::from_secs(7200))
        );
        // A short interval still wins.
        let early = Since {
            renew_in: Some(Duration::from_secs(7200)),
            ..steady()
        };
        assert_eq!(
            decide(RefreshPolicy::Periodic, Some(EVERY), early),
            Due::After(Duration::from_secs(3))
        );
        // "0" and OnChange would never refresh: the renewal wakes them; CreatedOnce stays put.
        assert_eq!(
            decide(RefreshPolicy::Periodic, None, since),
            Due::After(Duration::from_secs(7200))
        );
        assert_eq!(
            decide(RefreshPolicy::OnChange, Some(EVERY), since),
            Due::After(Duration::from_secs(7200))
        );
        assert_eq!(
            decide(RefreshPolicy::CreatedOnce, Some(EVERY), since),
            Due::Never
        );
    }

    #[test]
    fn generated_values_are_not_replaced_by_a_restart_or_a_store_edit_before_the_interval() {
        let hour = Duration::from_secs(3600);
        let generated = |age: u64| Since {
            synced_by_us: false,
            elapsed: None,
            generated_age: Some(Duration::from_secs(age)),
            ..steady()
        };
        // Restarted 20 minutes after the password was written: wait the 40 minutes left.
        assert_eq!(
            decide(RefreshPolicy::Periodic, Some(hour), generated(1200)),
            Due::After(Duration::from_secs(2400))
        );
        // ...and sync once the interval has passed.
        assert_eq!(
            decide(RefreshPolicy::Periodic, Some(hour), generated(3600)),
            Due::Now
        );
        let store_edit = Since {
            store_changed: true,
            generated_age: Some(Duration::from_secs(60)),
            ..steady()
        };
        assert!(matches!(
            decide(RefreshPolicy::Periodic, Some(hour), store_edit),
            Due::After(_)
        ));
        // An edit of the ExternalSecret, a deleted Secret or a retry still sync at once.
        for since in [
            Since {
                spec_changed: true,
                ..generated(60)
            },
            Since {
                secret_disturbed: true,
                ..generated(60)
            },
            Since {
                retrying: true,
                ..generated(60)
            },
        ] {
            assert_eq!(decide(RefreshPolicy::Periodic, Some(hour), since), Due::Now);
        }
    }
}
