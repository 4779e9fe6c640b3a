// Owns ServiceAccount TokenRequest: a signed HS256 JWT with audiences, subject and expiry.
// Must not be used for authentication: this server accepts every request regardless of tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::status::{ApiError, ApiResult};

pub const DEFAULT_AUDIENCE: &str = "https://kubernetes.default.svc";
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Signs `claims` as a compact JWS (HS256) with `key`.
pub fn sign(claims: &Value, key: &[u8]) -> ApiResult<String> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key).map_err(|e| ApiError::internal(e.to_string()))?;
    mac.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    Ok(format!("{signing_input}.{sig}"))
}

/// Answers a TokenRequest for the ServiceAccount `sa` (the stored object).
pub fn issue(sa: &Value, request: &Value, key: &[u8]) -> ApiResult<Value> {
    let ns = sa
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = sa
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let uid = sa
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut audiences: Vec<Value> = request
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences.push(json!(DEFAULT_AUDIENCE));
    }
    let expiration = request
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    if expiration < 600 {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            name,
            vec![crate::status::Cause::new(
                "FieldValueInvalid",
                "spec.expirationSeconds",
                format!(
                    "Invalid value: {expiration}: may not specify a duration less than 10 minutes"
                ),
            )],
        ));
    }
    let now = chrono::Utc::now();
    let exp = now + chrono::Duration::seconds(expiration);
    let claims = json!({
        "aud": audiences,
        "exp": exp.timestamp(),
        "iat": now.timestamp(),
        "nbf": now.timestamp(),
        "iss": ISSUER,
        "sub": format!("system:serviceaccount:{ns}:{name}"),
        "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": name, "uid": uid}},
    });
    let token = sign(&claims, key)?;
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
        "spec": {"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": request.pointer("/spec/boundObjectRef").cloned().unwrap_or(Value::Null)},
        "status": {"token": token, "expirationTimestamp": exp.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
    }))
}
