//! `POST /broadcast`: validate everything, then hand the events to the hub (SPEC §4).

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::error::ApiError;
use crate::event;
use crate::hub::Publisher;

/// `publish.max_body_bytes`, shared with the handler as app data.
#[derive(Debug, Clone, Copy)]
pub struct MaxBody(pub usize);

pub async fn publish(
    req: HttpRequest,
    body: web::Payload,
    publisher: web::Data<Publisher>,
    max_body: web::Data<MaxBody>,
) -> Result<HttpResponse, ApiError> {
    let is_json = req
        .mime_type()
        .ok()
        .flatten()
        .is_some_and(|m| m.essence_str().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::NotJson);
    }
    let limit = max_body.0;
    let body = body
        .to_bytes_limited(limit)
        .await
        .map_err(|_| ApiError::TooLarge { limit })?
        .map_err(|e| ApiError::invalid("body", e.to_string()))?;
    let publication = event::parse_body(&body)?;
    let batch = publication.batch;
    // Answered at once: the hub fans out afterwards, so publishers never wait for
    // subscribers.
    let accepted = publisher.publish(publication.events, batch)?;
    let body = if batch {
        json!({"success": true, "ids": accepted.ids, "receivers": accepted.receivers})
    } else {
        json!({"success": true, "id": accepted.ids[0], "receivers": accepted.receivers})
    };
    Ok(HttpResponse::Ok().json(body))
}
