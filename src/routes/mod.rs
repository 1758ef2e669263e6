//! The HTTP surface: one module per endpoint family.

pub mod broadcast;
pub mod events;
pub mod ops;

use actix_web::{HttpResponse, ResponseError, web};

use crate::error::ApiError;

/// Registers every endpoint; static files (`/`) are added after these by `startup`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/events")
            .route(web::get().to(events::subscribe))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/broadcast")
            .route(web::post().to(broadcast::publish))
            .default_service(web::to(method_not_allowed)),
    )
    .route("/healthz", web::get().to(ops::healthz))
    .route("/readyz", web::get().to(ops::readyz))
    .route("/stats", web::get().to(ops::stats));
}

/// Refusals outside any handler keep the JSON shape of SPEC §7.
pub async fn not_found() -> HttpResponse {
    ApiError::NotFound.error_response()
}

async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .json(serde_json::json!({"success": false, "error": "method: not allowed on this path"}))
}
