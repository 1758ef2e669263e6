//! Operations endpoints (SPEC §8).

use actix::Addr;
use actix_web::{HttpResponse, web};

use crate::error::ApiError;
use crate::hub::Hub;
use crate::hub::messages::GetStats;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// In memory, the hub is ready as long as it answers.
pub async fn readyz(hub: web::Data<Addr<Hub>>) -> Result<HttpResponse, ApiError> {
    hub.send(GetStats)
        .await
        .map_err(|_| ApiError::Unavailable {
            reason: "hub: not running",
            retry_after: 1,
        })?;
    Ok(HttpResponse::Ok().content_type("text/plain").body("ready"))
}

pub async fn stats(hub: web::Data<Addr<Hub>>) -> Result<HttpResponse, ApiError> {
    let stats = hub
        .send(GetStats)
        .await
        .map_err(|_| ApiError::Unavailable {
            reason: "hub: not running",
            retry_after: 1,
        })?;
    Ok(HttpResponse::Ok().json(stats))
}
