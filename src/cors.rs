//! CORS for `allowed_origins` (SPEC §7): `*` answers any origin without credentials;
//! listed origins are echoed with credentials, so the `ssehub_token` cookie works
//! cross-origin only for origins named.

use actix_cors::Cors;
use actix_web::http::{Method, header};

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE_SECS: usize = 3600;

pub fn layer(allowed_origins: &[String]) -> Cors {
    let cors = Cors::default()
        .allowed_methods([Method::GET, Method::POST])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("last-event-id"),
        ])
        .max_age(PREFLIGHT_MAX_AGE_SECS);
    if allowed_origins.iter().any(|o| o == "*") {
        return cors.allow_any_origin().send_wildcard();
    }
    allowed_origins
        .iter()
        .fold(cors, |cors, origin| cors.allowed_origin(origin))
        .supports_credentials()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, HttpResponse, test, web};

    async fn preflight(origins: &[&str], origin: &str) -> header::HeaderMap {
        let origins: Vec<String> = origins.iter().map(|o| o.to_string()).collect();
        let app = test::init_service(
            App::new()
                .wrap(layer(&origins))
                .route("/broadcast", web::post().to(HttpResponse::Ok)),
        )
        .await;
        let req = test::TestRequest::default()
            .method(Method::OPTIONS)
            .uri("/broadcast")
            .insert_header((header::ORIGIN, origin))
            .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, "POST"))
            .insert_header((
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization, content-type",
            ))
            .to_request();
        test::call_service(&app, req).await.headers().clone()
    }

    #[actix_web::test]
    async fn a_wildcard_answers_star_without_credentials() {
        let headers = preflight(&["*"], "https://example.test").await;
        assert_eq!(
            headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(),
            "*"
        );
        assert!(
            headers
                .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
                .is_none()
        );
    }

    #[actix_web::test]
    async fn a_listed_origin_is_echoed_with_credentials_and_others_get_nothing() {
        let headers = preflight(&["https://app.test"], "https://app.test").await;
        let allowed = |name| headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(
            allowed(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            "https://app.test"
        );
        assert_eq!(allowed(header::ACCESS_CONTROL_ALLOW_CREDENTIALS), "true");
        let headers = preflight(&["https://app.test"], "https://evil.test").await;
        assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }
}
