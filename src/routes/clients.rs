//! `GET /clients` and `DELETE /clients/<id>` (SPEC §8): admin endpoints.

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::Auth;
use crate::error::ApiError;
use crate::hub::Hub;
use crate::hub::messages::{Kick, ListClients};
use crate::query;

/// `?limit=` when absent, and its largest value.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

pub async fn list(
    req: HttpRequest,
    auth: web::Data<Auth>,
    hub: web::Data<Addr<Hub>>,
) -> Result<HttpResponse, ApiError> {
    auth.check_admin(&req)?;
    let limit = limit(req.query_string())?;
    let clients = hub.send(ListClients { limit }).await?;
    Ok(HttpResponse::Ok().json(clients))
}

pub async fn disconnect(
    req: HttpRequest,
    id: web::Path<String>,
    auth: web::Data<Auth>,
    hub: web::Data<Addr<Hub>>,
) -> Result<HttpResponse, ApiError> {
    auth.check_admin(&req)?;
    let unknown = || ApiError::NotFoundNamed {
        field: "id",
        reason: format!("no client {:?} is connected", id.as_str()),
    };
    let uuid = uuid::Uuid::parse_str(&id).map_err(|_| unknown())?;
    match hub.send(Kick(uuid)).await? {
        true => {
            log::debug!(
                "request {}: client {uuid} disconnected by an admin",
                crate::request_id::of(&req)
            );
            Ok(HttpResponse::NoContent().finish())
        }
        false => Err(unknown()),
    }
}

/// `limit`: 1 to 1000, default 100.
fn limit(query: &str) -> Result<usize, ApiError> {
    let mut limit = DEFAULT_LIMIT;
    for (name, value) in query::pairs(query) {
        if name != "limit" {
            continue;
        }
        let refuse = || ApiError::invalid("limit", format!("must be 1 to {MAX_LIMIT}"));
        let value = query::decode(value).map_err(|e| ApiError::invalid("limit", e))?;
        limit = value.parse().map_err(|_| refuse())?;
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(refuse());
        }
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_defaults_to_100_and_is_1_to_1000() {
        assert_eq!(limit("").unwrap(), 100);
        assert_eq!(limit("x=1&limit=7").unwrap(), 7);
        assert_eq!(limit("limit=1000").unwrap(), 1000);
        for bad in ["limit=0", "limit=1001", "limit=-1", "limit=ten", "limit="] {
            assert!(limit(bad).is_err(), "{bad}");
        }
    }
}
