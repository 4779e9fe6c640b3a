//! Publishes Kubernetes Events (events.k8s.io/v1) about ExternalSecrets, folding repeats into a series.
//!
//! Same Event objects as kube-runtime's `Recorder` (name `<object>.<nanos hex>`, reporting controller
//! and instance, `eventTime`), and the same 6-minute window in which a repeat of an Event becomes a
//! `series` patch instead of a new object. What differs is the memory: kube's recorder keeps a full copy
//! of every Event it published (about 2.5 KiB each, 25 MiB at 10,000 ExternalSecrets) and prunes only
//! when it publishes again. Here a repeat needs only the Event's name and count, and the cache is capped
//! at [`MAX_SERIES`] entries, the size of client-go's event-correlation LRU that ESO's recorder uses
//! (`k8s.io/client-go/tools/record/events_cache.go`, `maxLruCacheEntries`).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};

/// How long after its last occurrence a repeat still joins an Event's series (kube-runtime's value).
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// Most Events remembered for series at once; past it the least recently seen is forgotten (its
/// next repeat becomes a new Event object, which is still correct, only less compact).
pub const MAX_SERIES: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("failed to create Event {name:?}: {source}")]
    Create { name: String, source: kube::Error },
    #[error("failed to add to the series of Event {name:?}: {source}")]
    Patch { name: String, source: kube::Error },
}

impl RecorderError {
    pub fn category(&self) -> &'static str {
        match self {
            RecorderError::Create { .. } => "EventCreateFailed",
            RecorderError::Patch { .. } => "EventPatchFailed",
        }
    }
}

/// What to send for one occurrence of an Event.
#[derive(Debug, PartialEq, Eq)]
pub enum Occurrence {
    /// First time in the window: create an Event object with this name.
    New { name: String },
    /// A repeat: patch the named Event's series to this count (2 on the first repeat).
    Repeat { name: String, count: i32 },
}

struct Seen {
    name: Box<str>,
    count: i32,
    last: Instant,
}

/// The repeats window: Event identity (a hash of type, action, reason and the objects) to the Event
/// object that holds its series. Pure: the clock is passed in.
#[derive(Default)]
pub struct SeriesCache {
    seen: HashMap<u64, Seen>,
}

impl SeriesCache {
    /// Records an occurrence of the Event with identity `key` at `now`; `fresh_name` names the Event
    /// object if a new one is needed.
    pub fn occur(
        &mut self,
        key: u64,
        now: Instant,
        fresh_name: impl FnOnce() -> String,
    ) -> Occurrence {
        if let Some(seen) = self.seen.get_mut(&key)
            && now.saturating_duration_since(seen.last) < SERIES_WINDOW
        {
            seen.count = seen.count.saturating_add(1);
            seen.last = now;
            return Occurrence::Repeat {
                name: seen.name.to_string(),
                count: seen.count,
            };
        }
        if self.seen.len() >= MAX_SERIES && !self.seen.contains_key(&key) {
            self.seen
                .retain(|_, s| now.saturating_duration_since(s.last) < SERIES_WINDOW);
            if self.seen.len() >= MAX_SERIES
                && let Some(oldest) = self
                    .seen
                    .iter()
                    .min_by_key(|(_, s)| s.last)
                    .map(|(k, _)| *k)
            {
                self.seen.remove(&oldest);
            }
        }
        let name = fresh_name();
        self.seen.insert(
            key,
            Seen {
                name: name.clone().into_boxed_str(),
                count: 1,
                last: now,
            },
        );
        Occurrence::New { name }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Publishes Events for any object, as one reporter (controller name and instance).
pub struct Recorder {
    client: kube::Client,
    reporter: Reporter,
    series: Mutex<SeriesCache>,
}

impl Recorder {
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Recorder {
            client,
            reporter,
            series: Mutex::default(),
        }
    }

    /// Creates the Event in `regarding`'s namespace ("default" for cluster-scoped objects), or adds
    /// to its series if the same Event was published in the last [`SERIES_WINDOW`].
    pub async fn publish(
        &self,
        ev: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), RecorderError> {
        let now = Timestamp::now();
        let key = identity(ev, regarding);
        let occurrence = match self.series.lock() {
            Ok(mut series) => series.occur(key, Instant::now(), || {
                event_name(regarding, &self.reporter, now)
            }),
            // A poisoned cache only loses the folding of repeats.
            Err(_) => Occurrence::New {
                name: event_name(regarding, &self.reporter, now),
            },
        };
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        match occurrence {
            Occurrence::New { name } => {
                let event = new_event(ev, regarding, &self.reporter, name.clone(), now);
                events
                    .create(&PostParams::default(), &event)
                    .await
                    .map_err(|source| RecorderError::Create { name, source })?;
            }
            Occurrence::Repeat { name, count } => {
                // Everything but the series is as first created, so a merge patch of the series
                // leaves the same object as kube-runtime's full-object patch.
                let patch = K8sEvent {
                    series: Some(EventSeries {
                        count,
                        last_observed_time: MicroTime(now),
                    }),
                    ..K8sEvent::default()
                };
                events
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|source| RecorderError::Patch { name, source })?;
            }
        }
        Ok(())
    }
}

/// kube-runtime's Event identity: type, action, reason, the regarding and related objects (the
/// reporter is fixed per recorder). The note is not part of it, as in kube-runtime.
fn identity(ev: &Event, regarding: &ObjectReference) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    matches!(ev.type_, EventType::Warning).hash(&mut h);
    ev.action.hash(&mut h);
    ev.reason.hash(&mut h);
    hash_reference(regarding, &mut h);
    if let Some(related) = &ev.secondary {
        hash_reference(related, &mut h);
    }
    h.finish()
}

fn hash_reference(r: &ObjectReference, h: &mut impl Hasher) {
    (
        &r.api_version,
        &r.kind,
        &r.namespace,
        &r.name,
        &r.uid,
        &r.resource_version,
        &r.field_path,
    )
        .hash(h);
}

fn event_name(regarding: &ObjectReference, reporter: &Reporter, now: Timestamp) -> String {
    format!(
        "{}.{:x}",
        regarding.name.as_ref().unwrap_or(&reporter.controller),
        now.as_nanosecond()
    )
}

fn new_event(
    ev: &Event,
    regarding: &ObjectReference,
    reporter: &Reporter,
    name: String,
    now: Timestamp,
) -> K8sEvent {
    K8sEvent {
        action: Some(ev.action.clone()),
        reason: Some(ev.reason.clone()),
        event_time: Some(MicroTime(now)),
        regarding: Some(regarding.clone()),
        note: ev.note.clone(),
        metadata: ObjectMeta {
            namespace: regarding.namespace.clone(),
            name: Some(name),
            ..ObjectMeta::default()
        },
        reporting_controller: Some(reporter.controller.clone()),
        reporting_instance: Some(
            reporter
                .instance
                .clone()
                .unwrap_or_else(|| reporter.controller.clone()),
        ),
        type_: Some(
            match ev.type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .to_owned(),
        ),
        related: ev.secondary.clone(),
        ..K8sEvent::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(n: &str) -> impl FnOnce() -> String {
        let n = n.to_owned();
        move || n
    }

    #[test]
    fn a_repeat_within_the_window_patches_the_first_event_and_counts_from_two() {
        let mut cache = SeriesCache::default();
        let t0 = Instant::now();
        assert_eq!(
            cache.occur(7, t0, named("a.1")),
            Occurrence::New { name: "a.1".into() }
        );
        assert_eq!(
            cache.occur(7, t0 + Duration::from_secs(60), named("a.2")),
            Occurrence::Repeat {
                name: "a.1".into(),
                count: 2
            }
        );
        // The window runs from the last occurrence, not the first.
        assert_eq!(
            cache.occur(
                7,
                t0 + Duration::from_secs(60) + SERIES_WINDOW - Duration::from_secs(1),
                named("a.3")
            ),
            Occurrence::Repeat {
                name: "a.1".into(),
                count: 3
            }
        );
    }

    #[test]
    fn after_the_window_a_repeat_is_a_new_event() {
        let mut cache = SeriesCache::default();
        let t0 = Instant::now();
        cache.occur(7, t0, named("a.1"));
        assert_eq!(
            cache.occur(7, t0 + SERIES_WINDOW, named("a.2")),
            Occurrence::New { name: "a.2".into() }
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_cache_never_holds_more_than_max_series_and_forgets_the_oldest() {
        let mut cache = SeriesCache::default();
        let t0 = Instant::now();
        let total = MAX_SERIES as u64 + 10;
        for k in 0..total {
            cache.occur(k, t0 + Duration::from_millis(k), || format!("e.{k}"));
        }
        assert_eq!(cache.len(), MAX_SERIES);
        // The first ones went; the latest is still folded.
        let at = t0 + Duration::from_millis(total);
        assert_eq!(
            cache.occur(0, at, named("e.again")),
            Occurrence::New {
                name: "e.again".into()
            }
        );
        assert_eq!(
            cache.occur(total - 1, at, named("x")),
            Occurrence::Repeat {
                name: format!("e.{}", total - 1),
                count: 2
            }
        );
    }

    #[test]
    fn expired_entries_make_room_before_live_ones_are_evicted() {
        let mut cache = SeriesCache::default();
        let t0 = Instant::now();
        for k in 0..MAX_SERIES as u64 {
            cache.occur(k, t0, || format!("old.{k}"));
        }
        let later = t0 + SERIES_WINDOW;
        cache.occur(u64::MAX, later, named("new"));
        assert_eq!(cache.len(), 1, "every expired entry was dropped at once");
    }

    #[test]
    fn identity_ignores_the_note_but_not_the_reason_or_the_object() {
        let ev = |reason: &str, note: &str| Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Sync".into(),
            secondary: None,
        };
        let obj = |name: &str| ObjectReference {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            ..ObjectReference::default()
        };
        assert_eq!(
            identity(&ev("Updated", "x"), &obj("a")),
            identity(&ev("Updated", "y"), &obj("a"))
        );
        assert_ne!(
            identity(&ev("Updated", "x"), &obj("a")),
            identity(&ev("Deleted", "x"), &obj("a"))
        );
        assert_ne!(
            identity(&ev("Updated", "x"), &obj("a")),
            identity(&ev("Updated", "x"), &obj("b"))
        );
    }
}
