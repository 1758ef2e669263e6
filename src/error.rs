//! `ApiError`: the one place where a refusal becomes a status code and a JSON body.
//!
//! Every refusal on every endpoint has the shape `{"success": false, "error": "..."}`
//! (SPEC §7), with the message naming the field that was wrong. Bad input is the
//! client's business, so it is not logged above debug.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed input, or a field that breaks a rule of SPEC §3/§4.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// 403: a client not allowed to publish.
    #[error("Authorization: {reason}")]
    Forbidden { reason: &'static str },
    /// 409: an event id that the history (or the same batch) already holds.
    #[error("{field}: {reason}")]
    Conflict { field: String, reason: String },
    /// 413
    #[error("body: larger than max_body_bytes ({limit} bytes)")]
    TooLarge { limit: usize },
    /// 415
    #[error("Content-Type: must be application/json")]
    NotJson,
    /// 404, for any path that is not an endpoint or a static file.
    #[error("path: no such endpoint")]
    NotFound,
    /// 503: at capacity or shutting down. `retry_after` in seconds.
    #[error("{reason}")]
    Unavailable {
        reason: &'static str,
        retry_after: u64,
    },
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl ApiError {
    /// 503 while the server stops: come back in a second, to this node or another.
    pub fn shutting_down() -> Self {
        Self::Unavailable {
            reason: "shutting down",
            retry_after: 1,
        }
    }
}

/// The hub's mailbox is closed only while the process stops.
impl From<actix::MailboxError> for ApiError {
    fn from(_: actix::MailboxError) -> Self {
        Self::shutting_down()
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Self::Unavailable { retry_after, .. } = self {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after)));
        }
        response.json(json!({ "success": false, "error": self.to_string() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    #[actix_web::test]
    async fn every_refusal_is_the_same_json_shape() {
        let response =
            ApiError::invalid("[2].retry", "must be a non-negative integer").error_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = to_bytes(response.into_body()).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({"success": false, "error": "[2].retry: must be a non-negative integer"})
        );
    }

    #[test]
    fn unavailable_says_when_to_come_back() {
        let response = ApiError::Unavailable {
            reason: "too many clients",
            retry_after: 5,
        }
        .error_response();
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "5");
    }
}
