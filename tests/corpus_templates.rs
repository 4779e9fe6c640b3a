//! Issue 11, end to end: every corpus ExternalSecret with a `target.template`, applied to the fake API
//! server with the real controller and fake-provider data for each of its keys, produces the Secret that
//! Go renders. The expected bytes, labels and annotations come from the Go oracle (text/template + sprig,
//! as ESO runs them), never from our engine; what this test computes itself is only ESO's assembly rule
//! (template.data over templateFrom, Replace vs Merge, the no-template-data fallback), from ESO's
//! templating guide.
//!
//! The manifests are used as written, with two changes, both outside the template: each goes into its
//! own namespace, and its `secretStoreRef` points to a fake-provider SecretStore there (the corpus
//! stores are AWS, 1Password or Vault, and names collide across files).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize as _;
use serde_json::{Value, json};
use support::cluster::{TestCluster, scaled, wait_for};
use support::oracle::{Oracle, b64};

type Map = BTreeMap<String, String>;

/// Functions whose output differs on every call (time, randomness, salted hashes): only the presence of
/// the key they produce is compared.
const NONDETERMINISTIC: &[&str] = &[
    "now",
    "randAlphaNum",
    "randAlpha",
    "randAscii",
    "randNumeric",
    "randBytes",
    "uuidv4",
    "htpasswd",
    "bcrypt",
    "genPrivateKey",
    "shuffle",
];

/// One templated ExternalSecret of the corpus, with the ConfigMaps of its file.
struct Case {
    file: String,
    es: Value,
    config_maps: Vec<Value>,
}

/// Why a corpus ExternalSecret with a template is not compared here; None: it is.
fn not_compared(file: &str, es: &Value) -> Option<String> {
    let spec = &es["spec"];
    // Doc references that are not valid as written (INDEX.md says so: duplicate keys, v1alpha1 shapes).
    if file.starts_with("023-") || file.starts_with("073-") {
        return Some("a doc reference, not valid as written (corpus INDEX)".into());
    }
    let from = spec["dataFrom"].as_array().cloned().unwrap_or_default();
    if from.iter().any(|f| !f["find"].is_null()) {
        return Some("uses dataFrom.find (its data comes from a listing: tests of find)".into());
    }
    if from.iter().any(|f| !f["sourceRef"].is_null()) {
        return Some("uses a generator (its data is generated: tests of generators)".into());
    }
    if from.iter().any(|f| !f["rewrite"].is_null()) {
        return Some("uses rewrite (tests of rewrite)".into());
    }
    None
}

fn cases() -> Vec<Case> {
    let mut files: Vec<_> = std::fs::read_dir(support::corpus_dir())
        .expect("the corpus")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
            .filter_map(|d| Value::deserialize(d).ok())
            .filter(|d| !d.is_null())
            .collect();
        let config_maps: Vec<Value> = docs
            .iter()
            .filter(|d| d["kind"] == "ConfigMap")
            .cloned()
            .collect();
        for es in docs.iter().filter(|d| {
            d["kind"] == "ExternalSecret"
                && d["apiVersion"]
                    .as_str()
                    .is_some_and(|v| v.trim().starts_with("external-secrets.io/v1"))
                && !d
                    .pointer("/spec/target/template")
                    .unwrap_or(&Value::Null)
                    .is_null()
        }) {
            cases.push(Case {
                file: f.file_name().unwrap().to_string_lossy().into_owned(),
                es: es.clone(),
                config_maps: config_maps.clone(),
            });
        }
    }
    cases
}

/// Every template text of the ExternalSecret and its ConfigMaps.
fn template_texts(case: &Case, config_maps: &[Value]) -> Vec<String> {
    let tpl = &case.es["spec"]["target"]["template"];
    let mut out = Vec::new();
    for part in ["/data", "/metadata/labels", "/metadata/annotations"] {
        if let Some(m) = tpl.pointer(part).and_then(Value::as_object) {
            out.extend(m.values().filter_map(|v| v.as_str().map(str::to_owned)));
        }
    }
    for from in tpl["templateFrom"].as_array().into_iter().flatten() {
        if let Some(l) = from["literal"].as_str() {
            out.push(l.to_owned());
        }
        for cm in config_maps {
            out.extend(
                cm["data"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(_, v)| v.as_str().map(str::to_owned)),
            );
        }
    }
    out
}

/// The data keys the templates read (`.key`, `index . "key"`).
fn keys_read(texts: &[String]) -> Vec<String> {
    let field = regex::Regex::new(r"\.([A-Za-z_][A-Za-z0-9_]*)").unwrap();
    let index = regex::Regex::new(r#"index \. \\?"([^"\\]+)\\?""#).unwrap();
    let mut keys: Vec<String> = texts
        .iter()
        .flat_map(|t| {
            field
                .captures_iter(t)
                .map(|c| c[1].to_string())
                .chain(index.captures_iter(t).map(|c| c[1].to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The value a key holds at the provider, shaped for how the templates use it: a YAML map when a
/// literal renders it into labels or annotations, base64 for `b64dec`, JSON for `fromJson`.
fn value_for(key: &str, texts: &[String]) -> Vec<u8> {
    let piped = |f: &str| {
        texts
            .iter()
            .any(|t| t.contains(&format!(".{key} | {f}")) || t.contains(&format!("{f} .{key}")))
    };
    let whole_literal = texts
        .iter()
        .any(|t| t.trim() == format!("{{{{ .{key} }}}}"));
    if whole_literal {
        format!("corpus.example.com/{key}: v-{key}").into_bytes()
    } else if piped("pkcs12cert") || piped("pkcs12key") {
        pkcs12_archive()
    } else if piped("b64dec") {
        b64(format!("v-{key}").as_bytes()).into_bytes()
    } else if piped("fromJson") {
        format!(r#"{{"{key}":"v-{key}"}}"#).into_bytes()
    } else {
        format!("v-{key}").into_bytes()
    }
}

/// A PKCS#12 archive (RSA key, self-signed certificate, empty password) made by openssl, with the
/// legacy 3DES encryption that every PKCS#12 reader knows.
fn pkcs12_archive() -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("corpus-p12-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
        "-days",
        "1",
        "-subj",
        "/CN=corpus.example.com",
    ]);
    run(&[
        "pkcs12",
        "-export",
        "-inkey",
        "key.pem",
        "-in",
        "cert.pem",
        "-out",
        "a.p12",
        "-passout",
        "pass:",
        "-keypbe",
        "PBE-SHA1-3DES",
        "-certpbe",
        "PBE-SHA1-3DES",
        "-macalg",
        "sha1",
    ]);
    let archive = std::fs::read(dir.join("a.p12")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    archive
}

/// Sets `path` (a gjson path of plain names and array indexes) to `value` in a JSON document.
fn set_path(doc: &mut Value, path: &str, value: &str) {
    let mut node = doc;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !node.is_object() {
            *node = json!({});
        }
        let obj = node.as_object_mut().unwrap();
        if i + 1 == parts.len() {
            obj.insert((*part).to_owned(), json!(value));
            return;
        }
        node = obj.entry((*part).to_owned()).or_insert_with(|| json!({}));
    }
}

/// What the fake provider holds (remote key → document) and what the template sees (key → bytes).
fn synthesize(
    es: &mut Value,
    texts: &[String],
) -> (BTreeMap<String, String>, BTreeMap<String, Vec<u8>>) {
    // A binary value (a PKCS#12 archive) cannot be a fake-provider string: it is stored base64 and its
    // remoteRef decodes it, a change outside the template.
    let data = es.pointer_mut("/spec/data").and_then(Value::as_array_mut);
    for d in data.into_iter().flatten() {
        let secret_key = d["secretKey"].as_str().unwrap_or_default().to_owned();
        if String::from_utf8(value_for(&secret_key, texts)).is_err() {
            d["remoteRef"]["decodingStrategy"] = json!("Base64");
        }
    }
    let spec = &es["spec"];
    let mut remote: BTreeMap<String, Value> = BTreeMap::new();
    let mut seen: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for d in spec["data"].as_array().into_iter().flatten() {
        let secret_key = d["secretKey"].as_str().unwrap();
        let key = d["remoteRef"]["key"].as_str().unwrap().to_owned();
        let value = value_for(secret_key, texts);
        let base64 = d["remoteRef"]["decodingStrategy"] == "Base64";
        let stored = if base64 {
            b64(&value)
        } else {
            String::from_utf8(value.clone()).unwrap()
        };
        match d["remoteRef"]["property"].as_str() {
            Some(p) => set_path(remote.entry(key).or_insert_with(|| json!({})), p, &stored),
            None => {
                remote.insert(key, json!(stored));
            }
        }
        seen.insert(secret_key.to_owned(), value);
    }
    for from in spec["dataFrom"].as_array().into_iter().flatten() {
        let extract = &from["extract"];
        let key = extract["key"].as_str().unwrap().to_owned();
        let base64 = extract["decodingStrategy"] == "Base64";
        let mut keys: Vec<String> = keys_read(texts)
            .into_iter()
            .filter(|k| !seen.contains_key(k))
            .collect();
        if keys.is_empty() {
            keys = vec!["tls.crt".into(), "tls.key".into()];
        }
        let mut doc = serde_json::Map::new();
        for k in keys {
            let value = value_for(&k, texts);
            let text = String::from_utf8(value.clone()).unwrap();
            doc.insert(
                k.clone(),
                json!(if base64 { b64(text.as_bytes()) } else { text }),
            );
            seen.insert(k, value);
        }
        remote.insert(key, Value::Object(doc));
    }
    let remote = remote
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect();
    (remote, seen)
}

/// Asks Go to render `text` over `data`.
fn go_render(
    oracle: &mut Oracle,
    text: &str,
    data: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<u8>, String> {
    let data_b64: BTreeMap<&String, String> = data.iter().map(|(k, v)| (k, b64(v))).collect();
    oracle
        .ask(
            "template",
            json!({"text": text, "data_b64": data_b64, "b64": true}),
        )
        .map(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v["b64"].as_str().unwrap())
                .unwrap()
        })
}

/// A rendered text that must be a YAML map of strings (KeysAndValues and literal templateFrom).
fn yaml_map(bytes: &[u8]) -> Result<Map, String> {
    let v: serde_yaml_ng::Value =
        serde_yaml_ng::from_slice(bytes).map_err(|e| format!("not YAML: {e}"))?;
    let mut out = Map::new();
    if let serde_yaml_ng::Value::Mapping(m) = v {
        for (k, v) in m {
            let k = serde_yaml_ng::to_string(&k).unwrap().trim_end().to_owned();
            let v = match v {
                serde_yaml_ng::Value::String(s) => s,
                other => serde_yaml_ng::to_string(&other)
                    .unwrap()
                    .trim_end()
                    .to_owned(),
            };
            out.insert(k, v);
        }
    }
    Ok(out)
}

/// The Secret ESO would write: type, data, and the labels/annotations the template adds.
#[derive(Debug, Default)]
struct Expected {
    type_: String,
    data: BTreeMap<String, Vec<u8>>,
    labels: Map,
    annotations: Map,
    /// Keys whose value comes from a nondeterministic function: presence only.
    unstable: Vec<String>,
}

fn expected(
    oracle: &mut Oracle,
    case: &Case,
    config_maps: &[Value],
    seen: &BTreeMap<String, Vec<u8>>,
) -> Result<Expected, String> {
    let tpl = &case.es["spec"]["target"]["template"];
    let unstable = |t: &str| {
        NONDETERMINISTIC
            .iter()
            .any(|f| regex::Regex::new(&format!(r"\b{f}\b")).unwrap().is_match(t))
    };
    let mut e = Expected {
        type_: tpl["type"].as_str().unwrap_or("Opaque").to_owned(),
        ..Default::default()
    };
    let mut rendered: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let render = |oracle: &mut Oracle, t: &str| go_render(oracle, t, seen);
    // templateFrom first: template.data wins over it (ESO's templating guide).
    for from in tpl["templateFrom"].as_array().into_iter().flatten() {
        let target = from["target"].as_str().unwrap_or("Data");
        let mut pairs: Vec<(String, Vec<u8>, bool)> = Vec::new();
        if let Some(l) = from["literal"].as_str() {
            for (k, v) in yaml_map(&render(oracle, l)?)? {
                pairs.push((k, v.into_bytes(), unstable(l)));
            }
        }
        let source = if from["configMap"].is_null() {
            &from["secret"]
        } else {
            &from["configMap"]
        };
        if let Some(name) = source["name"].as_str() {
            let cm = config_maps
                .iter()
                .find(|c| c["metadata"]["name"] == name)
                .ok_or(format!("no ConfigMap {name}"))?;
            for item in source["items"].as_array().into_iter().flatten() {
                let key = item["key"].as_str().unwrap();
                let t = cm["data"][key].as_str().unwrap();
                let out = render(oracle, t)?;
                if item["templateAs"] == "KeysAndValues" {
                    for (k, v) in yaml_map(&out)? {
                        pairs.push((k, v.into_bytes(), unstable(t)));
                    }
                } else {
                    pairs.push((key.to_owned(), out, unstable(t)));
                }
            }
        }
        for (k, v, u) in pairs {
            if u {
                e.unstable.push(k.clone());
            }
            let s = || String::from_utf8(v.clone()).unwrap();
            match target {
                "Labels" => drop(e.labels.insert(k, s())),
                "Annotations" => drop(e.annotations.insert(k, s())),
                _ => drop(rendered.insert(k, v)),
            }
        }
    }
    for (k, t) in tpl["data"].as_object().into_iter().flatten() {
        let t = t.as_str().unwrap();
        if unstable(t) {
            e.unstable.push(k.clone());
        }
        rendered.insert(k.clone(), render(oracle, t)?);
    }
    for (part, into) in [
        ("labels", &mut e.labels),
        ("annotations", &mut e.annotations),
    ] {
        for (k, t) in tpl["metadata"][part].as_object().into_iter().flatten() {
            let t = t.as_str().unwrap_or_default();
            into.insert(k.clone(), String::from_utf8(render(oracle, t)?).unwrap());
        }
    }
    let has_data_templates = tpl["data"].as_object().is_some_and(|m| !m.is_empty())
        || tpl["templateFrom"].as_array().is_some_and(|a| {
            a.iter()
                .any(|f| f["target"].as_str().unwrap_or("Data") == "Data")
        });
    e.data = if tpl["mergePolicy"] == "Merge" || !has_data_templates {
        let mut all = seen.clone();
        all.extend(rendered);
        all
    } else {
        rendered
    };
    Ok(e)
}

/// The first Ready condition other than the initial "not synced yet" one.
async fn settled(c: &TestCluster, ns: &str, name: &str) -> secret_sync::api::Condition {
    wait_for(
        &format!("{ns}/{name} to report Ready"),
        scaled(Duration::from_secs(15)),
        || async { c.ready(ns, name).await.filter(|c| c.reason.is_some()) },
    )
    .await
}

fn apply_yaml(v: &Value) -> String {
    serde_yaml_ng::to_string(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_templates_write_the_secret_go_renders() {
    let c = TestCluster::start().await;
    let mut oracle = Oracle::start();
    let unsupported = secret_sync::template::UNSUPPORTED_FUNCTIONS;
    let (mut compared, mut refused, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for (i, case) in cases().iter().enumerate() {
        if let Some(why) = not_compared(&case.file, &case.es) {
            skipped.push(format!("{}: {why}", case.file));
            continue;
        }
        let ns = format!("corpus-{i}");
        let name = case.es["metadata"]["name"].as_str().unwrap().to_owned();
        c.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"
        ))
        .await;
        // ConfigMaps of the file, or (030: Helm-templated upstream, not in the file) one written here.
        let mut config_maps = case.config_maps.clone();
        for from in case.es["spec"]["target"]["template"]["templateFrom"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let cm = &from["configMap"];
            if let Some(cm_name) = cm["name"].as_str()
                && !config_maps.iter().any(|c| c["metadata"]["name"] == cm_name)
            {
                let data: serde_json::Map<String, Value> = cm["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|item| {
                        let k = item["key"].as_str().unwrap().to_owned();
                        (
                            k,
                            json!("id={{ .client_id }}\nsecret={{ .client_secret | b64enc }}\n"),
                        )
                    })
                    .collect();
                config_maps.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": cm_name}, "data": data}));
            }
        }
        for cm in &config_maps {
            let mut cm = cm.clone();
            cm["metadata"]["namespace"] = json!(ns);
            c.apply(&apply_yaml(&cm)).await;
        }
        let texts = template_texts(case, &config_maps);
        let mut es = case.es.clone();
        let (remote, seen) = synthesize(&mut es, &texts);
        let entries: Vec<Value> = remote
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        c.apply(&apply_yaml(
            &json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
            "metadata": {"name": "corpus-store", "namespace": ns},
            "spec": {"provider": {"fake": {"data": entries}}}}),
        ))
        .await;
        es["metadata"]["namespace"] = json!(ns);
        // As written: v1beta1 is served next to v1 (docs/v1beta1.md); only a stray space is trimmed.
        es["apiVersion"] = json!(es["apiVersion"].as_str().unwrap().trim());
        es["spec"]["secretStoreRef"] = json!({"kind": "SecretStore", "name": "corpus-store"});
        es["spec"]["refreshInterval"] = json!("1h");
        c.apply(&apply_yaml(&es)).await;
        let target = case.es["spec"]["target"]["name"]
            .as_str()
            .unwrap_or(&name)
            .to_owned();

        let uses_unsupported = texts.iter().find_map(|t| {
            unsupported
                .iter()
                .find(|u| regex::Regex::new(&format!(r"\b{u}\b")).unwrap().is_match(t))
        });
        if let Some(function) = uses_unsupported {
            let cond = settled(&c, &ns, &name).await;
            let message = cond.message.clone().unwrap_or_default();
            assert!(
                message.starts_with("TemplateUnsupported") && message.contains(function),
                "{}: {cond:?}",
                case.file
            );
            refused.push(format!("{} ({function})", case.file));
            continue;
        }
        let want = match expected(&mut oracle, case, &config_maps, &seen) {
            Ok(want) => want,
            Err(go_error) => {
                // Go fails to render: so must we, with a template reason and no Secret.
                let cond = settled(&c, &ns, &name).await;
                let message = cond.message.clone().unwrap_or_default();
                assert!(message.starts_with("Template"), "{}: {cond:?}", case.file);
                assert!(c.secret(&ns, &target).await.is_none(), "{}", case.file);
                compared.push(format!(
                    "{} (both fail: go {go_error:?}, ours {message:?})",
                    case.file
                ));
                continue;
            }
        };
        let cond = settled(&c, &ns, &name).await;
        assert_eq!(
            cond.reason.as_deref(),
            Some("SecretSynced"),
            "{}: {cond:?}",
            case.file
        );
        let secret = c.secret(&ns, &target).await.expect("the Secret");
        assert_eq!(
            secret.type_.as_deref(),
            Some(want.type_.as_str()),
            "{}: type",
            case.file
        );
        let got: BTreeMap<String, Vec<u8>> = secret
            .data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        let keys = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&got), keys(&want.data), "{}: data keys", case.file);
        for (k, v) in &want.data {
            if !want.unstable.contains(k) {
                assert_eq!(
                    String::from_utf8_lossy(&got[k]),
                    String::from_utf8_lossy(v),
                    "{}: data[{k}]",
                    case.file
                );
            }
        }
        let labels = secret.metadata.labels.clone().unwrap_or_default();
        let annotations = secret.metadata.annotations.clone().unwrap_or_default();
        for (kind, want_map, got_map) in [
            ("label", &want.labels, &labels),
            ("annotation", &want.annotations, &annotations),
        ] {
            for (k, v) in want_map {
                let got = got_map
                    .get(k)
                    .unwrap_or_else(|| panic!("{}: {kind} {k} missing", case.file));
                if !want.unstable.contains(k) {
                    assert_eq!(got, v, "{}: {kind} {k}", case.file);
                }
            }
        }
        compared.push(case.file.clone());
    }
    support::report(&format!(
        "[corpus e2e] {} templated ExternalSecrets equal to Go's rendering: {compared:?}",
        compared.len()
    ));
    support::report(&format!(
        "[corpus e2e] {} refused with TemplateUnsupported: {refused:?}",
        refused.len()
    ));
    support::report(&format!("[corpus e2e] not compared here: {skipped:?}"));
    assert!(
        compared.len() >= 14,
        "most corpus templates are compared end to end"
    );
}
