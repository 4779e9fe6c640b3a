// Owns the object store: objects per resource, the cluster-wide resourceVersion counter and the bounded
// event history that watches read. Must not apply API semantics (validation, patching, GC): callers do.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;

use crate::resources::Registry;

/// (group, plural): the identity of a resource regardless of version.
pub type ResKey = (String, String);
/// (namespace or "", name).
pub type ObjKey = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as recorded in history. `old` lets selector-filtered watches turn a MODIFIED
/// into ADDED/DELETED when an object starts or stops matching, as the real apiserver does.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub res: ResKey,
    pub namespace: String,
    pub kind: EventType,
    pub object: Arc<Value>,
    pub old: Option<Arc<Value>>,
}

pub struct Store {
    rv: u64,
    objects: HashMap<ResKey, BTreeMap<ObjKey, Arc<Value>>>,
    history: VecDeque<Arc<Event>>,
    history_limit: usize,
    /// resourceVersion of the newest event dropped from history; watches from before it are too old.
    evicted: u64,
    pub registry: Registry,
    /// Deletion propagation requested for objects that wait on finalizers, by uid.
    pub pending_policy: HashMap<String, String>,
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        Self {
            rv: 0,
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            evicted: 0,
            registry: Registry::default(),
            pending_policy: HashMap::new(),
        }
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// Reserves the next resourceVersion.
    pub fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    pub fn get(&self, res: &ResKey, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(res)?
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Objects of a resource, optionally in one namespace, in (namespace, name) order.
    pub fn list(&self, res: &ResKey, ns: Option<&str>) -> Vec<Arc<Value>> {
        let Some(map) = self.objects.get(res) else {
            return Vec::new();
        };
        match ns {
            Some(ns) => map
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v.clone())
                .collect(),
            None => map.values().cloned().collect(),
        }
    }

    /// All objects of every resource (for garbage collection scans).
    pub fn all_objects(&self) -> Vec<(ResKey, Arc<Value>)> {
        self.objects
            .iter()
            .flat_map(|(k, m)| m.values().map(move |v| (k.clone(), v.clone())))
            .collect()
    }

    /// Stores `object` (whose metadata.resourceVersion must already be `rv`) and records the event.
    pub fn put(
        &mut self,
        res: &ResKey,
        ns: &str,
        name: &str,
        object: Value,
        rv: u64,
    ) -> Arc<Value> {
        let object = Arc::new(object);
        let old = self
            .objects
            .entry(res.clone())
            .or_default()
            .insert((ns.to_string(), name.to_string()), object.clone());
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(Event {
            rv,
            res: res.clone(),
            namespace: ns.to_string(),
            kind,
            object: object.clone(),
            old,
        });
        object
    }

    /// Removes an object; `last` is its final state (carrying the deletion resourceVersion).
    pub fn remove(
        &mut self,
        res: &ResKey,
        ns: &str,
        name: &str,
        last: Value,
        rv: u64,
    ) -> Option<Arc<Value>> {
        let removed = self
            .objects
            .get_mut(res)?
            .remove(&(ns.to_string(), name.to_string()))?;
        let last = Arc::new(last);
        self.record(Event {
            rv,
            res: res.clone(),
            namespace: ns.to_string(),
            kind: EventType::Deleted,
            object: last.clone(),
            old: Some(removed),
        });
        Some(last)
    }

    fn record(&mut self, ev: Event) {
        self.history.push_back(Arc::new(ev));
        while self.history.len() > self.history_limit {
            if let Some(e) = self.history.pop_front() {
                self.evicted = e.rv;
            }
        }
    }

    /// Events strictly after `rv`, or Err if history no longer reaches back that far.
    pub fn events_since(&self, rv: u64) -> Result<Vec<Arc<Event>>, u64> {
        if rv < self.evicted {
            return Err(self.oldest_resumable());
        }
        let start = self.history.partition_point(|e| e.rv <= rv);
        Ok(self.history.range(start..).cloned().collect())
    }

    /// The lowest resourceVersion a watch can still resume from.
    pub fn oldest_resumable(&self) -> u64 {
        self.evicted
    }
}
