//! `GET /events`: the subscriber's long-lived stream (SPEC §3).

use actix::Addr;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::Auth;
use crate::cluster::Catchup;
use crate::conn::ConnHandle;
use crate::error::ApiError;
use crate::event::{EARLIEST, MAX_TOPICS};
use crate::hub::messages::Connect;
use crate::hub::{Connector, Hub, Joining};
use crate::query;
use crate::request_id;
use crate::topic::TopicFilter;

pub async fn subscribe(
    req: HttpRequest,
    hub: web::Data<Addr<Hub>>,
    connector: web::Data<Connector>,
    auth: web::Data<Auth>,
    catchup: web::Data<Option<Catchup>>,
) -> Result<HttpResponse, ApiError> {
    let answer = connect(&req, &hub, &connector, &auth, catchup.as_ref().as_ref()).await;
    if let Err(refusal) = &answer {
        request_id::log_refusal(&req, "subscription", refusal);
    }
    answer
}

async fn connect(
    req: &HttpRequest,
    hub: &Addr<Hub>,
    connector: &Connector,
    auth: &Auth,
    catchup: Option<&Catchup>,
) -> Result<HttpResponse, ApiError> {
    let asked = read_request(req)?;
    let sight = auth.check_subscribe(req, asked.token.as_deref(), &asked.filters)?;
    // In a cluster, an id issued through another node may not have been read here yet.
    if let (Some(catchup), Some(id)) = (catchup, asked.last_event_id.as_deref())
        && id != EARLIEST
    {
        catchup.wait_for(id, hub).await;
    }
    let uuid = uuid::Uuid::new_v4();
    log::debug!("request {}: client {uuid} subscribes", request_id::of(req));
    let joining = Joining {
        filters: asked.filters,
        sight,
        conn: conn_of(req).clone(),
        uuid,
        peer: req.peer_addr(),
    };
    let subscription = match asked.last_event_id {
        // Without a position, admitted at once: no round trip through the hub.
        None => connector.join(joining).map_err(Some),
        // A replay is the hub's to make, with the registration, in one step.
        Some(last_event_id) => {
            let connect = Connect {
                filters: joining.filters,
                last_event_id: Some(last_event_id),
                sight: joining.sight,
                conn: joining.conn,
                uuid,
                peer: joining.peer,
            };
            match hub.send(connect).await {
                Ok(answer) => answer.map_err(Some),
                Err(_) => Err(None),
            }
        }
    };
    let subscription = match subscription {
        Ok(subscription) => subscription,
        Err(Some(refused)) if refused != ApiError::ShuttingDown => return Err(refused),
        // A stopping node closes the connection rather than answer 503: EventSource
        // gives up for good on any answer but 200, whereas a connection that fails is
        // retried (by then to another node, if there is one). A browser reusing a
        // kept-alive connection lands here while the server stops.
        _ => {
            conn_of(req).trip();
            return Err(ApiError::ShuttingDown);
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        // The stream holds the connection for its life; when it ends (shutdown, slow
        // client) the connection goes too, so the browser reconnects afresh.
        .force_close()
        .streaming(subscription))
}

fn conn_of(req: &HttpRequest) -> &ConnHandle {
    req.conn_data::<ConnHandle>()
        .expect("every connection is accepted as a ConnIo (startup)")
}

/// What a subscription asks for.
#[derive(Debug, Default)]
struct Asked {
    filters: Vec<TopicFilter>,
    last_event_id: Option<String>,
    /// The `token` query parameter (SPEC §7), for clients that cannot set headers.
    token: Option<String>,
}

/// The topics, the `Last-Event-ID` and the token asked for. The header wins over the
/// query parameter; an empty value means none. Unknown parameters (cache-busters) are
/// ignored.
fn read_request(req: &HttpRequest) -> Result<Asked, ApiError> {
    let mut asked = Asked::default();
    let (filters, last_event_id) = (&mut asked.filters, &mut asked.last_event_id);
    let mut topics = 0;
    for (name, value) in query::pairs(req.query_string()) {
        // A name we cannot decode is not one we read: ignored like any other.
        let Ok(name) = query::decode(name) else {
            continue;
        };
        let value = || query::decode(value).map_err(|e| ApiError::invalid(name.clone(), e));
        match name.as_str() {
            "topic" => {
                topics += 1;
                if topics > MAX_TOPICS {
                    return Err(ApiError::invalid(
                        "topic",
                        format!("at most {MAX_TOPICS} topics per subscription"),
                    ));
                }
                let value = value()?;
                let filter = TopicFilter::parse(&value)
                    .map_err(|reason| ApiError::invalid("topic", format!("{value:?} {reason}")))?;
                if !filters.contains(&filter) {
                    filters.push(filter);
                }
            }
            "lastEventId" => {
                let value = value()?;
                if !value.is_empty() {
                    *last_event_id = Some(value);
                }
            }
            "token" => {
                let value = value()?;
                if !value.is_empty() {
                    asked.token = Some(value);
                }
            }
            _ => {}
        }
    }
    if let Some(value) = req.headers().get("Last-Event-ID") {
        let value = std::str::from_utf8(value.as_bytes())
            .map_err(|_| ApiError::invalid("Last-Event-ID", "must be UTF-8"))?;
        if !value.is_empty() {
            *last_event_id = Some(value.to_owned());
        }
    }
    Ok(asked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn the_header_wins_and_repeated_topics_count_once() {
        let req = TestRequest::get()
            .uri("/events?topic=a&topic=a&topic=b.*&lastEventId=q&_=%zz&%zz=1")
            .insert_header(("Last-Event-ID", "h"))
            .to_http_request();
        let asked = read_request(&req).unwrap();
        assert_eq!(asked.filters.len(), 2);
        assert_eq!(asked.last_event_id.as_deref(), Some("h"));
    }

    #[test]
    fn bad_subscriptions_are_refused_naming_the_parameter() {
        let many: String = (0..33).map(|i| format!("topic=t{i}&")).collect();
        for uri in [
            format!("/events?{many}"),
            "/events?topic=".into(),
            "/events?topic=a*b".into(),
            "/events?topic=%01".into(),
            "/events?topic=%zz".into(),
        ] {
            let req = TestRequest::get().uri(&uri).to_http_request();
            let err = read_request(&req).unwrap_err();
            assert!(matches!(err, ApiError::Invalid { .. }), "{uri}: {err:?}");
        }
    }
}
