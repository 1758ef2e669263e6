//! `POST /broadcast`: validate everything, then hand the events to the hub (SPEC §4).

use actix::Addr;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use serde_json::json;
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::event;
use crate::hub::Hub;
use crate::hub::messages::Publish;

/// `publish.max_body_bytes`, shared with the handler as app data.
#[derive(Debug, Clone, Copy)]
pub struct MaxBody(pub usize);

pub async fn publish(
    req: HttpRequest,
    body: web::Payload,
    hub: web::Data<Addr<Hub>>,
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

    let (reply, answer) = oneshot::channel();
    let batch = publication.batch;
    // Not `send`: its answer would come only after the fan-out. The hub answers on
    // `reply` first, so publishers never wait for subscribers.
    hub.do_send(Publish {
        events: publication.events,
        batch,
        reply,
    });
    let accepted = answer.await.map_err(|_| ApiError::Unavailable {
        reason: "shutting down",
        retry_after: 1,
    })??;
    let body = if batch {
        json!({"success": true, "ids": accepted.ids, "receivers": accepted.receivers})
    } else {
        json!({"success": true, "id": accepted.ids[0], "receivers": accepted.receivers})
    };
    Ok(HttpResponse::Ok().json(body))
}
