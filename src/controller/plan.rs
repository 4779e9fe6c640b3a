//! Plan step (pure): from the policies, the fetch outcome and the Secret as it is on the server, decide
//! what to write, keep, delete or refuse. No client and no I/O; `apply` only executes the plan.
//!
//! The rules (ESO's "Secret ownership and deletion" guide, plus our safety rules):
//! - A Secret is deleted, or keys removed, only on positive evidence that their source is gone
//!   (`ProviderError::is_gone`); fetch errors never reach this step, they fail the sync before it.
//!   A `dataFrom.find` matching nothing is not such evidence: when nothing else is left to write,
//!   the Secret is kept as it is (ESO would delete it under deletionPolicy Delete).
//! - `Owner` and `Orphan` own the whole `data`: keys they do not produce are removed (`prune`).
//! - `Merge` owns only its keys (one field manager per ExternalSecret) and coexists with other writers.
//! - A Secret held by another ExternalSecret is never written: the conflict is reported, not fought.
//! - `immutable: true` never overwrites a Secret it did not create; an immutable Secret whose source
//!   changed is kept as it is and reported, without a write attempt.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;

use super::apply::Change;
use super::build::DesiredData;
use crate::api::{CreationPolicy, DeletionPolicy};
use crate::provider::SecretBytes;

/// The target policies of an ExternalSecret (`spec.target`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub creation: CreationPolicy,
    pub deletion: DeletionPolicy,
    pub immutable: bool,
}

impl Policy {
    pub fn of(es: &crate::api::ExternalSecret) -> Policy {
        Policy {
            creation: es.spec.target.creation_policy,
            deletion: es.spec.target.deletion_policy,
            immutable: es.spec.target.immutable,
        }
    }
}

/// Who holds the whole data of the Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// Nobody we know of: a hand-made Secret, or one only Merge writers touch.
    Nobody,
    /// This ExternalSecret (its controller ownerReference, or its field manager on our managed-by label;
    /// also a Secret written by the old shared field manager, which we migrate).
    Us,
    /// Another ExternalSecret, named for the message.
    Other(String),
}

/// The Secret as read from the server (data included; the caller wipes it afterwards).
#[derive(Clone, Copy, Debug)]
pub struct Current<'a> {
    pub data: &'a BTreeMap<String, ByteString>,
    pub holder: &'a Holder,
    /// `immutable: true` on the server: its data can no longer change.
    pub immutable: bool,
    /// Owner/Orphan: labels, annotations and ownerReference are already what we would write.
    pub metadata_matches: bool,
    /// Data keys our own field manager owns (what a Merge writer wrote last time).
    pub our_keys: &'a [String],
    /// The old shared field manager still has an entry: migrate it away before writing.
    pub legacy_manager: bool,
}

/// What the apply step must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Leave the Secret as it is and report `Change`.
    Keep(Change),
    /// Server-side apply `data` under our field manager (creating the Secret when `create`). With
    /// `prune`, then remove every other data key (Owner/Orphan own the whole data). With
    /// `migrate_legacy`, first drop the old shared field manager's entry. `change` is what to report
    /// when the write changed something.
    Write {
        data: BTreeMap<String, SecretBytes>,
        create: bool,
        prune: bool,
        migrate_legacy: bool,
        change: Change,
    },
    /// Delete the Secret (deletionPolicy Delete, every source gone, the Secret is ours).
    Delete,
    /// Write nothing and fail the sync with this reason.
    Refuse(Refusal),
}

/// Why nothing may be written. Messages name Secrets and keys, never values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("remote key {key:?} is gone and deletionPolicy Retain keeps the Secret as it is")]
    SourceGone { key: String },
    #[error("target Secret {name:?} is held by {holder}; not writing it")]
    HeldByOther { name: String, holder: String },
    #[error(
        "target Secret {name:?} already exists and was not created by this ExternalSecret; immutable: true never overwrites existing data"
    )]
    ExistingNotOverwritten { name: String },
    #[error("target Secret {name:?} is immutable; creationPolicy Merge cannot change its keys")]
    ImmutableTarget { name: String },
    #[error(
        "every remote key is gone but Secret {name:?} was not created by this ExternalSecret; not deleting it"
    )]
    NotOurs { name: String },
}

impl Refusal {
    pub fn category(&self) -> &'static str {
        match self {
            Refusal::SourceGone { .. } => "NotFound",
            Refusal::HeldByOther { .. } | Refusal::NotOurs { .. } => "SecretOwnedByOther",
            Refusal::ExistingNotOverwritten { .. } | Refusal::ImmutableTarget { .. } => {
                "SecretImmutable"
            }
        }
    }

    /// Conflicts need a change by a person; a gone source can come back on its own, so it is retried
    /// with the ordinary backoff.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, Refusal::SourceGone { .. })
    }
}

/// Decide what to do with target Secret `name`. `current` is None when it does not exist.
pub fn plan(policy: Policy, name: &str, desired: &DesiredData, current: Option<Current>) -> Plan {
    let gone = &desired.missing_remote_keys;
    let all_gone = !gone.is_empty() && desired.data.is_empty();
    if let (Some(key), DeletionPolicy::Retain) = (gone.first(), policy.deletion) {
        return Plan::Refuse(Refusal::SourceGone { key: key.clone() });
    }
    if policy.creation == CreationPolicy::None {
        return Plan::Keep(Change::NotWritten);
    }
    // A find that matched nothing is no proof that a source is gone (a renamed tag or path would
    // look the same): with nothing else to write, the Secret stays as it is under every policy.
    if desired.empty_find && desired.data.is_empty() {
        return Plan::Keep(Change::NothingFound);
    }
    let merge = policy.creation == CreationPolicy::Merge;
    let Some(current) = current else {
        return match (all_gone, merge) {
            (true, _) => Plan::Keep(Change::AlreadyDeleted),
            // ESO: Ready with reason SecretMissing, tried again at the next refresh.
            (false, true) => Plan::Keep(Change::TargetMissing),
            (false, false) => Plan::Write {
                data: desired.data.clone(),
                create: true,
                prune: true,
                migrate_legacy: false,
                change: Change::Created,
            },
        };
    };
    if let Holder::Other(holder) = current.holder {
        return Plan::Refuse(Refusal::HeldByOther {
            name: name.to_owned(),
            holder: holder.clone(),
        });
    }
    let same = |k: &String, v: &SecretBytes| current.data.get(k).is_some_and(|c| c.0 == v.expose());
    let migrate_legacy = current.legacy_manager;

    if merge {
        let ours_unwanted = current
            .our_keys
            .iter()
            .any(|k| !desired.data.contains_key(k));
        let unchanged = desired.data.iter().all(|(k, v)| same(k, v)) && !ours_unwanted;
        return match (all_gone, unchanged && !migrate_legacy) {
            (true, _) if current.our_keys.is_empty() && !migrate_legacy => {
                Plan::Keep(Change::AlreadyDeleted)
            }
            (false, true) => Plan::Keep(Change::Unchanged),
            _ if current.immutable && !unchanged => Plan::Refuse(Refusal::ImmutableTarget {
                name: name.to_owned(),
            }),
            (gone, _) => Plan::Write {
                data: desired.data.clone(),
                create: false,
                prune: false,
                migrate_legacy,
                change: if gone {
                    Change::Deleted
                } else {
                    Change::Updated
                },
            },
        };
    }

    // Owner and Orphan: the whole data is ours.
    let ours = *current.holder == Holder::Us;
    if all_gone {
        return match policy.deletion {
            DeletionPolicy::Delete if ours => Plan::Delete,
            DeletionPolicy::Delete => Plan::Refuse(Refusal::NotOurs {
                name: name.to_owned(),
            }),
            // Merge (Retain was refused above): keep the Secret, drop every data key of a Secret we
            // hold; one we never wrote has nothing of ours, and an immutable one cannot change.
            _ if current.data.is_empty() || !ours => Plan::Keep(Change::AlreadyDeleted),
            _ if current.immutable => Plan::Keep(Change::ImmutableKept),
            _ => Plan::Write {
                data: BTreeMap::new(),
                create: false,
                prune: true,
                migrate_legacy,
                change: Change::Deleted,
            },
        };
    }
    if policy.immutable && !ours {
        return Plan::Refuse(Refusal::ExistingNotOverwritten {
            name: name.to_owned(),
        });
    }
    let data_matches =
        current.data.len() == desired.data.len() && desired.data.iter().all(|(k, v)| same(k, v));
    if current.immutable && !data_matches {
        return Plan::Keep(Change::ImmutableKept);
    }
    if data_matches && current.metadata_matches && ours && !migrate_legacy {
        return Plan::Keep(Change::Unchanged);
    }
    Plan::Write {
        data: desired.data.clone(),
        create: false,
        prune: true,
        migrate_legacy,
        change: Change::Updated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATION: [CreationPolicy; 4] = [
        CreationPolicy::Owner,
        CreationPolicy::Orphan,
        CreationPolicy::Merge,
        CreationPolicy::None,
    ];
    const DELETION: [DeletionPolicy; 3] = [
        DeletionPolicy::Retain,
        DeletionPolicy::Delete,
        DeletionPolicy::Merge,
    ];

    fn bytes(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretBytes> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), SecretBytes::from_str_value(v)))
            .collect()
    }

    fn raw(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect()
    }

    /// The fetch outcomes the planner can see (errors never get here).
    fn outcomes() -> Vec<(&'static str, DesiredData)> {
        vec![
            (
                "complete",
                DesiredData {
                    data: bytes(&[("k1", "new")]),
                    missing_remote_keys: vec![],
                    empty_find: false,
                    meta: Default::default(),
                },
            ),
            (
                "partly gone",
                DesiredData {
                    data: bytes(&[("k1", "new")]),
                    missing_remote_keys: vec!["gone".into()],
                    empty_find: false,
                    meta: Default::default(),
                },
            ),
            (
                "all gone",
                DesiredData {
                    data: BTreeMap::new(),
                    missing_remote_keys: vec!["gone".into()],
                    empty_find: false,
                    meta: Default::default(),
                },
            ),
            (
                "find matched nothing",
                DesiredData {
                    data: BTreeMap::new(),
                    missing_remote_keys: vec![],
                    empty_find: true,
                    meta: Default::default(),
                },
            ),
            (
                "find matched nothing, a key gone",
                DesiredData {
                    data: BTreeMap::new(),
                    missing_remote_keys: vec!["gone".into()],
                    empty_find: true,
                    meta: Default::default(),
                },
            ),
        ]
    }

    struct Server {
        label: &'static str,
        data: BTreeMap<String, ByteString>,
        holder: Holder,
        immutable: bool,
        metadata_matches: bool,
        our_keys: Vec<String>,
        legacy: bool,
    }

    fn servers() -> Vec<Option<Server>> {
        let s = |label, data: &[(&str, &str)], holder, immutable, our: &[&str], legacy| Server {
            label,
            data: raw(data),
            holder,
            immutable,
            metadata_matches: true,
            our_keys: our.iter().map(|k| k.to_string()).collect(),
            legacy,
        };
        let other = || Holder::Other("ExternalSecret \"other\"".into());
        vec![
            None,
            Some(s(
                "hand-made",
                &[("k1", "old"), ("x", "o")],
                Holder::Nobody,
                false,
                &[],
                false,
            )),
            Some(s(
                "hand-made immutable",
                &[("k1", "old")],
                Holder::Nobody,
                true,
                &[],
                false,
            )),
            Some(s(
                "ours, same",
                &[("k1", "new")],
                Holder::Us,
                false,
                &["k1"],
                false,
            )),
            Some(s(
                "ours, old value",
                &[("k1", "old")],
                Holder::Us,
                false,
                &["k1"],
                false,
            )),
            Some(s(
                "ours, foreign key",
                &[("k1", "new"), ("x", "o")],
                Holder::Us,
                false,
                &["k1"],
                false,
            )),
            Some(s(
                "ours, immutable, old",
                &[("k1", "old")],
                Holder::Us,
                true,
                &["k1"],
                false,
            )),
            Some(s(
                "ours, legacy manager",
                &[("k1", "new")],
                Holder::Us,
                false,
                &[],
                true,
            )),
            Some(s(
                "another ExternalSecret's",
                &[("k1", "old")],
                other(),
                false,
                &[],
                false,
            )),
            Some(s(
                "merge target with our old key",
                &[("k0", "v"), ("x", "o")],
                Holder::Nobody,
                false,
                &["k0"],
                false,
            )),
        ]
    }

    /// Every policy × outcome × server state, each checked against the rules in the module comment.
    #[test]
    fn every_combination_follows_the_rules() {
        let mut cases = 0;
        for creation in CREATION {
            for deletion in DELETION {
                for immutable in [false, true] {
                    for (outcome, desired) in outcomes() {
                        for server in servers() {
                            let policy = Policy {
                                creation,
                                deletion,
                                immutable,
                            };
                            let current = server.as_ref().map(|s| Current {
                                data: &s.data,
                                holder: &s.holder,
                                immutable: s.immutable,
                                metadata_matches: s.metadata_matches,
                                our_keys: &s.our_keys,
                                legacy_manager: s.legacy,
                            });
                            let got = plan(policy, "target", &desired, current);
                            let label = server.as_ref().map_or("absent", |s| s.label);
                            let case = format!(
                                "{creation:?}/{deletion:?}/immutable={immutable}/{outcome}/{label}: {got:?}"
                            );
                            check_rules(policy, &desired, server.as_ref(), &got, &case);
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 4 * 3 * 2 * 5 * 10);
    }

    fn check_rules(
        policy: Policy,
        desired: &DesiredData,
        server: Option<&Server>,
        got: &Plan,
        case: &str,
    ) {
        let any_gone = !desired.missing_remote_keys.is_empty();
        let all_gone = any_gone && desired.data.is_empty();
        let writes = matches!(got, Plan::Write { .. } | Plan::Delete);
        // A find matching nothing is never evidence: with nothing to write, nothing is touched.
        if desired.empty_find && desired.data.is_empty() {
            assert!(!writes, "{case}: an empty find never deletes or empties");
            if !any_gone_retain(policy, desired) && policy.creation != CreationPolicy::None {
                assert_eq!(got, &Plan::Keep(Change::NothingFound), "{case}");
            }
            return;
        }
        // Deletion and key removal need positive evidence, and a policy that asks for them.
        if matches!(got, Plan::Delete) {
            assert!(
                all_gone && policy.deletion == DeletionPolicy::Delete,
                "{case}"
            );
            assert_eq!(server.map(|s| &s.holder), Some(&Holder::Us), "{case}");
        }
        if let Plan::Write { data, prune, .. } = got {
            assert_eq!(
                data, &desired.data,
                "{case}: writes exactly the fetched data"
            );
            assert_eq!(*prune, policy.creation != CreationPolicy::Merge, "{case}");
        }
        if any_gone && policy.deletion == DeletionPolicy::Retain {
            assert!(
                matches!(got, Plan::Refuse(Refusal::SourceGone { .. })),
                "{case}"
            );
        }
        if policy.creation == CreationPolicy::None {
            assert!(!writes, "{case}");
        }
        let Some(s) = server else {
            if policy.creation == CreationPolicy::Merge
                && !all_gone
                && !any_gone_retain(policy, desired)
            {
                assert_eq!(got, &Plan::Keep(Change::TargetMissing), "{case}");
            }
            assert!(!matches!(got, Plan::Delete), "{case}: nothing to delete");
            return;
        };
        if all_gone && s.holder != Holder::Us && policy.creation != CreationPolicy::Merge {
            assert!(
                !writes,
                "{case}: a Secret we do not hold is never emptied or deleted"
            );
        }
        if let Holder::Other(_) = s.holder {
            assert!(
                !writes,
                "{case}: another ExternalSecret's Secret is never written"
            );
        }
        if policy.immutable
            && policy.creation != CreationPolicy::Merge
            && s.holder == Holder::Nobody
        {
            assert!(
                !matches!(got, Plan::Write { .. }),
                "{case}: immutable never overwrites existing data"
            );
        }
        if s.immutable {
            let changes_data = matches!(got, Plan::Write { .. })
                && !(policy.creation == CreationPolicy::Merge
                    && desired
                        .data
                        .iter()
                        .all(|(k, v)| s.data.get(k).is_some_and(|c| c.0 == v.expose())));
            assert!(
                !changes_data,
                "{case}: an immutable Secret's data is never written"
            );
        }
        if s.holder == Holder::Us
            && s.immutable
            && !all_gone
            && !any_gone_retain(policy, desired)
            && matches!(
                policy.creation,
                CreationPolicy::Owner | CreationPolicy::Orphan
            )
        {
            assert_eq!(
                got,
                &Plan::Keep(Change::ImmutableKept),
                "{case}: kept and reported, Ready"
            );
        }
    }

    fn any_gone_retain(policy: Policy, desired: &DesiredData) -> bool {
        !desired.missing_remote_keys.is_empty() && policy.deletion == DeletionPolicy::Retain
    }

    fn run(policy: Policy, desired: &DesiredData, server: &Server) -> Plan {
        plan(
            policy,
            "target",
            desired,
            Some(Current {
                data: &server.data,
                holder: &server.holder,
                immutable: server.immutable,
                metadata_matches: server.metadata_matches,
                our_keys: &server.our_keys,
                legacy_manager: server.legacy,
            }),
        )
    }

    fn policy(creation: CreationPolicy, deletion: DeletionPolicy, immutable: bool) -> Policy {
        Policy {
            creation,
            deletion,
            immutable,
        }
    }

    fn server(data: &[(&str, &str)], holder: Holder) -> Server {
        Server {
            label: "",
            data: raw(data),
            holder,
            immutable: false,
            metadata_matches: true,
            our_keys: vec![],
            legacy: false,
        }
    }

    #[test]
    fn owner_adopting_a_hand_made_secret_prunes_foreign_keys() {
        let desired = DesiredData {
            data: bytes(&[("username", "u"), ("password", "p")]),
            missing_remote_keys: vec![],
            empty_find: false,
            meta: Default::default(),
        };
        let s = server(&[("username", "old"), ("access-key", "ak")], Holder::Nobody);
        for creation in [CreationPolicy::Owner, CreationPolicy::Orphan] {
            let got = run(
                policy(creation, DeletionPolicy::Retain, false),
                &desired,
                &s,
            );
            assert!(
                matches!(
                    got,
                    Plan::Write {
                        prune: true,
                        create: false,
                        ..
                    }
                ),
                "{got:?}"
            );
        }
    }

    #[test]
    fn a_key_added_by_hand_to_our_secret_is_removed() {
        let desired = DesiredData {
            data: bytes(&[("k", "v")]),
            missing_remote_keys: vec![],
            empty_find: false,
            meta: Default::default(),
        };
        let s = server(&[("k", "v"), ("extra", "x")], Holder::Us);
        let got = run(
            policy(CreationPolicy::Orphan, DeletionPolicy::Retain, false),
            &desired,
            &s,
        );
        assert!(matches!(got, Plan::Write { prune: true, .. }), "{got:?}");
        let exact = server(&[("k", "v")], Holder::Us);
        let got = run(
            policy(CreationPolicy::Orphan, DeletionPolicy::Retain, false),
            &desired,
            &exact,
        );
        assert_eq!(got, Plan::Keep(Change::Unchanged));
    }

    #[test]
    fn merge_writers_keep_each_others_keys_and_drop_only_their_own_old_ones() {
        let desired = DesiredData {
            data: bytes(&[("k1", "remote-1")]),
            missing_remote_keys: vec![],
            empty_find: false,
            meta: Default::default(),
        };
        let mut s = server(
            &[("original", "o"), ("k1", "remote-1"), ("k2", "remote-2")],
            Holder::Nobody,
        );
        s.our_keys = vec!["k1".into()];
        let merge = policy(CreationPolicy::Merge, DeletionPolicy::Retain, false);
        assert_eq!(run(merge, &desired, &s), Plan::Keep(Change::Unchanged));
        // Renamed k1 -> k1b: one write; server-side apply drops only our old k1.
        let renamed = DesiredData {
            data: bytes(&[("k1b", "remote-1")]),
            missing_remote_keys: vec![],
            empty_find: false,
            meta: Default::default(),
        };
        assert!(matches!(
            run(merge, &renamed, &s),
            Plan::Write {
                prune: false,
                change: Change::Updated,
                ..
            }
        ));
    }

    #[test]
    fn merge_into_a_secret_held_by_another_external_secret_is_refused() {
        let desired = DesiredData {
            data: bytes(&[("k", "v")]),
            missing_remote_keys: vec![],
            empty_find: false,
            meta: Default::default(),
        };
        let s = server(
            &[("a", "b")],
            Holder::Other("ExternalSecret \"owner\"".into()),
        );
        let got = run(
            policy(CreationPolicy::Merge, DeletionPolicy::Retain, false),
            &desired,
            &s,
        );
        assert!(
            matches!(&got, Plan::Refuse(r @ Refusal::HeldByOther { .. }) if r.to_string().contains("\"owner\"")),
            "{got:?}"
        );
    }

    #[test]
    fn immutable_orphan_never_overwrites_a_hand_made_secret() {
        let desired = DesiredData {
            data: bytes(&[("password", "new")]),
            missing_remote_keys: vec![],
            empty_find: false,
            meta: Default::default(),
        };
        let s = server(&[("password", "old-value")], Holder::Nobody);
        let got = run(
            policy(CreationPolicy::Orphan, DeletionPolicy::Retain, true),
            &desired,
            &s,
        );
        assert!(matches!(
            got,
            Plan::Refuse(Refusal::ExistingNotOverwritten { .. })
        ));
    }

    #[test]
    fn our_immutable_secret_with_a_changed_source_is_kept_without_a_write() {
        let desired = DesiredData {
            data: bytes(&[("password", "rotated")]),
            missing_remote_keys: vec![],
            empty_find: false,
            meta: Default::default(),
        };
        let mut s = server(&[("password", "first")], Holder::Us);
        s.immutable = true;
        let got = run(
            policy(CreationPolicy::Owner, DeletionPolicy::Retain, true),
            &desired,
            &s,
        );
        assert_eq!(got, Plan::Keep(Change::ImmutableKept));
    }

    #[test]
    fn deletion_needs_every_source_gone_and_our_secret() {
        let all_gone = DesiredData {
            data: BTreeMap::new(),
            missing_remote_keys: vec!["db".into()],
            empty_find: false,
            meta: Default::default(),
        };
        let delete = policy(CreationPolicy::Owner, DeletionPolicy::Delete, false);
        assert_eq!(
            run(delete, &all_gone, &server(&[("k", "v")], Holder::Us)),
            Plan::Delete
        );
        assert!(matches!(
            run(delete, &all_gone, &server(&[("k", "v")], Holder::Nobody)),
            Plan::Refuse(Refusal::NotOurs { .. })
        ));
        assert_eq!(
            plan(delete, "t", &all_gone, None),
            Plan::Keep(Change::AlreadyDeleted),
            "an already deleted Secret is not deleted again"
        );
        let retain = policy(CreationPolicy::Owner, DeletionPolicy::Retain, false);
        assert!(matches!(
            run(retain, &all_gone, &server(&[("k", "v")], Holder::Us)),
            Plan::Refuse(Refusal::SourceGone { .. })
        ));
    }

    #[test]
    fn a_legacy_field_manager_is_migrated_even_when_the_data_is_current() {
        let desired = DesiredData {
            data: bytes(&[("k", "v")]),
            missing_remote_keys: vec![],
            empty_find: false,
            meta: Default::default(),
        };
        let mut s = server(&[("k", "v")], Holder::Us);
        s.legacy = true;
        for creation in [CreationPolicy::Owner, CreationPolicy::Merge] {
            let got = run(
                policy(creation, DeletionPolicy::Retain, false),
                &desired,
                &s,
            );
            assert!(
                matches!(
                    got,
                    Plan::Write {
                        migrate_legacy: true,
                        ..
                    }
                ),
                "{got:?}"
            );
        }
    }
}
