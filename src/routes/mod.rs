//! The HTTP surface: one module per endpoint family.

pub mod broadcast;
pub mod clients;
pub mod events;
pub mod ops;

use actix_web::{HttpResponse, ResponseError, web};

use crate::cors;
use crate::error::ApiError;

/// Registers every endpoint; static files (`/`) are added after these by `startup`.
/// CORS (`allowed_origins`) applies to `/events` and `/broadcast` only (SPEC §7): the
/// admin endpoints answer no other origin, so no page elsewhere can read who is
/// connected from a browser that can reach the hub.
pub fn configure(cfg: &mut web::ServiceConfig, allowed_origins: &[String]) {
    cfg.service(
        web::resource("/events")
            .wrap(cors::layer(allowed_origins))
            .route(web::get().to(events::subscribe))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/broadcast")
            .wrap(cors::layer(allowed_origins))
            .route(web::post().to(broadcast::publish))
            .default_service(web::to(method_not_allowed)),
    )
    .service(get_only("/healthz").route(web::get().to(ops::healthz)))
    .service(get_only("/readyz").route(web::get().to(ops::readyz)))
    .service(get_only("/stats").route(web::get().to(ops::stats)))
    .service(get_only("/metrics").route(web::get().to(ops::metrics)))
    .service(get_only("/clients").route(web::get().to(clients::list)))
    .service(
        web::resource("/clients/{id}")
            .route(web::delete().to(clients::disconnect))
            .default_service(web::to(method_not_allowed)),
    );
}

/// A resource whose other methods get the JSON 405 (a resource does not inherit the
/// app's default service).
fn get_only(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// Refusals outside any handler keep the JSON shape of SPEC §7.
pub async fn not_found() -> HttpResponse {
    ApiError::NotFound.error_response()
}

async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .json(serde_json::json!({"success": false, "error": "method: not allowed on this path"}))
}
