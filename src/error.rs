//! `ApiError`: the one place where a refusal becomes a status code and a JSON body.
//!
//! Every refusal on every endpoint has the shape `{"success": false, "error": "..."}`
//! (SPEC §7), with the message naming the field that was wrong. Bad input is the
//! client's business, so it is not logged above debug.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed input, or a field that breaks a rule of SPEC §3/§4.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// 401: no valid credential (sent with `WWW-Authenticate: Bearer`).
    #[error("Authorization: {reason}")]
    Unauthorized { reason: String },
    /// 403: a valid credential (or a peer) not allowed to do this.
    #[error("{field}: {reason}")]
    Forbidden { field: String, reason: String },
    /// 409: an event id that the history (or the same batch) already holds.
    #[error("{field}: {reason}")]
    Conflict { field: String, reason: String },
    /// 413
    #[error("body: larger than max_body_bytes ({limit} bytes)")]
    TooLarge { limit: usize },
    /// 408: a body that stopped coming.
    #[error("body: not received within {secs} s")]
    BodyTimeout { secs: u64 },
    /// 415
    #[error("Content-Type: must be application/json")]
    NotJson,
    /// 404, for any path that is not an endpoint or a static file.
    #[error("path: no such endpoint")]
    NotFound,
    /// 404 for something named in a valid path (a client that is not connected).
    #[error("{field}: {reason}")]
    NotFoundNamed { field: &'static str, reason: String },
    /// A refusal made by a layer we do not own (the CORS layer), with its status.
    #[error("{reason}")]
    Refused { status: StatusCode, reason: String },
    /// 500: a handler panicked (caught by actix-web-lab's `CatchPanic`).
    #[error("internal error: the server failed while answering this request")]
    Internal,
    /// 503 once the server has begun to stop: come back in a second, to this node or
    /// another.
    #[error("shutting down")]
    ShuttingDown,
    /// 503: at capacity. `retry_after` in seconds.
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

    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self::Unauthorized {
            reason: reason.into(),
        }
    }

    pub fn forbidden(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Forbidden {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The hub's mailbox is closed only while the process stops.
impl From<actix::MailboxError> for ApiError {
    fn from(_: actix::MailboxError) -> Self {
        Self::ShuttingDown
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::Refused { status, .. } => *status,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound | Self::NotFoundNamed { .. } => StatusCode::NOT_FOUND,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable { .. } | Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Unavailable { retry_after, .. } => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after)));
            }
            Self::ShuttingDown => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from(1)));
            }
            // The rest of the body is not read: the connection cannot carry another
            // request.
            Self::TooLarge { .. } | Self::BodyTimeout { .. } => {
                response.force_close();
            }
            Self::Unauthorized { .. } => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            _ => {}
        }
        response.json(json!({ "success": false, "error": self.to_string() }))
    }
}

/// The outermost middleware: every refusal made by a layer we do not own gets the JSON
/// shape of ours (SPEC §7). That is a refused CORS preflight (actix-cors answers it
/// with a plain-text error response), and a panic, which actix-web-lab's `CatchPanic`
/// turns into a 500 error. No handler of ours answers 500, so that one is a failure of
/// ours (already reported by the panic hook) and is logged once more as what the
/// client was answered. Our own refusals pass untouched.
pub async fn errors_as_json(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    match next.call(req).await {
        Err(error) if error.as_error::<ApiError>().is_none() => Err(foreign(&error).into()),
        Ok(response)
            if response
                .response()
                .error()
                .is_some_and(|e| e.as_error::<ApiError>().is_none()) =>
        {
            let (request, response) = response.into_parts();
            // unwrap: the guard saw the error.
            let refusal = foreign(response.error().unwrap());
            Ok(ServiceResponse::new(request, refusal.error_response()).map_into_right_body())
        }
        answer => answer.map(ServiceResponse::map_into_left_body),
    }
}

/// Another layer's error as ours, with its status.
fn foreign(error: &actix_web::Error) -> ApiError {
    let status = error.as_response_error().status_code();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        log::error!("a request failed (answered 500): {error}; see the panic above");
        return ApiError::Internal;
    }
    let reason = match error.as_error::<actix_cors::CorsError>() {
        Some(cors) => format!("Origin: {cors}"),
        None => error.to_string(),
    };
    ApiError::Refused { status, reason }
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

    #[actix_web::test]
    async fn a_panicking_handler_answers_500_in_the_json_shape_and_the_app_lives_on() {
        use actix_web::{App, test, web};
        let app = test::init_service(
            App::new()
                .wrap(actix_web_lab::middleware::CatchPanic::default())
                .wrap(actix_web::middleware::from_fn(errors_as_json))
                .route(
                    "/boom",
                    web::get().to(|| async { panic!("boom") as HttpResponse }),
                )
                .route(
                    "/fine",
                    web::get().to(|| async { HttpResponse::Ok().body("ok") }),
                ),
        )
        .await;
        let get = |uri| test::TestRequest::get().uri(uri).to_request();
        // What the server answers for an error that reaches it is its error_response.
        let error = test::try_call_service(&app, get("/boom"))
            .await
            .err()
            .unwrap();
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = to_bytes(response.into_body()).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["success"], false);
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with("internal error"),
            "{body}"
        );
        let response = test::call_service(&app, get("/fine")).await;
        assert_eq!(response.status(), StatusCode::OK);
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
