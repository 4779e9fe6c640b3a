//! Turns AWS SDK failures into `ProviderError` categories (NotFound, AccessDenied, Throttled, ...).
//! Details carry AWS error codes and messages only: never request or response payloads.

use std::error::Error as StdError;

use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::provider::ProviderError;

/// Codes AWS uses for "not found". For a request that pins a version they cannot tell a missing version
/// from a missing secret: the providers confirm those with a second read (see `confirm_missing` in each).
const NOT_FOUND: &[&str] = &[
    "ResourceNotFoundException",
    "ParameterNotFound",
    "ParameterVersionNotFound",
];
/// Codes for "the caller may not read this" (KMS decryption refusals included: they are IAM/key policy decisions).
const ACCESS_DENIED: &[&str] = &[
    "AccessDeniedException",
    "AccessDenied",
    "DecryptionFailure",
    "KMSAccessDeniedException",
    "UnauthorizedOperation",
];
/// Codes for "the credentials themselves are wrong or expired".
const AUTHENTICATION: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredTokenException",
    "ExpiredToken",
    "IncompleteSignature",
    "MissingAuthenticationToken",
];
const THROTTLED: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "ThrottledException",
];
const UNAVAILABLE: &[&str] = &[
    "InternalServiceError",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
];

/// Classify an AWS error code (from a failed call or from a per-item `Errors` entry of a batch call).
pub(crate) fn from_code(
    key: &str,
    code: &str,
    message: Option<&str>,
    status: Option<u16>,
) -> ProviderError {
    let detail = match message {
        Some(m) if !m.is_empty() => format!("{code}: {m}"),
        _ => code.to_owned(),
    };
    let key = key.to_owned();
    if NOT_FOUND.contains(&code) {
        return ProviderError::NotFound { key };
    }
    if ACCESS_DENIED.contains(&code) {
        return ProviderError::AccessDenied { key, detail };
    }
    if AUTHENTICATION.contains(&code) {
        return ProviderError::Authentication { detail };
    }
    if THROTTLED.contains(&code) || status == Some(429) {
        return ProviderError::Throttled {
            key,
            retry_after: None,
        };
    }
    if UNAVAILABLE.contains(&code) || status.is_some_and(|s| s >= 500) {
        return ProviderError::Unavailable { key, detail };
    }
    // Not valid for the resource's current state (e.g. scheduled for deletion): the provider confirms which.
    if code == "InvalidRequestException" {
        return ProviderError::InvalidRequest { key, detail };
    }
    // Validation errors and the like: the request as configured cannot succeed.
    ProviderError::InvalidConfig {
        detail: format!("reading {key:?}: {detail}"),
    }
}

/// Classify a failed SDK call made for `key`.
pub(crate) fn from_sdk<E>(key: &str, err: &SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    // Credential loading happens inside the call; its failure is an authentication problem, not an outage.
    if let Some(detail) = credentials_failure(err) {
        return ProviderError::Authentication { detail };
    }
    match err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = err.code().unwrap_or("Unknown");
            from_code(key, code, err.message(), Some(status))
        }
        SdkError::ResponseError(_) | SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            ProviderError::Unavailable {
                key: key.to_owned(),
                detail: DisplayErrorContext(err).to_string(),
            }
        }
        _ => ProviderError::Unavailable {
            key: key.to_owned(),
            detail: DisplayErrorContext(err).to_string(),
        },
    }
}

/// Attribute a call-wide error (a failed batch call) to one request's key.
pub(crate) fn rekey(error: ProviderError, key: &str) -> ProviderError {
    match error {
        ProviderError::NotFound { .. } => ProviderError::NotFound {
            key: key.to_owned(),
        },
        ProviderError::DeletionScheduled { .. } => ProviderError::DeletionScheduled {
            key: key.to_owned(),
        },
        ProviderError::VersionNotFound { version, .. } => ProviderError::VersionNotFound {
            key: key.to_owned(),
            version,
        },
        ProviderError::AccessDenied { detail, .. } => ProviderError::AccessDenied {
            key: key.to_owned(),
            detail,
        },
        ProviderError::Throttled { retry_after, .. } => ProviderError::Throttled {
            key: key.to_owned(),
            retry_after,
        },
        ProviderError::InvalidRequest { detail, .. } => ProviderError::InvalidRequest {
            key: key.to_owned(),
            detail,
        },
        ProviderError::Unavailable { detail, .. } => ProviderError::Unavailable {
            key: key.to_owned(),
            detail,
        },
        other => other,
    }
}

/// The description of a credentials failure somewhere in the error's source chain, if there is one.
fn credentials_failure(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if e.downcast_ref::<CredentialsError>().is_some() {
            return Some(DisplayErrorContext(e).to_string());
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_distinct_categories() {
        let cat = |code: &str, status| from_code("k", code, Some("m"), status).category();
        assert_eq!(cat("ResourceNotFoundException", Some(400)), "NotFound");
        assert_eq!(cat("ParameterNotFound", Some(400)), "NotFound");
        assert_eq!(cat("AccessDeniedException", Some(400)), "AccessDenied");
        assert_eq!(cat("ThrottlingException", Some(400)), "Throttled");
        assert_eq!(cat("Whatever", Some(429)), "Throttled");
        assert_eq!(cat("InternalServiceError", Some(500)), "Unavailable");
        assert_eq!(cat("Weird", Some(503)), "Unavailable");
        assert_eq!(
            cat("UnrecognizedClientException", Some(400)),
            "AuthenticationFailed"
        );
        assert_eq!(
            cat("ValidationException", Some(400)),
            "InvalidProviderConfig"
        );
    }

    #[test]
    fn message_text_never_decides_that_a_secret_is_gone() {
        // AWS and moto word "scheduled for deletion" differently; only DescribeSecret's DeletedDate
        // (checked by the provider) may call it gone.
        for message in [
            "secret is marked for deletion",
            "currently marked deleted",
            "not found",
        ] {
            let err = from_code("k", "InvalidRequestException", Some(message), Some(400));
            assert!(!err.is_gone(), "{message}: {err:?}");
        }
    }
}
