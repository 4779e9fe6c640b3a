//! Which ExternalSecrets read which remote names: a reverse index kept current from the ExternalSecret
//! watch, so a rotation event finds its ExternalSecrets without scanning. Pure data; no I/O.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use crate::api::ExternalSecret;

/// The forms under which a name is indexed and looked up: the name itself, and for ARNs the
/// resource name (Secrets Manager ARNs with and without their 6-character suffix, SSM parameter paths).
/// Leading slashes and SSM `:version`/`:label` selectors are ignored, so a full ARN, a partial ARN and
/// a plain name of the same secret meet.
pub fn name_forms(raw: &str) -> Vec<String> {
    let mut forms = Vec::new();
    let mut push = |s: &str| {
        let s = s.trim_start_matches('/');
        if !s.is_empty() && !forms.iter().any(|f| f == s) {
            forms.push(s.to_owned());
        }
    };
    if let Some(rest) = raw.strip_prefix("arn:") {
        // arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE (RESOURCE may hold ':' or '/')
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        if let [_, service, _, _, resource] = parts.as_slice() {
            match *service {
                "secretsmanager" => {
                    let name = resource.strip_prefix("secret:").unwrap_or(resource);
                    push(name);
                    // Full ARNs end in "-" + 6 random characters; partial ARNs do not.
                    if let Some((base, suffix)) = name.rsplit_once('-')
                        && suffix.len() == 6
                        && suffix.chars().all(|c| c.is_ascii_alphanumeric())
                    {
                        push(base);
                    }
                }
                "ssm" => push(resource.strip_prefix("parameter").unwrap_or(resource)),
                _ => push(resource),
            }
        }
        return forms;
    }
    push(raw);
    // SSM selectors: "name:3" or "name:label".
    if let Some((base, _selector)) = raw.rsplit_once(':') {
        push(base);
    }
    forms
}

/// Every remote name an ExternalSecret reads through `data` and `dataFrom.extract` (finds: `Finder`).
fn referenced_names(es: &ExternalSecret) -> HashSet<String> {
    let refs = es
        .spec
        .data
        .iter()
        .map(|d| d.remote_ref.key.as_str())
        .chain(
            es.spec
                .data_from
                .iter()
                .filter_map(|f| f.extract.as_ref())
                .map(|r| r.key.as_str()),
        );
    refs.flat_map(name_forms).collect()
}

/// A `dataFrom.find` with a name: an event for a name it matches refreshes its ExternalSecret. A find
/// by tags alone cannot be judged from a name and is left to its refresh interval.
struct Finder {
    name: crate::goregex::GoRegex,
    path: Option<String>,
}

impl Finder {
    fn of(es: &ExternalSecret) -> Vec<Finder> {
        es.spec
            .data_from
            .iter()
            .filter_map(|f| f.find.as_ref())
            .filter_map(|f| {
                Some(Finder {
                    name: crate::goregex::GoRegex::new(&f.name.as_ref()?.regexp).ok()?,
                    path: f.path.clone(),
                })
            })
            .collect()
    }

    /// `form` comes without its leading '/' (see `name_forms`): a Parameter Store name had one.
    fn matches(&self, form: &str) -> bool {
        let slashed = format!("/{form}");
        [form, slashed.as_str()].iter().any(|name| {
            self.path.as_deref().is_none_or(|p| name.starts_with(p)) && self.name.is_match(name)
        })
    }
}

#[derive(Default)]
struct Inner {
    by_name: HashMap<String, HashSet<ObjectRef<ExternalSecret>>>,
    names_of: HashMap<ObjectRef<ExternalSecret>, HashSet<String>>,
    finders: HashMap<ObjectRef<ExternalSecret>, Vec<Finder>>,
    /// Objects seen during a relist, to drop the ones that disappeared while the watch was down.
    relisting: Option<HashSet<ObjectRef<ExternalSecret>>>,
}

impl Inner {
    fn remove(&mut self, key: &ObjectRef<ExternalSecret>) {
        self.finders.remove(key);
        for name in self.names_of.remove(key).unwrap_or_default() {
            if let Some(set) = self.by_name.get_mut(&name) {
                set.remove(key);
                if set.is_empty() {
                    self.by_name.remove(&name);
                }
            }
        }
    }

    fn upsert(&mut self, es: &ExternalSecret) {
        let key = ObjectRef::from_obj(es);
        self.remove(&key);
        let names = referenced_names(es);
        for name in &names {
            self.by_name
                .entry(name.clone())
                .or_default()
                .insert(key.clone());
        }
        let finders = Finder::of(es);
        if !finders.is_empty() {
            self.finders.insert(key.clone(), finders);
        }
        self.names_of.insert(key, names);
    }
}

#[derive(Default)]
pub struct ReferenceIndex {
    inner: RwLock<Inner>,
}

impl ReferenceIndex {
    /// Feed one watcher event (call it for every event of the ExternalSecret watch).
    pub fn observe(&self, event: &watcher::Event<ExternalSecret>) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        match event {
            watcher::Event::Init => inner.relisting = Some(HashSet::new()),
            watcher::Event::InitApply(es) => {
                inner.upsert(es);
                if let Some(seen) = inner.relisting.as_mut() {
                    seen.insert(ObjectRef::from_obj(es));
                }
            }
            watcher::Event::InitDone => {
                if let Some(seen) = inner.relisting.take() {
                    let gone: Vec<_> = inner
                        .names_of
                        .keys()
                        .filter(|k| !seen.contains(*k))
                        .cloned()
                        .collect();
                    for key in gone {
                        inner.remove(&key);
                    }
                }
            }
            watcher::Event::Apply(es) => inner.upsert(es),
            watcher::Event::Delete(es) => inner.remove(&ObjectRef::from_obj(es)),
        }
    }

    /// ExternalSecrets that read `name` (any form), also when a store `prefix` is prepended to keys.
    pub fn lookup(&self, name: &str, prefixes: &[String]) -> HashSet<ObjectRef<ExternalSecret>> {
        let Ok(inner) = self.inner.read() else {
            return HashSet::new();
        };
        let mut found = HashSet::new();
        for form in name_forms(name) {
            let mut candidates = vec![form.clone()];
            for prefix in prefixes {
                if let Some(stripped) = form.strip_prefix(prefix.trim_start_matches('/')) {
                    candidates.push(stripped.trim_start_matches('/').to_owned());
                }
            }
            for candidate in candidates {
                if let Some(set) = inner.by_name.get(&candidate) {
                    found.extend(set.iter().cloned());
                }
            }
            // Finds ignore the store prefix, as in ESO: the event's name is what they match.
            for (key, finders) in &inner.finders {
                if finders.iter().any(|f| f.matches(&form)) {
                    found.insert(key.clone());
                }
            }
        }
        found
    }

    pub fn len(&self) -> usize {
        self.inner
            .read()
            .map(|i| i.names_of.len())
            .unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es(name: &str, keys: &[&str]) -> ExternalSecret {
        let data: Vec<String> = keys
            .iter()
            .map(|k| format!("{{secretKey: k{}, remoteRef: {{key: '{k}'}}}}", k.len()))
            .collect();
        serde_yaml_ng::from_str(&format!(
            "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: {name}, namespace: ns}}\nspec:\n  data: [{}]",
            data.join(", ")
        ))
        .unwrap()
    }

    fn names(found: HashSet<ObjectRef<ExternalSecret>>) -> Vec<String> {
        let mut v: Vec<String> = found.into_iter().map(|r| r.name).collect();
        v.sort();
        v
    }

    #[test]
    fn full_arn_partial_arn_and_plain_name_all_match() {
        let index = ReferenceIndex::default();
        index.observe(&watcher::Event::Apply(es("by-name", &["app/db"])));
        index.observe(&watcher::Event::Apply(es(
            "by-partial-arn",
            &["arn:aws:secretsmanager:us-east-1:123:secret:app/db"],
        )));
        index.observe(&watcher::Event::Apply(es(
            "by-full-arn",
            &["arn:aws:secretsmanager:us-east-1:123:secret:app/db-AbCdEf"],
        )));
        index.observe(&watcher::Event::Apply(es("other", &["app/dbx"])));
        for event_name in [
            "app/db",
            "arn:aws:secretsmanager:us-east-1:123:secret:app/db-AbCdEf",
            "arn:aws:secretsmanager:us-east-1:123:secret:app/db",
        ] {
            assert_eq!(
                names(index.lookup(event_name, &[])),
                vec!["by-full-arn", "by-name", "by-partial-arn"],
                "{event_name}"
            );
        }
    }

    #[test]
    fn ssm_paths_versions_and_arns_match() {
        let index = ReferenceIndex::default();
        index.observe(&watcher::Event::Apply(es("plain", &["/app/db"])));
        index.observe(&watcher::Event::Apply(es("versioned", &["/app/db:3"])));
        index.observe(&watcher::Event::Apply(es("labelled", &["/app/db:prod"])));
        assert_eq!(
            names(index.lookup("arn:aws:ssm:us-east-1:123:parameter/app/db", &[])),
            vec!["labelled", "plain", "versioned"]
        );
        assert_eq!(
            names(index.lookup("/app/db", &[])),
            vec!["labelled", "plain", "versioned"]
        );
    }

    #[test]
    fn finds_by_name_and_path_are_refreshed_by_names_they_match() {
        let index = ReferenceIndex::default();
        let find = |name: &str, find: &str| -> ExternalSecret {
            serde_yaml_ng::from_str(&format!(
                "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: {name}, namespace: ns}}\nspec:\n  dataFrom: [{{find: {find}}}]"
            ))
            .unwrap()
        };
        index.observe(&watcher::Event::Apply(find(
            "team",
            "{name: {regexp: '^team-a/'}}",
        )));
        index.observe(&watcher::Event::Apply(find(
            "params",
            "{path: /app, name: {regexp: db}}",
        )));
        index.observe(&watcher::Event::Apply(find("tags", "{tags: {a: b}}")));
        assert_eq!(
            names(index.lookup(
                "arn:aws:secretsmanager:us-east-1:123:secret:team-a/db-AbCdEf",
                &[]
            )),
            vec!["team"]
        );
        assert_eq!(names(index.lookup("/app/db", &[])), vec!["params"]);
        assert_eq!(
            names(index.lookup("arn:aws:ssm:us-east-1:123:parameter/app/db", &[])),
            vec!["params"]
        );
        assert!(index.lookup("/other/db", &[]).is_empty());
        index.observe(&watcher::Event::Delete(find("team", "{name: {regexp: x}}")));
        assert!(index.lookup("team-a/db", &[]).is_empty());
    }

    #[test]
    fn store_prefixes_are_stripped_from_event_names() {
        let index = ReferenceIndex::default();
        index.observe(&watcher::Event::Apply(es("e", &["db"])));
        assert!(index.lookup("team-a/db", &[]).is_empty());
        assert_eq!(
            names(index.lookup("team-a/db", &["team-a/".into()])),
            vec!["e"]
        );
    }

    #[test]
    fn edits_deletes_and_relists_keep_the_index_exact() {
        let index = ReferenceIndex::default();
        index.observe(&watcher::Event::Apply(es("e", &["a"])));
        index.observe(&watcher::Event::Apply(es("e", &["b"])));
        assert!(
            index.lookup("a", &[]).is_empty(),
            "an edited ExternalSecret no longer matches its old key"
        );
        assert_eq!(names(index.lookup("b", &[])), vec!["e"]);
        index.observe(&watcher::Event::Apply(es("gone-during-outage", &["b"])));
        index.observe(&watcher::Event::Init);
        index.observe(&watcher::Event::InitApply(es("e", &["b"])));
        index.observe(&watcher::Event::InitDone);
        assert_eq!(names(index.lookup("b", &[])), vec!["e"]);
        index.observe(&watcher::Event::Delete(es("e", &["b"])));
        assert!(index.is_empty());
    }
}
