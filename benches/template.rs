//! Template rendering speed: typical corpus templates (a connection string, a .dockerconfigjson,
//! a ranged config file), rendered from the parse cache as the build step does on every reconcile.
//! Prints the median and p90 per render. `cargo bench --bench template` runs 20,000 renders per
//! template; under `cargo test` it is a short smoke run. Target: a typical template ≤ 50 µs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use secret_sync::provider::value::SecretBytes;
use secret_sync::template;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 20_000 } else { 200 };
    let data: BTreeMap<String, SecretBytes> = [
        ("username", "app_user"),
        ("password", "s3cr3t-p@ss/word"),
        ("host", "db.internal.example.com"),
        (
            "registryHost",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        ),
        (
            "proxy_endpoint",
            "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        ),
        (
            "cert",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        ),
        ("config", r#"{"cert":"abc","secret_key":"def"}"#),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), SecretBytes::from_str_value(v)))
    .collect();
    let cases = [
        (
            "connection string",
            "postgres://{{ .username | toString }}:{{ .password | toString }}@{{ .host | toString }}:5432/app?sslmode=require",
        ),
        (
            "dockerconfigjson",
            r#"{"auths":{"{{ .proxy_endpoint | replace "https://" "" }}":{"username":"{{ .username }}","password":"{{ .password }}","auth":"{{ printf "%s:%s" .username .password | b64enc }}"}}}"#,
        ),
        (
            "range + fromJson",
            "{{- range $key, $val := . }}\n{{ $key }}: {{ $val | quote }}{{- end }}\n{{- $json := .config | fromJson }}\ncert: {{ $json.cert }}",
        ),
        (
            "toJson of a dict, b64enc",
            r#"{{ toJson (dict "a" .username "t" .host "s" .password) | b64enc }}"#,
        ),
    ];
    println!("| template | renders | median | p90 |");
    println!("| --- | --- | --- | --- |");
    let mut worst_typical = Duration::ZERO;
    for (label, text) in cases {
        template::render(text, label, &data).expect("renders");
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let out = template::render(text, label, &data).expect("renders");
            times.push(t.elapsed());
            std::hint::black_box(out);
        }
        times.sort();
        let (median, p90) = (times[n / 2], times[n * 9 / 10]);
        println!("| {label} | {n} | {median:.1?} | {p90:.1?} |");
        if label == "connection string" || label == "dockerconfigjson" {
            worst_typical = worst_typical.max(median);
        }
    }
    if full {
        assert!(
            worst_typical <= Duration::from_micros(50),
            "typical template median {worst_typical:?} > 50 µs"
        );
    }
}
