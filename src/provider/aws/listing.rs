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
use std::time::Duration;

use indexmap::IndexMap;

// Tokio's clock: the same as std's at run time, and one tests can pause and advance.
use tokio::time::Instant;

use crate::provider::{FetchRequest, ProviderError, Versions};

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
/// Boxed strings and slices: a snapshot holds one per wanted secret (10,000 and more).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Secrets Manager: each VersionId with its staging labels (`SecretVersionsToStages`). Parameter
    /// Store: the current version number, with no labels (DescribeParameters lists none).
    pub versions: Box<[Version]>,
    /// A digest of the secret's tags, where the listing carries them (Secrets Manager).
    pub tags: Option<u64>,
}

/// One listed version of a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    /// A Secrets Manager VersionId, or a Parameter Store version number.
    pub id: Box<str>,
    /// Its staging labels (Secrets Manager), such as `AWSCURRENT`.
    pub stages: Box<[Box<str>]>,
}

impl Entry {
    /// From the listing's own shapes: `(version id, staging labels)` pairs and a tags digest. Sorted,
    /// so that the same listing decoded twice is equal (`SecretVersionsToStages` arrives as a map, in
    /// no set order).
    pub fn new(
        versions: impl IntoIterator<Item = (String, Vec<String>)>,
        tags: Option<u64>,
    ) -> Self {
        let mut versions: Vec<Version> = versions
            .into_iter()
            .map(|(id, mut stages)| {
                stages.sort_unstable();
                Version {
                    id: id.into_boxed_str(),
                    stages: stages.into_iter().map(String::into_boxed_str).collect(),
                }
            })
            .collect();
        versions.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        Self {
            versions: versions.into_boxed_slice(),
            tags,
        }
    }
}

/// One complete listing: every wanted name it saw, by the id the requests use (name or ARN).
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// When its first page was asked for: nothing it says is older than this (AWS's own listing lag aside).
    pub started: Instant,
    /// In a stable order, so a listing under way marks what it saw by position ([`Gathering`]).
    pub entries: IndexMap<Box<str>, Entry>,
}

/// A listing being gathered, page by page, as changes to the snapshot it started from: which of that
/// snapshot's entries it saw again (by position), and the entries that are new or differ. Only wanted
/// ids are kept, as they arrive. So a listing never holds every secret it pages through, nor a second
/// copy of the snapshot (at 10,000 wanted secrets that copy was 2 MB, held through most of each
/// refresh cycle on a slow listing).
pub(crate) struct Gathering {
    index: Listing,
    base: Option<Arc<Snapshot>>,
    /// `seen[i]`: entry `i` of `base` was listed again, unchanged or not.
    seen: Vec<bool>,
    changed: HashMap<Box<str>, Entry>,
}

impl Gathering {
    fn new(index: Listing, base: Option<Arc<Snapshot>>) -> Self {
        let seen = vec![false; base.as_ref().map_or(0, |b| b.entries.len())];
        Gathering {
            index,
            base,
            seen,
            changed: HashMap::new(),
        }
    }

    /// Keep `entry` (built only if kept) under each of the secret's `ids` (its name and, for Secrets
    /// Manager, its ARN) that some ExternalSecret asked about.
    pub fn keep(&mut self, ids: impl IntoIterator<Item = String>, entry: impl FnOnce() -> Entry) {
        let kept: Vec<String> = {
            let Ok(inner) = self.index.inner.lock() else {
                return;
            };
            ids.into_iter()
                .filter(|id| inner.wanted.contains_key(id.as_str()))
                .collect()
        };
        if kept.is_empty() {
            return;
        }
        let entry = entry();
        for id in kept {
            let before = self
                .base
                .as_ref()
                .and_then(|b| b.entries.get_full(id.as_str()));
            if let Some((i, _, old)) = before {
                if let Some(seen) = self.seen.get_mut(i) {
                    *seen = true;
                }
                if *old == entry {
                    // Listed twice (never expected): the last answer stands, as for any other.
                    self.changed.remove(id.as_str());
                    continue;
                }
            }
            self.changed.insert(id.into_boxed_str(), entry.clone());
        }
    }

    /// The snapshot this listing makes: the base's entries it saw again, updated and added to. The
    /// base is taken over in place when no reader holds it any more; otherwise what was seen of it is
    /// copied.
    fn into_entries(self) -> IndexMap<Box<str>, Entry> {
        let Gathering {
            base,
            seen,
            changed,
            ..
        } = self;
        let mut entries = match base.map(Arc::try_unwrap) {
            None => IndexMap::with_capacity(changed.len()),
            Some(Ok(snapshot)) => {
                let mut entries = snapshot.entries;
                let mut position = 0;
                entries.retain(|_, _| {
                    let keep = seen.get(position).copied().unwrap_or(false);
                    position += 1;
                    keep
                });
                entries
            }
            Some(Err(shared)) => shared
                .entries
                .iter()
                .zip(&seen)
                .filter(|(_, seen)| **seen)
                .map(|((id, entry), _)| (id.clone(), entry.clone()))
                .collect(),
        };
        entries.extend(changed);
        // Taken over in place, the table keeps its size when wanted ids go (deleted ExternalSecrets).
        if entries.capacity() > 2 * entries.len() + 64 {
            entries.shrink_to_fit();
        }
        entries
    }
}

#[derive(Default)]
struct Inner {
    snapshot: Option<Arc<Snapshot>>,
    /// Remote ids some ExternalSecret asked about, with when it last asked.
    wanted: HashMap<Box<str>, Instant>,
    /// When the last listing failed, and how long to wait before the next try.
    failed: Option<(Instant, Duration)>,
    /// When the listing in flight started, if one is.
    running_since: Option<Instant>,
    /// How long the last complete listing took: the guess for when the one in flight ends.
    last_took: Duration,
}

/// What [`Listing::fresh`] can say now.
#[derive(Debug)]
pub(crate) enum Lookup {
    Ready(Arc<Snapshot>),
    /// A listing is under way; ask again after about this long.
    Pending(Duration),
    /// Listing failed now or recently: read directly.
    Failed,
}

/// The listing index of one (identity, service). Cheap to clone; clones share the index.
#[derive(Clone, Default)]
pub(crate) struct Listing {
    inner: Arc<Mutex<Inner>>,
}

/// Shortest and longest wait suggested while a listing runs: long enough that deferred refreshes do
/// not spin, short enough that they follow the listing closely.
const PENDING_MIN: Duration = Duration::from_millis(200);
const PENDING_MAX: Duration = Duration::from_secs(5);
/// A listing running longer than this is taken as lost and may be started again.
const STUCK_LISTING: Duration = Duration::from_secs(900);

impl Listing {
    /// The last complete snapshot, whatever its age, without listing. Remembers `ids` as wanted.
    pub fn last(&self, ids: &[String]) -> Option<Arc<Snapshot>> {
        let mut inner = self.inner.lock().ok()?;
        want(&mut inner, ids);
        inner.snapshot.clone()
    }

    /// A snapshot whose listing started at most `max_age` ago, or, when there is none, a listing
    /// started in the background by `list` (called with the longest prefix every wanted id shares, for
    /// a server-side filter, and the [`Gathering`] it fills and returns) and `Pending` until it ends.
    /// One listing runs at a time, on its own task, so no caller holds a reconcile slot while it pages. `Failed` when listing failed within
    /// [`FAILED_LISTING_HOLD`] ([`DENIED_LISTING_HOLD`] when denied).
    pub fn fresh<F, Fut>(&self, ids: &[String], max_age: Duration, list: F) -> Lookup
    where
        F: FnOnce(String, Gathering) -> Fut,
        Fut: Future<Output = Result<Gathering, ProviderError>> + Send + 'static,
    {
        let Ok(mut inner) = self.inner.lock() else {
            return Lookup::Failed;
        };
        want(&mut inner, ids);
        if let Some(snapshot) = inner
            .snapshot
            .clone()
            .filter(|s| s.started.elapsed() <= max_age)
        {
            return Lookup::Ready(snapshot);
        }
        // A listing task cannot be cancelled and does not panic; the bound only guards against the
        // impossible, so that a lost task could never stop change detection for good.
        if let Some(since) = inner.running_since.filter(|s| s.elapsed() < STUCK_LISTING) {
            let left = inner.last_took.saturating_sub(since.elapsed());
            return Lookup::Pending(left.clamp(PENDING_MIN, PENDING_MAX));
        }
        if inner.failed.is_some_and(|(at, hold)| at.elapsed() < hold) {
            return Lookup::Failed;
        }
        inner.wanted.retain(|_, asked| asked.elapsed() < WANTED_FOR);
        let started = Instant::now();
        inner.running_since = Some(started);
        let gathering = Gathering::new(self.clone(), inner.snapshot.clone());
        let prefix = common_prefix(inner.wanted.keys().map(|id| &**id));
        let wait = inner.last_took.clamp(PENDING_MIN, PENDING_MAX);
        // Unlocked before `list` runs: the listing takes this lock for every secret it keeps.
        drop(inner);
        let listing = list(prefix, gathering);
        let index = self.clone();
        tokio::spawn(async move { index.finish(started, listing.await) });
        Lookup::Pending(wait)
    }

    /// [`SecretProvider::versions`](crate::provider::SecretProvider::versions) for one service:
    /// `ids[i]` is the remote id of `requests[i]`, `token` reads a request's token off its entry.
    pub fn versions<F, Fut>(
        &self,
        requests: &[FetchRequest],
        ids: &[String],
        max_age: Option<Duration>,
        list: F,
        token: impl Fn(&Entry, &FetchRequest) -> Option<String>,
    ) -> Versions
    where
        F: FnOnce(String, Gathering) -> Fut,
        Fut: Future<Output = Result<Gathering, ProviderError>> + Send + 'static,
    {
        let snapshot = match max_age {
            None => self.last(ids),
            Some(age) => match self.fresh(ids, age, list) {
                Lookup::Ready(snapshot) => Some(snapshot),
                Lookup::Pending(wait) => return Versions::Pending(wait),
                Lookup::Failed => None,
            },
        };
        let Some(snapshot) = snapshot else {
            return Versions::Unknown;
        };
        Versions::Known(
            requests
                .iter()
                .zip(ids)
                .map(|(request, id)| {
                    snapshot
                        .entries
                        .get(id.as_str())
                        .and_then(|entry| token(entry, request))
                })
                .collect(),
        )
    }

    /// Store a listing's answer. A listing that failed, even halfway, changes nothing: the last complete
    /// snapshot stays, and listing waits for the hold.
    fn finish(&self, started: Instant, listed: Result<Gathering, ProviderError>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        // A listing given up as stuck ([`STUCK_LISTING`]) that answers after all: a newer one has
        // started since, and an older answer must not replace what that one brings.
        if inner.running_since != Some(started) {
            return;
        }
        inner.running_since = None;
        let gathering = match listed {
            Ok(gathering) => gathering,
            Err(error) => {
                let hold = if matches!(error, ProviderError::AccessDenied { .. }) {
                    DENIED_LISTING_HOLD
                } else {
                    FAILED_LISTING_HOLD
                };
                inner.failed = Some((Instant::now(), hold));
                return;
            }
        };
        // Given up here, so that the base is (usually) no longer shared and is updated in place.
        inner.snapshot = None;
        let entries = gathering.into_entries();
        inner.last_took = started.elapsed();
        inner.snapshot = Some(Arc::new(Snapshot { started, entries }));
        inner.failed = None;
    }
}

fn want(inner: &mut Inner, ids: &[String]) {
    let now = Instant::now();
    for id in ids {
        match inner.wanted.get_mut(id.as_str()) {
            Some(asked) => *asked = now,
            None => {
                inner.wanted.insert(id.as_str().into(), now);
            }
        }
    }
}

/// The longest prefix all `ids` share (empty for none), cut at a character boundary.
fn common_prefix<'a>(mut ids: impl Iterator<Item = &'a str>) -> String {
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
        Entry::new([(version.to_owned(), vec!["AWSCURRENT".to_owned()])], None)
    }

    /// What a service's listing does with each secret it pages through.
    fn listed(mut into: Gathering, secrets: Vec<(Vec<String>, Entry)>) -> Gathering {
        for (ids, entry) in secrets {
            into.keep(ids, || entry);
        }
        into
    }

    #[test]
    fn the_filter_prefix_is_what_every_wanted_id_shares() {
        let names = ids(&["app/prod/db", "app/prod/api", "app/prod/é1", "app/prod/é2"]);
        let prefix = |names: &[String]| common_prefix(names.iter().map(String::as_str));
        assert_eq!(prefix(&names), "app/prod/");
        assert_eq!(prefix(&ids(&["é1", "é2"])), "é");
        assert_eq!(prefix(&ids(&["a", "b"])), "");
        assert_eq!(prefix(&ids(&["only"])), "only");
        assert_eq!(prefix(&ids(&[])), "");
    }

    /// Ask until the background listing has answered.
    async fn settled<F, Fut>(
        listing: &Listing,
        ids: &[String],
        max_age: Duration,
        list: F,
    ) -> Lookup
    where
        F: Fn(String, Gathering) -> Fut,
        Fut: Future<Output = Result<Gathering, ProviderError>> + Send + 'static,
    {
        loop {
            match listing.fresh(ids, max_age, &list) {
                Lookup::Pending(wait) => {
                    assert!((PENDING_MIN..=PENDING_MAX).contains(&wait));
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_background_listing_serves_every_caller_and_keeps_only_wanted_names() {
        let listing = Listing::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let list = |prefix: String, into: Gathering| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                assert_eq!(prefix, "app/", "the prefix every wanted name shares");
                tokio::time::sleep(Duration::from_millis(50)).await;
                let mut into = listed(
                    into,
                    vec![
                        (ids(&["app/a", "arn:a"]), entry("v1")),
                        (ids(&["app/b"]), entry("v2")),
                    ],
                );
                into.keep(ids(&["app/other"]), || {
                    panic!("built though nobody asked for it")
                });
                Ok(into)
            }
        };
        let max_age = Duration::from_secs(60);
        let (a, b) = (ids(&["app/a"]), ids(&["app/b"]));
        assert!(
            listing.last(&b).is_none(),
            "nothing listed yet; app/b is now wanted"
        );
        assert!(matches!(
            listing.fresh(&a, max_age, list),
            Lookup::Pending(_)
        ));
        // A second caller while the listing runs waits for it instead of listing too.
        assert!(matches!(
            listing.fresh(&b, max_age, list),
            Lookup::Pending(_)
        ));
        let Lookup::Ready(one) = settled(&listing, &a, max_age, list).await else {
            panic!("listed")
        };
        let Lookup::Ready(two) = settled(&listing, &b, max_age, list).await else {
            panic!("listed")
        };
        assert_eq!(calls.load(Ordering::SeqCst), 1);
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
    }

    #[tokio::test(start_paused = true)]
    async fn an_old_snapshot_is_listed_again_and_a_failed_listing_keeps_the_last_one() {
        let listing = Listing::default();
        let names = ids(&["k"]);
        let ok = |_: String, into| async { Ok(listed(into, vec![(ids(&["k"]), entry("v1"))])) };
        // Cut off halfway: a page was gathered, the next one throttled.
        let throttled = |_: String, into| async {
            let _half = listed(into, vec![(ids(&["k"]), entry("v2"))]);
            Err::<Gathering, _>(ProviderError::Throttled {
                key: "ListSecrets".into(),
                retry_after: None,
            })
        };
        let minute = Duration::from_secs(60);
        let Lookup::Ready(first) = settled(&listing, &names, minute, ok).await else {
            panic!("listed")
        };
        // Younger than max_age: no new listing.
        let Lookup::Ready(again) = listing.fresh(&names, minute, throttled) else {
            panic!("served from the snapshot")
        };
        assert!(Arc::ptr_eq(&first, &again));
        // Too old: listed again, and that listing fails (wholly or halfway, the same answer):
        // unknown, and the last snapshot stays.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let tiny = Duration::from_millis(1);
        assert!(matches!(
            settled(&listing, &names, tiny, throttled).await,
            Lookup::Failed
        ));
        assert!(Arc::ptr_eq(&listing.last(&names).unwrap(), &first));
        // Within the hold after a failure, no listing is attempted.
        let never = |_: String, _| -> std::future::Ready<Result<Gathering, ProviderError>> {
            panic!("listed during the hold")
        };
        assert!(matches!(listing.fresh(&names, tiny, never), Lookup::Failed));
        // After the hold, listing resumes.
        tokio::time::sleep(FAILED_LISTING_HOLD).await;
        let ten = Duration::from_secs(10);
        let Lookup::Ready(renewed) = settled(&listing, &names, ten, ok).await else {
            panic!("listed again")
        };
        assert!(!Arc::ptr_eq(&renewed, &first));
    }

    #[tokio::test(start_paused = true)]
    async fn a_listing_replaces_the_last_snapshot_by_what_it_saw() {
        let listing = Listing::default();
        let names = ids(&["a", "b", "c", "d"]);
        let max_age = Duration::from_secs(1);
        let first = |_: String, into| async {
            let secrets = ["a", "b", "c"].map(|n| (ids(&[n]), entry("v1")));
            Ok(listed(into, secrets.into()))
        };
        let Lookup::Ready(before) = settled(&listing, &names, max_age, first).await else {
            panic!("listed")
        };
        // Unchanged a, changed b, c gone, d new; a reader still holds the first snapshot.
        let second = |_: String, into| async {
            let secrets = vec![
                (ids(&["d"]), entry("v1")),
                (ids(&["b"]), entry("v2")),
                (ids(&["a"]), entry("v1")),
            ];
            Ok(listed(into, secrets))
        };
        tokio::time::sleep(max_age * 2).await;
        let Lookup::Ready(after) = settled(&listing, &names, max_age, second).await else {
            panic!("listed again")
        };
        let view = |s: &Snapshot| {
            let mut view: Vec<(String, String)> = s
                .entries
                .iter()
                .map(|(k, e)| (k.to_string(), e.versions[0].id.to_string()))
                .collect();
            view.sort();
            view
        };
        let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
            p.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
        };
        assert_eq!(
            view(&after),
            pairs(&[("a", "v1"), ("b", "v2"), ("d", "v1")])
        );
        assert_eq!(
            view(&before),
            pairs(&[("a", "v1"), ("b", "v1"), ("c", "v1")])
        );
        // Nobody holds `after` but the index: the next listing takes it over in place.
        drop((before, after));
        tokio::time::sleep(max_age * 2).await;
        let third = |_: String, into| async {
            let secrets = ["a", "b", "d"].map(|n| (ids(&[n]), entry("v3")));
            Ok(listed(into, secrets.into()))
        };
        let Lookup::Ready(last) = settled(&listing, &names, max_age, third).await else {
            panic!("listed a third time")
        };
        assert_eq!(view(&last), pairs(&[("a", "v3"), ("b", "v3"), ("d", "v3")]));
    }

    #[test]
    fn entries_are_equal_whatever_order_the_listing_gave() {
        let one = Entry::new(
            [
                ("b".to_owned(), vec!["X".to_owned()]),
                (
                    "a".to_owned(),
                    vec!["AWSCURRENT".to_owned(), "Y".to_owned()],
                ),
            ],
            Some(1),
        );
        let two = Entry::new(
            [
                (
                    "a".to_owned(),
                    vec!["Y".to_owned(), "AWSCURRENT".to_owned()],
                ),
                ("b".to_owned(), vec!["X".to_owned()]),
            ],
            Some(1),
        );
        assert_eq!(one, two);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_listing_that_answers_late_does_not_replace_a_newer_one() {
        let listing = Listing::default();
        let names = ids(&["k"]);
        let max_age = Duration::from_secs(1);
        let stuck = |_: String, into| async {
            tokio::time::sleep(STUCK_LISTING * 2).await;
            Ok(listed(into, vec![(ids(&["k"]), entry("old"))]))
        };
        assert!(matches!(
            listing.fresh(&names, max_age, stuck),
            Lookup::Pending(_)
        ));
        tokio::time::sleep(STUCK_LISTING + Duration::from_secs(1)).await;
        let quick = |_: String, into| async { Ok(listed(into, vec![(ids(&["k"]), entry("new"))])) };
        let Lookup::Ready(newer) = settled(&listing, &names, max_age, quick).await else {
            panic!("listed again after the stuck one was given up")
        };
        assert_eq!(newer.entries.get("k"), Some(&entry("new")));
        tokio::time::sleep(STUCK_LISTING).await;
        let last = listing.last(&names).unwrap();
        assert!(Arc::ptr_eq(&last, &newer), "the late answer was dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_denied_listing_is_held_longer() {
        let listing = Listing::default();
        let names = ids(&["k"]);
        let denied = |_: String, _| async {
            Err::<Gathering, _>(ProviderError::AccessDenied {
                key: "ListSecrets".into(),
                detail: "no".into(),
            })
        };
        let tiny = Duration::from_millis(1);
        assert!(matches!(
            settled(&listing, &names, tiny, denied).await,
            Lookup::Failed
        ));
        tokio::time::sleep(FAILED_LISTING_HOLD * 2).await;
        assert!(matches!(
            listing.fresh(&names, tiny, denied),
            Lookup::Failed
        ));
        tokio::time::sleep(DENIED_LISTING_HOLD).await;
        assert!(matches!(
            listing.fresh(&names, tiny, denied),
            Lookup::Pending(_)
        ));
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
