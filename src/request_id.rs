//! `X-Request-Id` (SPEC §4): every response carries one, the request's own when it sent
//! a sane one (at most 128 of `[A-Za-z0-9._-]`), else a new uuid; handlers read it to
//! name the request in their log lines.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest};

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id echoed back; a longer one is replaced, not truncated.
const MAX_LEN: usize = 128;

/// The request's id, in its extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The value is ASCII by construction (`sane`, or a uuid).
        f.write_str(self.0.to_str().unwrap_or("?"))
    }
}

/// The id of `req`, for a log line.
pub fn of(req: &HttpRequest) -> RequestId {
    req.extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or(RequestId(HeaderValue::from_static("-")))
}

/// Logs a refusal at debug, naming the request (SPEC §8: bad input is the client's
/// business, so not above debug).
pub fn log_refusal(req: &HttpRequest, what: &str, refusal: &crate::error::ApiError) {
    use actix_web::ResponseError;
    log::debug!(
        "request {}: {what} refused ({}): {refusal}",
        of(req),
        refusal.status_code().as_u16()
    );
}

/// The outermost middleware, so that every answer carries the id, refusals made by
/// other layers included.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&HEADER)
        .filter(|v| sane(v.as_bytes()))
        .cloned()
        .unwrap_or_else(|| {
            let mut text = uuid::Uuid::encode_buffer();
            let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
            // unwrap: a uuid is ASCII.
            HeaderValue::from_str(text).unwrap()
        });
    req.extensions_mut().insert(RequestId(id.clone()));
    match next.call(req).await {
        Ok(mut response) => {
            response.headers_mut().insert(HEADER, id);
            Ok(response)
        }
        // An error is answered by its own response: give that one the header too.
        Err(error) => {
            let mut response = error.error_response();
            response.headers_mut().insert(HEADER, id);
            Err(InternalError::from_response(error.to_string(), response).into())
        }
    }
}

fn sane(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_echoed() {
        assert!(sane(b"abc-DEF_1.2"));
        assert!(sane(&[b'a'; 128]));
        assert!(!sane(&[b'a'; 129]));
        assert!(!sane(b""));
        assert!(!sane(b"a b"));
        assert!(!sane(b"a/b"));
        assert!(!sane("é".as_bytes()));
    }
}
