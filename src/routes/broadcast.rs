//! `POST /broadcast`: validate everything, then hand the events to the hub (SPEC §4).

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use serde_json::json;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::event;
use crate::metrics::Metrics;
use crate::publishing::Publishing;
use crate::request_id;

/// How long a publisher may take to send its body once its head has arrived. actix-http
/// bounds the head only (5 s): a body that stops coming would hold the connection
/// forever, so it is cut off the same way.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// `publish.max_body_bytes`, shared with the handler as app data.
#[derive(Debug, Clone, Copy)]
pub struct MaxBody(pub usize);

pub async fn publish(
    req: HttpRequest,
    body: web::Payload,
    publisher: web::Data<Publishing>,
    auth: web::Data<Auth>,
    metrics: web::Data<Metrics>,
    max_body: web::Data<MaxBody>,
) -> Result<HttpResponse, ApiError> {
    let answer = accept(&req, body, &publisher, &auth, max_body.0).await;
    if let Err(refusal) = &answer {
        metrics.rejected(refusal.status_code());
        request_id::log_refusal(&req, "publish", refusal);
    }
    answer
}

async fn accept(
    req: &HttpRequest,
    body: web::Payload,
    publisher: &Publishing,
    auth: &Auth,
    limit: usize,
) -> Result<HttpResponse, ApiError> {
    let rights = auth.publisher(req)?;
    let is_json = req
        .mime_type()
        .ok()
        .flatten()
        .is_some_and(|m| m.essence_str().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::NotJson);
    }
    // The length announced says it all: nothing of an oversized body is read.
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::TooLarge { limit });
    }
    let body = actix_web::rt::time::timeout(BODY_TIMEOUT, body.to_bytes_limited(limit))
        .await
        .map_err(|_| ApiError::BodyTimeout {
            secs: BODY_TIMEOUT.as_secs(),
        })?
        .map_err(|_| ApiError::TooLarge { limit })?
        .map_err(|e| ApiError::invalid("body", e.to_string()))?;
    let publication = event::parse_body(&body)?;
    rights.check(&publication)?;
    let batch = publication.batch;
    // Answered without waiting for the fan-out (in a cluster, once Redis holds the
    // events), so publishers never wait for subscribers.
    let accepted = publisher.publish(publication).await?;
    let mut body = if batch {
        json!({"success": true, "ids": accepted.ids})
    } else {
        json!({"success": true, "id": accepted.ids[0]})
    };
    if let Some(receivers) = accepted.receivers {
        body["receivers"] = receivers.into();
    }
    Ok(HttpResponse::Ok().json(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{self, Settings};
    use actix_web::FromRequest;
    use actix_web::body::to_bytes;
    use actix_web::test::TestRequest;

    async fn post_from(peer: &str) -> (u16, String) {
        let config = crate::config::Config::default();
        let publisher = hub::start(
            Settings::from_config(&config),
            Metrics::new(),
            &actix::Arbiter::current(),
        )
        .publisher;
        let (req, mut payload) = TestRequest::post()
            .peer_addr(peer.parse().unwrap())
            .insert_header(("Content-Type", "application/json"))
            .set_payload(r#"{"payload": 1}"#)
            .to_http_parts();
        let body = web::Payload::from_request(&req, &mut payload)
            .await
            .unwrap();
        let result = publish(
            req,
            body,
            web::Data::new(Publishing::Local(publisher)),
            web::Data::new(Auth::from_config(&config.auth).unwrap()),
            web::Data::new(Metrics::new()),
            web::Data::new(MaxBody(1024)),
        )
        .await;
        let response = match result {
            Ok(response) => response,
            Err(refusal) => actix_web::ResponseError::error_response(&refusal),
        };
        let status = response.status().as_u16();
        let body = to_bytes(response.into_body()).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[actix_web::test]
    async fn without_a_token_only_loopback_clients_may_publish() {
        assert_eq!(post_from("127.0.0.1:5000").await.0, 200);
        assert_eq!(post_from("[::1]:5000").await.0, 200);
        assert_eq!(post_from("[::ffff:127.0.0.1]:5000").await.0, 200);
        let (status, body) = post_from("192.0.2.7:5000").await;
        assert_eq!(status, 403);
        assert!(
            body.contains("\"error\":\"Authorization: without publish_token or a JWT key"),
            "{body}"
        );
    }
}
