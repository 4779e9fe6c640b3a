//! Prometheus metrics, named as ESO names them where the meaning is the same, so ESO dashboards work.
//! Labels are bounded: object identity, condition, provider call and error category — never a value.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabels {
    pub namespace: String,
    pub name: String,
    pub condition: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderCallLabels {
    pub provider: String,
    pub call: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub namespace: String,
    pub name: String,
    pub key: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub source: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DetailTypeLabels {
    pub detail_type: String,
}

/// Most distinct detail-types the unrecognised-events counter keeps apart; later ones count as
/// "other". AWS's detail-types per service are few; the cap guards against forged messages.
const MAX_DETAIL_TYPES: usize = 32;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub resource: String,
    pub verb: String,
}

/// A monotonic counter exposed without the `_total` suffix, because ESO's metric names lack it.
#[derive(Debug, Default)]
pub struct EsoCounter(AtomicU64);

impl EsoCounter {
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl TypedMetric for EsoCounter {
    const TYPE: MetricType = MetricType::Unknown;
}

impl EncodeMetric for EsoCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&(i64::try_from(self.get()).unwrap_or(i64::MAX)))
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Unknown
    }
}

pub struct Metrics {
    registry: Registry,
    /// Every per-ExternalSecret series, one record per object (`ObjectSeries`).
    objects: std::sync::Arc<ObjectSeries>,
    ces_status_condition: Family<ConditionLabels, Gauge>,
    reconcile_seconds: Histogram,
    provider_calls: Family<ProviderCallLabels, EsoCounter>,
    provider_calls_total: Family<ProviderCallLabels, Counter>,
    fetches_skipped: Counter,
    kube_writes: Family<WriteLabels, Counter>,
    workload_restarts: Family<KindLabels, Counter>,
    events: Family<EventLabels, Counter>,
    events_unrecognised: Family<DetailTypeLabels, Counter>,
    detail_types_seen: std::sync::Mutex<std::collections::BTreeSet<String>>,
    event_to_sync: Histogram,
    source_last_rotated: Family<SourceLabels, Gauge>,
    source_last_changed: Family<SourceLabels, Gauge>,
    sqs_last_receive: Gauge,
    sqs_oldest_message_age: Gauge,
    /// Length of the last exposition, to size the next one.
    last_encoded_len: std::sync::atomic::AtomicUsize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let objects = std::sync::Arc::new(ObjectSeries::default());
        let ces_status_condition = Family::<ConditionLabels, Gauge>::default();
        let reconcile_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let provider_calls = Family::<ProviderCallLabels, EsoCounter>::default();
        let provider_calls_total = Family::<ProviderCallLabels, Counter>::default();
        let fetches_skipped = Counter::default();
        let kube_writes = Family::<WriteLabels, Counter>::default();
        let workload_restarts = Family::<KindLabels, Counter>::default();
        let events = Family::<EventLabels, Counter>::default();
        let events_unrecognised = Family::<DetailTypeLabels, Counter>::default();
        let event_to_sync = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let source_last_rotated = Family::<SourceLabels, Gauge>::default();
        let source_last_changed = Family::<SourceLabels, Gauge>::default();
        let sqs_last_receive = Gauge::default();
        let sqs_oldest_message_age = Gauge::default();
        registry.register_collector(Box::new(objects.clone()));
        registry.register(
            "secret_sync_sqs_last_receive_timestamp_seconds",
            "When the SQS consumer last received successfully, empty or not (its start until the first) (Unix time)",
            sqs_last_receive.clone(),
        );
        registry.register(
            "secret_sync_sqs_oldest_message_age_seconds",
            "Age of the oldest message in the SQS consumer's last receive (0 when it was empty)",
            sqs_oldest_message_age.clone(),
        );
        registry.register(
            "secret_sync_source_last_rotated_timestamp_seconds",
            "When the remote source of an ExternalSecret was last rotated (Unix time)",
            source_last_rotated.clone(),
        );
        registry.register(
            "secret_sync_source_last_changed_timestamp_seconds",
            "When the remote source of an ExternalSecret last changed (Unix time)",
            source_last_changed.clone(),
        );
        registry.register(
            "clusterexternalsecret_status_condition",
            "ClusterExternalSecret condition status (1 for the current status)",
            ces_status_condition.clone(),
        );
        registry.register(
            "secret_sync_reconcile_duration_seconds",
            "Distribution of reconcile durations",
            reconcile_seconds.clone(),
        );
        registry.register(
            "externalsecret_provider_api_calls_count",
            "Calls to provider APIs, by provider, call and status",
            provider_calls.clone(),
        );
        // The same counts under our own name, an OpenMetrics counter (`_total`).
        registry.register(
            "secret_sync_provider_api_calls",
            "Calls to provider APIs, by provider, call and status",
            provider_calls_total.clone(),
        );
        registry.register(
            "secret_sync_fetches_skipped",
            "Source documents not fetched at a refresh because change detection showed them unchanged",
            fetches_skipped.clone(),
        );
        registry.register(
            "secret_sync_kube_writes",
            "Writes to the Kubernetes API, by resource and verb",
            kube_writes.clone(),
        );
        registry.register(
            "secret_sync_workload_restarts",
            "Rolling restarts of workloads whose Secret data changed, by workload kind",
            workload_restarts.clone(),
        );
        registry.register(
            "secret_sync_events",
            "Rotation events by source (sqs, webhook) and outcome (received, matched, unmatched, ignored, unrecognised, malformed, ...)",
            events.clone(),
        );
        registry.register(
            "secret_sync_events_unrecognised",
            "Well-formed events that no row of the event table describes, by detail-type (Secrets Manager and SSM ones; \"other\" for the rest)",
            events_unrecognised.clone(),
        );
        registry.register(
            "secret_sync_event_to_sync_seconds",
            "From a rotation event's arrival to the end of the sync it triggered",
            event_to_sync.clone(),
        );
        Metrics {
            registry,
            events,
            events_unrecognised,
            detail_types_seen: std::sync::Mutex::default(),
            event_to_sync,
            source_last_rotated,
            source_last_changed,
            sqs_last_receive,
            sqs_oldest_message_age,
            last_encoded_len: std::sync::atomic::AtomicUsize::new(0),
            objects,
            ces_status_condition,
            reconcile_seconds,
            provider_calls,
            provider_calls_total,
            fetches_skipped,
            kube_writes,
            workload_restarts,
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        // Sized from the last scrape: at 10,000 ExternalSecrets the text is about 8 MB, and growing
        // a String to that by doubling touches twice the memory and copies it all along the way.
        let last = self.last_encoded_len.load(Ordering::Relaxed);
        let mut out = String::with_capacity(last + last / 16);
        // Writing to a String cannot fail; an error here would be a bug in the encoder.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        self.last_encoded_len.store(out.len(), Ordering::Relaxed);
        out
    }

    pub fn reconciled(
        &self,
        namespace: &str,
        name: &str,
        seconds: f64,
        error_category: Option<&str>,
    ) {
        self.reconcile_seconds.observe(seconds);
        self.objects.update(namespace, name, |o| {
            o.sync_calls += 1;
            o.reconcile_duration = Some(seconds);
            if let Some(category) = error_category {
                match o.errors.iter_mut().find(|(c, _)| c.as_ref() == category) {
                    Some((_, n)) => *n += 1,
                    None => o.errors.push((category.into(), 1)),
                }
            }
        });
    }

    /// The Ready condition of an ExternalSecret (ESO's `externalsecret_status_condition`). ESO's
    /// convention: the label pair for the current status is 1, the other is 0.
    pub fn ready(&self, namespace: &str, name: &str, is_true: bool) {
        self.objects
            .update(namespace, name, |o| o.ready = Some(is_true));
    }

    /// A ClusterExternalSecret's Ready condition (ESO's `clusterexternalsecret_status_condition`;
    /// cluster-scoped, so `namespace` is empty).
    pub fn ces_ready(&self, name: &str, is_true: bool) {
        set_condition(&self.ces_status_condition, "", name, "Ready", is_true);
    }

    /// Forget a deleted ClusterExternalSecret's series.
    pub fn forget_ces(&self, name: &str) {
        forget_ready(&self.ces_status_condition, "", name);
    }

    /// Forget an ExternalSecret that was deleted (all its series), so label sets do not grow
    /// without bound.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.objects.forget(namespace, name);
    }

    /// `n` calls to a provider API, counted under ESO's name and ours.
    pub fn provider_call(&self, provider: &str, call: &str, status: &str, n: u64) {
        let labels = ProviderCallLabels {
            provider: provider.to_owned(),
            call: call.to_owned(),
            status: status.to_owned(),
        };
        self.provider_calls.get_or_create(&labels).inc_by(n);
        self.provider_calls_total.get_or_create(&labels).inc_by(n);
    }

    /// `n` source documents a refresh did not fetch: change detection showed them unchanged.
    pub fn fetch_skipped(&self, n: u64) {
        self.fetches_skipped.inc_by(n);
    }

    pub fn fetches_skipped(&self) -> u64 {
        self.fetches_skipped.get()
    }

    pub fn provider_calls(&self, provider: &str, call: &str, status: &str) -> u64 {
        self.provider_calls
            .get_or_create(&ProviderCallLabels {
                provider: provider.to_owned(),
                call: call.to_owned(),
                status: status.to_owned(),
            })
            .get()
    }

    pub fn kube_write(&self, resource: &str, verb: &str) {
        self.kube_writes
            .get_or_create(&WriteLabels {
                resource: resource.to_owned(),
                verb: verb.to_owned(),
            })
            .inc();
    }

    pub fn event(&self, source: &str, outcome: &str) {
        self.events
            .get_or_create(&EventLabels {
                source: source.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// An event no row of the event table describes; `detail_type` is already a bounded label.
    pub fn unrecognised_event(&self, detail_type: &str) {
        let label = {
            // A poisoned lock only means another thread panicked mid-insert; the set is still usable.
            let mut seen = self
                .detail_types_seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if seen.contains(detail_type) || seen.len() < MAX_DETAIL_TYPES {
                seen.insert(detail_type.to_owned());
                detail_type
            } else {
                "other"
            }
        };
        self.events_unrecognised
            .get_or_create(&DetailTypeLabels {
                detail_type: label.to_owned(),
            })
            .inc();
    }

    pub fn unrecognised_events(&self, detail_type: &str) -> u64 {
        self.events_unrecognised
            .get_or_create(&DetailTypeLabels {
                detail_type: detail_type.to_owned(),
            })
            .get()
    }

    pub fn events(&self, source: &str, outcome: &str) -> u64 {
        self.events
            .get_or_create(&EventLabels {
                source: source.to_owned(),
                outcome: outcome.to_owned(),
            })
            .get()
    }

    pub fn source_times(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        last_rotated: Option<std::time::SystemTime>,
        last_changed: Option<std::time::SystemTime>,
    ) {
        let labels = SourceLabels {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key: key.to_owned(),
        };
        let unix = unix_seconds;
        if let Some(t) = last_rotated {
            self.source_last_rotated.get_or_create(&labels).set(unix(t));
        }
        if let Some(t) = last_changed {
            self.source_last_changed.get_or_create(&labels).set(unix(t));
        }
    }

    /// A reconcile that fetched and ended Ready.
    pub fn synced_ok(&self, namespace: &str, name: &str, at: std::time::SystemTime) {
        self.objects
            .update(namespace, name, |o| o.last_success = Some(unix_seconds(at)));
    }

    /// `None`: no periodic refresh (CreatedOnce, OnChange, `"0"`), exported as 0.
    pub fn refresh_interval(
        &self,
        namespace: &str,
        name: &str,
        every: Option<std::time::Duration>,
    ) {
        let seconds = every.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.objects
            .update(namespace, name, |o| o.refresh_interval = Some(seconds));
    }

    /// `None` drops the series, so the overdue alert stops for an ExternalSecret that no longer asks.
    pub fn max_age(&self, namespace: &str, name: &str, max_age: Option<std::time::Duration>) {
        let seconds = max_age.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.objects
            .update(namespace, name, |o| o.max_age = seconds);
    }

    /// A successful ReceiveMessage (or the consumer's start), and the age of the oldest message it
    /// returned (0 for an empty receive).
    pub fn sqs_received(&self, at: std::time::SystemTime, oldest_age: std::time::Duration) {
        self.sqs_last_receive.set(unix_seconds(at));
        self.sqs_oldest_message_age
            .set(i64::try_from(oldest_age.as_secs()).unwrap_or(i64::MAX));
    }

    pub fn event_synced(&self, seconds: f64) {
        self.event_to_sync.observe(seconds);
    }

    pub fn kube_writes(&self, resource: &str, verb: &str) -> u64 {
        self.kube_writes
            .get_or_create(&WriteLabels {
                resource: resource.to_owned(),
                verb: verb.to_owned(),
            })
            .get()
    }
}

impl Metrics {
    pub fn workload_restart(&self, kind: &str) {
        self.workload_restarts
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    pub fn workload_restarts(&self, kind: &str) -> u64 {
        self.workload_restarts
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .get()
    }
}

fn set_condition(
    family: &Family<ConditionLabels, Gauge>,
    namespace: &str,
    name: &str,
    condition: &str,
    is_true: bool,
) {
    for (status, value) in [("True", i64::from(is_true)), ("False", i64::from(!is_true))] {
        family
            .get_or_create(&ConditionLabels {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                condition: condition.to_owned(),
                status: status.to_owned(),
            })
            .set(value);
    }
}

fn forget_ready(family: &Family<ConditionLabels, Gauge>, namespace: &str, name: &str) {
    for status in ["True", "False"] {
        family.remove(&ConditionLabels {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            condition: "Ready".to_owned(),
            status: status.to_owned(),
        });
    }
}

/// The series of one ExternalSecret. `None`: the series is not exported.
#[derive(Debug, Default)]
struct ObjectValues {
    /// `externalsecret_sync_calls`: reconciles.
    sync_calls: u64,
    /// `externalsecret_sync_calls_error`: failed reconciles by error category (a bounded set).
    errors: Vec<(Box<str>, u64)>,
    /// `externalsecret_status_condition{condition="Ready"}`.
    ready: Option<bool>,
    /// `externalsecret_reconcile_duration`: the last reconcile, in seconds.
    reconcile_duration: Option<f64>,
    /// `secret_sync_externalsecret_last_success_timestamp_seconds` (Unix time).
    last_success: Option<i64>,
    /// `secret_sync_externalsecret_refresh_interval_seconds` (0: no periodic refresh).
    refresh_interval: Option<i64>,
    /// `secret_sync_externalsecret_max_age_seconds`.
    max_age: Option<i64>,
}

/// The per-ExternalSecret series, kept as one record per object and written out at scrape time.
///
/// Why not a `Family` per metric: a family holds its own copy of the label strings for every series,
/// and the seven metrics below (eight series with Ready's True and False) cost 970 bytes an
/// ExternalSecret, 9.7 MB at 10,000 (docs/memory.md). One record keyed by namespace and name holds
/// the same numbers; the exposition is the same text.
#[derive(Debug, Default)]
struct ObjectSeries(std::sync::Mutex<ObjectMap>);

/// Namespace and name to series (boxed: the table is sized for growth, so slots stay small).
type ObjectMap = std::collections::HashMap<(Box<str>, Box<str>), Box<ObjectValues>>;

/// A gauge of `ObjectValues`: name, help, value.
type ObjectGauge = (&'static str, &'static str, fn(&ObjectValues) -> Option<i64>);

impl ObjectSeries {
    fn objects(&self) -> std::sync::MutexGuard<'_, ObjectMap> {
        // A poisoned lock only means another thread panicked mid-update; the numbers are still usable.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update(&self, namespace: &str, name: &str, f: impl FnOnce(&mut ObjectValues)) {
        let mut objects = self.objects();
        let key = (Box::from(namespace), Box::from(name));
        f(objects.entry(key).or_default());
    }

    fn forget(&self, namespace: &str, name: &str) {
        self.objects()
            .remove(&(Box::from(namespace), Box::from(name)));
    }
}

impl prometheus_client::collector::Collector for ObjectSeries {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let objects = self.objects();
        let labels = |(namespace, name): &(Box<str>, Box<str>)| {
            [
                ("namespace", namespace.to_string()),
                ("name", name.to_string()),
            ]
        };
        // Help texts end with a period, as `Registry::register` writes them.
        let mut family = encoder.encode_descriptor(
            "externalsecret_sync_calls",
            "Reconciles of an ExternalSecret.",
            None,
            MetricType::Counter,
        )?;
        for (key, o) in objects.iter().filter(|(_, o)| o.sync_calls > 0) {
            ConstCounter::new(o.sync_calls).encode(family.encode_family(&labels(key))?)?;
        }
        let mut family = encoder.encode_descriptor(
            "externalsecret_sync_calls_error",
            "Reconciles of an ExternalSecret that failed, by error category.",
            None,
            MetricType::Unknown,
        )?;
        for (key, o) in objects.iter() {
            for (category, n) in &o.errors {
                let [namespace, name] = labels(key);
                let labels = [namespace, name, ("category", category.to_string())];
                family
                    .encode_family(&labels)?
                    .encode_gauge(&i64::try_from(*n).unwrap_or(i64::MAX))?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "externalsecret_status_condition",
            "ExternalSecret condition status (1 for the current status).",
            None,
            MetricType::Gauge,
        )?;
        for (key, o) in objects.iter() {
            let Some(ready) = o.ready else { continue };
            for (status, value) in [("True", ready), ("False", !ready)] {
                let [namespace, name] = labels(key);
                let labels = [
                    namespace,
                    name,
                    ("condition", "Ready".to_owned()),
                    ("status", status.to_owned()),
                ];
                ConstGauge::new(i64::from(value)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "externalsecret_reconcile_duration",
            "Duration of the last reconcile of an ExternalSecret, in seconds.",
            None,
            MetricType::Gauge,
        )?;
        for (key, o) in objects.iter() {
            if let Some(seconds) = o.reconcile_duration {
                ConstGauge::new(seconds).encode(family.encode_family(&labels(key))?)?;
            }
        }
        // What the chart's alert rules need and ESO does not export: staleness is judged against
        // each ExternalSecret's own refresh interval, rotation age against its own max-age.
        let gauges: [ObjectGauge; 3] = [
            (
                "secret_sync_externalsecret_last_success_timestamp_seconds",
                "When an ExternalSecret last synced successfully, Ready (Unix time).",
                |o| o.last_success,
            ),
            (
                "secret_sync_externalsecret_refresh_interval_seconds",
                "The periodic refresh interval of an ExternalSecret (0: no periodic refresh).",
                |o| o.refresh_interval,
            ),
            (
                "secret_sync_externalsecret_max_age_seconds",
                "The secret-sync.io/max-age of an ExternalSecret, for ExternalSecrets that set a valid one.",
                |o| o.max_age,
            ),
        ];
        for (name, help, value) in gauges {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (key, o) in objects.iter() {
                if let Some(v) = value(o) {
                    ConstGauge::new(v).encode(family.encode_family(&labels(key))?)?;
                }
            }
        }
        Ok(())
    }
}

fn unix_seconds(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eso_metric_names_are_exposed_verbatim() {
        let m = Metrics::new();
        m.reconciled("ns", "es", 0.01, Some("NotFound"));
        m.ready("ns", "es", false);
        m.provider_call("AWS/SecretsManager", "BatchGetSecretValue", "success", 2);
        let text = m.encode();
        for name in [
            "externalsecret_sync_calls_total{",
            "externalsecret_sync_calls_error{",
            "externalsecret_status_condition{",
            "externalsecret_reconcile_duration{",
            "externalsecret_provider_api_calls_count{",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
        assert!(text.contains(r#"externalsecret_status_condition{namespace="ns",name="es",condition="Ready",status="False"} 1"#), "{text}");
        // Every call under ESO's name and under ours, with the same labels and counts.
        for line in [
            r#"externalsecret_provider_api_calls_count{provider="AWS/SecretsManager",call="BatchGetSecretValue",status="success"} 2"#,
            r#"secret_sync_provider_api_calls_total{provider="AWS/SecretsManager",call="BatchGetSecretValue",status="success"} 2"#,
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        m.fetch_skipped(3);
        assert!(m.encode().contains("secret_sync_fetches_skipped_total 3"));
    }

    /// The per-object series come from one record per ExternalSecret (`ObjectSeries`); the text is
    /// what the earlier per-metric families wrote, and a deleted ExternalSecret leaves no series,
    /// its error counts included.
    #[test]
    fn per_object_series_are_exposed_and_forgotten_whole() {
        let m = Metrics::new();
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        m.reconciled("ns", "a", 0.25, None);
        m.reconciled("ns", "a", 0.5, Some("NotFound"));
        m.ready("ns", "a", true);
        m.synced_ok("ns", "a", at);
        m.refresh_interval("ns", "a", Some(std::time::Duration::from_secs(60)));
        m.max_age("ns", "a", Some(std::time::Duration::from_secs(3600)));
        m.reconciled("ns2", "b", 1.0, None);
        m.ready("ns2", "b", false);
        m.refresh_interval("ns2", "b", None);
        m.max_age("ns2", "b", None);
        m.reconciled("ns3", "c", 1.0, Some("Throttled"));
        m.ready("ns3", "c", false);
        m.max_age("ns3", "c", Some(std::time::Duration::from_secs(5)));
        m.forget("ns3", "c");
        let text = m.encode();
        let mut series: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains("name=\""))
            .collect();
        series.sort_unstable();
        assert_eq!(
            series,
            [
                r#"externalsecret_reconcile_duration{namespace="ns",name="a"} 0.5"#,
                r#"externalsecret_reconcile_duration{namespace="ns2",name="b"} 1.0"#,
                r#"externalsecret_status_condition{namespace="ns",name="a",condition="Ready",status="False"} 0"#,
                r#"externalsecret_status_condition{namespace="ns",name="a",condition="Ready",status="True"} 1"#,
                r#"externalsecret_status_condition{namespace="ns2",name="b",condition="Ready",status="False"} 1"#,
                r#"externalsecret_status_condition{namespace="ns2",name="b",condition="Ready",status="True"} 0"#,
                r#"externalsecret_sync_calls_error{namespace="ns",name="a",category="NotFound"} 1"#,
                r#"externalsecret_sync_calls_total{namespace="ns",name="a"} 2"#,
                r#"externalsecret_sync_calls_total{namespace="ns2",name="b"} 1"#,
                r#"secret_sync_externalsecret_last_success_timestamp_seconds{namespace="ns",name="a"} 1700000000"#,
                r#"secret_sync_externalsecret_max_age_seconds{namespace="ns",name="a"} 3600"#,
                r#"secret_sync_externalsecret_refresh_interval_seconds{namespace="ns",name="a"} 60"#,
                r#"secret_sync_externalsecret_refresh_interval_seconds{namespace="ns2",name="b"} 0"#,
            ]
        );
        for (family, kind) in [
            ("externalsecret_sync_calls", "counter"),
            ("externalsecret_sync_calls_error", "unknown"),
            ("externalsecret_status_condition", "gauge"),
            ("secret_sync_externalsecret_max_age_seconds", "gauge"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} {kind}\n")),
                "{family}"
            );
        }
        assert!(
            text.contains("# HELP externalsecret_sync_calls Reconciles of an ExternalSecret.\n")
        );
    }

    #[test]
    fn cluster_external_secret_ready_is_exposed_under_esos_name_and_forgotten_on_delete() {
        let m = Metrics::new();
        m.ces_ready("shared", false);
        let text = m.encode();
        assert!(text.contains(r#"clusterexternalsecret_status_condition{namespace="",name="shared",condition="Ready",status="False"} 1"#), "{text}");
        assert!(text.contains(r#"clusterexternalsecret_status_condition{namespace="",name="shared",condition="Ready",status="True"} 0"#), "{text}");
        m.forget_ces("shared");
        assert!(!m.encode().contains(r#"name="shared""#));
    }

    #[test]
    fn unrecognised_events_are_counted_by_detail_type_up_to_a_cap() {
        let m = Metrics::new();
        m.unrecognised_event("Secret Rotation Failed");
        m.unrecognised_event("Secret Rotation Failed");
        for i in 0..MAX_DETAIL_TYPES + 5 {
            m.unrecognised_event(&format!("Forged {i}"));
        }
        assert_eq!(m.unrecognised_events("Secret Rotation Failed"), 2);
        assert_eq!(m.unrecognised_events("other"), 6, "past the cap");
        let text = m.encode();
        assert!(
            text.contains(
                r#"secret_sync_events_unrecognised_total{detail_type="Secret Rotation Failed"} 2"#
            ),
            "{text}"
        );
        assert_eq!(
            text.matches("secret_sync_events_unrecognised_total{")
                .count(),
            MAX_DETAIL_TYPES + 1
        );
    }

    #[test]
    fn alerting_series_are_per_external_secret_and_forgotten_with_it() {
        let m = Metrics::new();
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        m.synced_ok("ns", "es", at);
        m.refresh_interval("ns", "es", Some(std::time::Duration::from_secs(3600)));
        m.refresh_interval("ns", "once", None);
        m.max_age("ns", "es", Some(std::time::Duration::from_secs(86_400)));
        m.sqs_received(at, std::time::Duration::from_secs(7));
        let text = m.encode();
        for line in [
            r#"secret_sync_externalsecret_last_success_timestamp_seconds{namespace="ns",name="es"} 1700000000"#,
            r#"secret_sync_externalsecret_refresh_interval_seconds{namespace="ns",name="es"} 3600"#,
            r#"secret_sync_externalsecret_refresh_interval_seconds{namespace="ns",name="once"} 0"#,
            r#"secret_sync_externalsecret_max_age_seconds{namespace="ns",name="es"} 86400"#,
            "secret_sync_sqs_last_receive_timestamp_seconds 1700000000",
            "secret_sync_sqs_oldest_message_age_seconds 7",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        m.max_age("ns", "es", None);
        assert!(
            !m.encode()
                .contains("secret_sync_externalsecret_max_age_seconds{")
        );
        m.forget("ns", "es");
        let text = m.encode();
        assert!(!text.contains(r#"name="es""#), "{text}");
    }
}
