//! ECR `GetAuthorizationToken` for the `ECRAuthorizationToken` generator: the registry credential of an
//! AWS identity, split into ESO's keys. Must never log or put the token, or any part of it, in an error.

use std::time::SystemTime;

use base64::Engine;

use super::{AwsIdentity, count};
use crate::admin::Metrics;
use crate::provider::{ProviderError, SecretBytes};

/// What the call is counted and reported as.
const CALL: &str = "ecr:GetAuthorizationToken";

/// A registry credential, as ESO's generator hands it on (`generators/v1/ecr`).
#[derive(Debug)]
pub struct EcrToken {
    pub username: SecretBytes,
    pub password: SecretBytes,
    /// `https://<account>.dkr.ecr.<region>.amazonaws.com`.
    pub proxy_endpoint: String,
    pub expires_at: SystemTime,
}

impl EcrToken {
    /// ESO's keys: `username`, `password`, `proxy_endpoint`, and `expires_at` in Unix seconds (UTC),
    /// as decimal text.
    pub fn into_keys(self) -> std::collections::BTreeMap<String, SecretBytes> {
        let seconds = match self.expires_at.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(after) => i128::from(after.as_secs()),
            // Go's Unix() floors towards the past for instants before 1970.
            Err(before) => {
                let d = before.duration();
                -i128::from(d.as_secs()) - i128::from(d.subsec_nanos() > 0)
            }
        };
        [
            ("username", self.username),
            ("password", self.password),
            (
                "proxy_endpoint",
                SecretBytes::from(self.proxy_endpoint.into_bytes()),
            ),
            ("expires_at", SecretBytes::from(seconds.to_string())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// Split a decoded authorization token `user:password`; ESO refuses any other number of `:`.
pub fn split_token(encoded: &str) -> Result<(SecretBytes, SecretBytes), ProviderError> {
    let invalid = |why: &str| ProviderError::Unavailable {
        key: CALL.to_owned(),
        detail: format!("the authorization token is not {why}"),
    };
    let decoded = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| invalid("valid base64"))?,
    );
    let mut parts = decoded.split(|b| *b == b':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(user), Some(pass), None) => Ok((
            SecretBytes::from(user.to_vec()),
            SecretBytes::from(pass.to_vec()),
        )),
        _ => Err(invalid("of the form user:password")),
    }
}

/// Call `GetAuthorizationToken` as `identity` (private registries; one token, as ESO requires).
pub async fn authorization_token(
    identity: &AwsIdentity,
    metrics: &Metrics,
) -> Result<EcrToken, ProviderError> {
    let answer = identity.ecr().get_authorization_token().send().await;
    count(metrics, "AWS/ECR", "GetAuthorizationToken", &answer);
    let answer = answer.map_err(|e| super::errors::from_sdk(CALL, &e))?;
    let data = answer.authorization_data();
    let [data] = data else {
        return Err(ProviderError::Unavailable {
            key: CALL.to_owned(),
            detail: format!(
                "expected 1 authorization token, found {}",
                answer.authorization_data().len()
            ),
        });
    };
    let missing = |what: &str| ProviderError::Unavailable {
        key: CALL.to_owned(),
        detail: format!("the answer has no {what}"),
    };
    let token = data
        .authorization_token()
        .ok_or_else(|| missing("authorizationToken"))?;
    let (username, password) = split_token(token)?;
    let expires_at = data
        .expires_at()
        .and_then(|t| SystemTime::try_from(*t).ok())
        .ok_or_else(|| missing("expiresAt"))?;
    Ok(EcrToken {
        username,
        password,
        proxy_endpoint: data
            .proxy_endpoint()
            .ok_or_else(|| missing("proxyEndpoint"))?
            .to_owned(),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn a_token_splits_into_user_and_password() {
        let (user, pass) = split_token(&b64("AWS:eyJwYXlsb2FkIjo")).unwrap();
        assert_eq!(user.expose(), b"AWS");
        assert_eq!(pass.expose(), b"eyJwYXlsb2FkIjo");
    }

    #[test]
    fn a_token_with_other_than_one_colon_is_refused_without_its_content() {
        for bad in ["AWS", "AWS:a:b", ""] {
            let err = split_token(&b64(bad)).unwrap_err();
            assert!(!err.to_string().contains("AWS"), "{err}");
        }
        assert!(split_token("%%%").is_err());
    }

    #[test]
    fn expires_at_is_unix_seconds_as_decimal_text() {
        let token = EcrToken {
            username: SecretBytes::from("AWS".to_owned()),
            password: SecretBytes::from("p".to_owned()),
            proxy_endpoint: "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com".into(),
            expires_at: SystemTime::UNIX_EPOCH
                + std::time::Duration::from_millis(1_767_225_600_900),
        };
        let keys = token.into_keys();
        assert_eq!(keys["expires_at"].expose(), b"1767225600");
        assert_eq!(
            keys["proxy_endpoint"].expose(),
            b"https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            keys.keys().collect::<Vec<_>>(),
            ["expires_at", "password", "proxy_endpoint", "username"]
        );
    }
}
