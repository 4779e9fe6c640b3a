//! Bulk change detection: one listing per (identity, service) (Secrets Manager `ListSecrets`, 100 per page;
//! Parameter Store `DescribeParameters`, 50 per page) tells every ExternalSecret of that identity which of
//! its sources have a new version, so a refresh reads only what moved. Owns when to list (at most one
//! listing in flight; a listing serves every caller that accepts its age), which names are kept (only those
//! some ExternalSecret asked about), and the fallback (a listing that fails, wholly or halfway, leaves the
//! last complete one in place and answers "unknown", which means "fetch"). How a service lists and what
//! token a request gets is the service module's.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::provider::ProviderError;

/// After a failed listing (throttled, cut off halfway), refreshes fetch directly for this long
/// before a listing is tried again, so a throttled account is not asked again by every reconcile.
const FAILED_LISTING_HOLD: Duration = Duration::from_secs(30);
/// After a denied listing (a policy without ListSecrets / DescribeParameters, as many written for ESO
/// are), this long: the policy is unlikely to change soon, and each try is a denied call in CloudTrail.
const DENIED_LISTING_HOLD: Duration = Duration::from_secs(900);
/// Names no ExternalSecret asked about for this long are no longer kept (a deleted ExternalSecret's
/// sources): longer than any refresh a listing serves, so a live name is never dropped between two asks.
const WANTED_FOR: Duration = Duration::from_secs(26 * 3600);

/// What a listing says about one remote secret: enough to tell whether a request's document changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Secrets Manager: each VersionId with its staging labels (`SecretVersionsToStages`). Parameter
    /// Store: the current version number, with no labels (DescribeParameters lists none).
    pub versions: Vec<(String, Vec<String>)>,
    /// A digest of the secret's tags, where the listing carries them (Secrets Manager).
    pub tags: Option<u64>,
}

/// One complete listing: every wanted name it saw, by the id the requests use (name or ARN).
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// When its first page was asked for: nothing it says is older than this (AWS's own listing lag aside).
    pub started: Instant,
    pub entries: HashMap<String, Entry>,
}

/// What one listed secret is called: its name and, for Secrets Manager, its ARN.
pub(crate) type Listed = (Vec<String>, Entry);

#[derive(Default)]
struct Inner {
    snapshot: Option<Arc<Snapshot>>,
    /// Remote ids some ExternalSecret asked about, with when it last asked.
    wanted: HashMap<String, Instant>,
    /// When the last listing failed, and how long to wait before the next try.
    failed: Option<(Instant, Duration)>,
}

/// The listing index of one (identity, service).
#[derive(Default)]
pub(crate) struct Listing {
    inner: Mutex<Inner>,
    /// Held while a listing runs: callers that need a newer snapshot wait for it instead of listing too.
    listing: tokio::sync::Mutex<()>,
}

impl Listing {
    /// The last complete snapshot, whatever its age, without listing. Remembers `ids` as wanted.
    pub fn last(&self, ids: &[String]) -> Option<Arc<Snapshot>> {
        let mut inner = self.inner.lock().ok()?;
        want(&mut inner, ids);
        inner.snapshot.clone()
    }

    /// A snapshot whose listing started at most `max_age` ago: the current one, or one listed now by
    /// `list` (called with the longest prefix every wanted id shares, for a server-side filter). One
    /// listing runs at a time; callers arriving meanwhile wait for it. None when listing failed now or
    /// within [`FAILED_LISTING_HOLD`] ([`DENIED_LISTING_HOLD`] when denied): the caller then fetches
    /// directly.
    pub async fn fresh<F, Fut>(
        &self,
        ids: &[String],
        max_age: Duration,
        list: F,
    ) -> Option<Arc<Snapshot>>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<Vec<Listed>, ProviderError>>,
    {
        let usable = |inner: &Inner| {
            inner
                .snapshot
                .clone()
                .filter(|s| s.started.elapsed() <= max_age)
        };
        {
            let mut inner = self.inner.lock().ok()?;
            want(&mut inner, ids);
            if let Some(snapshot) = usable(&inner) {
                return Some(snapshot);
            }
        }
        let _listing = self.listing.lock().await;
        let prefix = {
            let mut inner = self.inner.lock().ok()?;
            // Another caller may have listed while this one waited.
            if let Some(snapshot) = usable(&inner) {
                return Some(snapshot);
            }
            if inner.failed.is_some_and(|(at, hold)| at.elapsed() < hold) {
                return None;
            }
            inner.wanted.retain(|_, asked| asked.elapsed() < WANTED_FOR);
            common_prefix(inner.wanted.keys())
        };
        let started = Instant::now();
        let listed = list(prefix).await;
        let mut inner = self.inner.lock().ok()?;
        let listed = match listed {
            Ok(listed) => listed,
            Err(error) => {
                // A listing that failed, even halfway, changes nothing: the last complete one stays.
                let hold = if matches!(error, ProviderError::AccessDenied { .. }) {
                    DENIED_LISTING_HOLD
                } else {
                    FAILED_LISTING_HOLD
                };
                inner.failed = Some((Instant::now(), hold));
                return None;
            }
        };
        let mut entries = HashMap::new();
        for (ids, entry) in listed {
            for id in ids {
                if inner.wanted.contains_key(&id) {
                    entries.insert(id, entry.clone());
                }
            }
        }
        let snapshot = Arc::new(Snapshot { started, entries });
        inner.snapshot = Some(snapshot.clone());
        inner.failed = None;
        Some(snapshot)
    }
}

fn want(inner: &mut Inner, ids: &[String]) {
    let now = Instant::now();
    for id in ids {
        match inner.wanted.get_mut(id.as_str()) {
            Some(asked) => *asked = now,
            None => {
                inner.wanted.insert(id.clone(), now);
            }
        }
    }
}

/// The longest prefix all `ids` share (empty for none), cut at a character boundary.
fn common_prefix<'a>(mut ids: impl Iterator<Item = &'a String>) -> String {
    let Some(first) = ids.next() else {
        return String::new();
    };
    let mut len = first.len();
    for id in ids {
        len = first
            .char_indices()
            .zip(id.chars())
            .take_while(|((_, a), b)| a == b)
            .last()
            .map_or(0, |((i, a), _)| i + a.len_utf8())
            .min(len);
        if len == 0 {
            break;
        }
    }
    first[..len].to_owned()
}

/// A digest of tags in a stable order, for [`Entry::tags`].
pub(crate) fn tags_digest<'a>(tags: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut sorted: Vec<(&str, &str)> = tags.collect();
    sorted.sort_unstable();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sorted.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn entry(version: &str) -> Entry {
        Entry {
            versions: vec![(version.to_owned(), vec!["AWSCURRENT".to_owned()])],
            tags: None,
        }
    }

    #[test]
    fn the_filter_prefix_is_what_every_wanted_id_shares() {
        let names = ids(&["app/prod/db", "app/prod/api", "app/prod/é1", "app/prod/é2"]);
        assert_eq!(common_prefix(names.iter()), "app/prod/");
        assert_eq!(common_prefix(ids(&["é1", "é2"]).iter()), "é");
        assert_eq!(common_prefix(ids(&["a", "b"]).iter()), "");
        assert_eq!(common_prefix(ids(&["only"]).iter()), "only");
        assert_eq!(common_prefix(ids(&[]).iter()), "");
    }

    #[tokio::test]
    async fn one_listing_serves_every_caller_and_keeps_only_wanted_names() {
        let listing = Listing::default();
        let calls = AtomicUsize::new(0);
        let list = |prefix: String| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                // The first caller's listing: the second caller arrives while it runs.
                assert_eq!(prefix, "app/a");
                tokio::task::yield_now().await;
                Ok(vec![
                    (ids(&["app/a", "arn:a"]), entry("v1")),
                    (ids(&["app/b"]), entry("v2")),
                    (ids(&["app/other"]), entry("v3")),
                ])
            }
        };
        let max_age = Duration::from_secs(60);
        let (a, b) = (ids(&["app/a"]), ids(&["app/b"]));
        let (one, two) = tokio::join!(
            listing.fresh(&a, max_age, list),
            listing.fresh(&b, max_age, list)
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the second caller waited for the first listing"
        );
        let (one, two) = (one.unwrap(), two.unwrap());
        assert!(Arc::ptr_eq(&one, &two));
        assert_eq!(one.entries.get("app/a"), Some(&entry("v1")));
        assert_eq!(one.entries.get("app/b"), Some(&entry("v2")));
        assert!(
            !one.entries.contains_key("arn:a"),
            "the ARN was not asked for"
        );
        assert!(
            !one.entries.contains_key("app/other"),
            "nobody asked for it"
        );
        assert!(listing.last(&[]).is_some());
    }

    #[tokio::test]
    async fn an_old_snapshot_is_listed_again_and_a_failed_listing_keeps_the_last_one() {
        let listing = Listing::default();
        let names = ids(&["k"]);
        let ok = |_: String| async { Ok(vec![(ids(&["k"]), entry("v1"))]) };
        let first = listing
            .fresh(&names, Duration::from_secs(60), ok)
            .await
            .unwrap();
        // Younger than max_age: no new listing.
        let again = listing
            .fresh(&names, Duration::from_secs(60), |_: String| async {
                Err::<Vec<Listed>, _>(ProviderError::Throttled {
                    key: "ListSecrets".into(),
                    retry_after: None,
                })
            })
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        // Too old: listed again, and that listing fails halfway: unknown, the last snapshot stays.
        let failed = listing
            .fresh(&names, Duration::ZERO, |_: String| async {
                Err::<Vec<Listed>, _>(ProviderError::Throttled {
                    key: "ListSecrets".into(),
                    retry_after: None,
                })
            })
            .await;
        assert!(failed.is_none());
        assert!(Arc::ptr_eq(&listing.last(&names).unwrap(), &first));
        // Within the hold after a failure, no listing is attempted.
        let held = listing
            .fresh(&names, Duration::ZERO, |_: String| async {
                panic!("listed during the hold")
            })
            .await;
        assert!(held.is_none());
    }

    #[test]
    fn tag_digests_ignore_order() {
        assert_eq!(
            tags_digest([("a", "1"), ("b", "2")].into_iter()),
            tags_digest([("b", "2"), ("a", "1")].into_iter())
        );
        assert_ne!(
            tags_digest([("a", "1")].into_iter()),
            tags_digest([("a", "2")].into_iter())
        );
    }
}
