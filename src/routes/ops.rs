//! Operations endpoints (SPEC §8).

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::Auth;
use crate::error::ApiError;
use crate::hub::messages::IsReady;
use crate::hub::{Hub, StatsBoard};
use crate::metrics::Metrics;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// Ready means the hub answers and is not shutting down; in a cluster, also that Redis
/// is reachable and history has been loaded from it (SPEC §10).
pub async fn readyz(hub: web::Data<Addr<Hub>>) -> Result<HttpResponse, ApiError> {
    match hub.send(IsReady).await {
        Ok(true) => Ok(HttpResponse::Ok().content_type("text/plain").body("ready")),
        _ => Err(ApiError::Unavailable {
            reason: "hub: not accepting work (stopping; or, in a cluster, Redis unreachable or \
                     history not loaded yet)",
            retry_after: 1,
        }),
    }
}

/// Prometheus text format. Open like `/healthz`: it names no topic and no client.
pub async fn metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics.encode())
}

/// An admin endpoint (SPEC §8). Built at most once a second from counters the hub
/// keeps (see `StatsBoard`), so polling it costs the hub nothing.
pub async fn stats(
    req: HttpRequest,
    auth: web::Data<Auth>,
    board: web::Data<StatsBoard>,
) -> Result<HttpResponse, ApiError> {
    auth.check_admin(&req)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(board.answer()))
}
