//! Security (SPEC §7, §8): the publish token, JWTs, private topics, admin access and
//! CORS refusals, each refusal against the real server, each in the JSON shape, and
//! nothing published by a refused request.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::{AUTHORIZATION, COOKIE, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use ssehub::config::Config;

use crate::cli::{refusal, ssehub, write_config};
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

const TOKEN: &str = "publish-token-for-tests";
const SECRET: &str = "a-jwt-secret-of-at-least-32-bytes-for-tests";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 JWT with these claims (and `exp` an hour away unless given).
fn jwt(claims: Value) -> String {
    signed(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        claims,
    )
}

fn signed(algorithm: Algorithm, key: &EncodingKey, mut claims: Value) -> String {
    if claims.get("exp").is_none() {
        claims["exp"] = (now() + 3600).into();
    }
    jsonwebtoken::encode(&Header::new(algorithm), &claims, key).unwrap()
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

async fn with_auth(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with(|c| {
        c.auth.publish_token = TOKEN.into();
        c.auth.jwt_secret = SECRET.into();
        c.auth.private_topics = vec!["private.*".into()];
        tweak(c);
    })
    .await
}

/// POSTs `body` with `Authorization: <authorization>` (if any); answers the status,
/// the `WWW-Authenticate` header and the JSON reply.
async fn publish_as(
    app: &TestApp,
    authorization: Option<&str>,
    body: Value,
) -> (u16, Option<String>, Value) {
    let mut request = app
        .http
        .post(app.url("/broadcast"))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(authorization) = authorization {
        request = request.header(AUTHORIZATION, authorization);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        challenge,
        response.json().await.expect("every answer is JSON"),
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Asserts a refusal's shape: the status, and an error message containing `words`.
fn assert_refused(reply: &(u16, Option<String>, Value), status: u16, words: &str) {
    let (got, challenge, body) = reply;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["success"], false, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains(words), "{error:?} should say {words:?}");
    if status == 401 {
        assert_eq!(challenge.as_deref(), Some("Bearer"), "401 names its scheme");
    }
}

#[actix_web::test]
async fn publishing_needs_the_token_when_one_is_set_and_refusals_publish_nothing() {
    let app = with_auth(|_| {}).await;
    let mut watcher = app.subscribe("/events").await;
    let event = json!({"data": "x"});
    assert_refused(&publish_as(&app, None, event.clone()).await, 401, "missing");
    assert_refused(
        &publish_as(&app, Some("Bearer wrong"), event.clone()).await,
        401,
        "JWT",
    );
    assert_refused(
        &publish_as(&app, Some("Basic dXNlcjpwYXNz"), event.clone()).await,
        401,
        "Bearer",
    );
    assert_refused(
        &publish_as(&app, Some("Bearer "), event.clone()).await,
        401,
        "Bearer",
    );

    let (status, _, reply) = publish_as(&app, Some(&bearer(TOKEN)), event.clone()).await;
    assert_eq!(status, 200, "{reply}");
    let (status, _, reply) = publish_as(&app, Some(&format!("bearer {TOKEN}")), event).await;
    assert_eq!(status, 200, "the scheme is case-insensitive: {reply}");
    let got = watcher.until(reply["id"].as_str().unwrap()).await;
    assert_eq!(
        got.len(),
        1,
        "only the first accepted event came before: {got:?}"
    );
}

#[actix_web::test]
async fn a_jwt_publishes_only_where_its_claim_reaches() {
    let app = with_auth(|_| {}).await;
    let mut watcher = app.subscribe("/events?topic=*").await;
    let token = bearer(&jwt(json!({"publish": ["stocks", "news.*"]})));

    let ok = publish_as(
        &app,
        Some(&token),
        json!({"topic": "news.sport", "data": "1"}),
    )
    .await;
    assert_eq!(ok.0, 200, "{}", ok.2);
    let refused = publish_as(&app, Some(&token), json!({"topic": "weather", "data": "2"})).await;
    assert_refused(
        &refused,
        403,
        "\"weather\" is not in the token's publish claim",
    );
    assert_eq!(
        refused.2["error"].as_str().unwrap().split(':').next(),
        Some("topic")
    );
    let refused = publish_as(&app, Some(&token), json!({"data": "global"})).await;
    assert_refused(&refused, 403, "a global broadcast needs \"*\"");
    let batch = json!([{"topic": "stocks", "data": "3"}, {"topic": "secret", "data": "4"}]);
    let refused = publish_as(&app, Some(&token), batch).await;
    assert_refused(&refused, 403, "[1].topic: \"secret\"");

    let everything = bearer(&jwt(json!({"publish": ["*"]})));
    let global = publish_as(&app, Some(&everything), json!({"data": "global"})).await;
    assert_eq!(global.0, 200, "{}", global.2);
    let got: Vec<String> = watcher
        .until(global.2["id"].as_str().unwrap())
        .await
        .into_iter()
        .map(|e| e.data)
        .collect();
    assert_eq!(
        got,
        ["1"],
        "refused events reached nobody, the batch not even in part"
    );
}

#[actix_web::test]
async fn bad_jwts_are_401_saying_what_is_wrong() {
    let app = with_auth(|_| {}).await;
    let event = json!({"topic": "stocks", "data": "x"});
    let publish = ["stocks"];
    let expired = jwt(json!({"publish": publish, "exp": now() - 120}));
    assert_refused(
        &publish_as(&app, Some(&bearer(&expired)), event.clone()).await,
        401,
        "expired",
    );
    // Within the 60 s leeway it is still good.
    let just_expired = jwt(json!({"publish": publish, "exp": now() - 10}));
    assert_eq!(
        publish_as(&app, Some(&bearer(&just_expired)), event.clone())
            .await
            .0,
        200
    );

    let other_key = EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!!").unwrap();
    let forged = signed(Algorithm::HS256, &other_key, json!({"publish": publish}));
    assert_refused(
        &publish_as(&app, Some(&bearer(&forged)), event.clone()).await,
        401,
        "wrongly signed",
    );

    let hs384 = signed(
        Algorithm::HS384,
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        json!({"publish": publish}),
    );
    assert_refused(
        &publish_as(&app, Some(&bearer(&hs384)), event.clone()).await,
        401,
        "signed with HS384",
    );

    // Claims without exp at all (`signed` would add one).
    let no_exp = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"publish": publish}),
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_refused(
        &publish_as(&app, Some(&bearer(&no_exp)), event.clone()).await,
        401,
        "no exp claim",
    );

    assert_refused(
        &publish_as(&app, Some("Bearer not.a.jwt"), event.clone()).await,
        401,
        "JWT",
    );
    let bad_claim = jwt(json!({"publish": ["a*b"]}));
    assert_refused(
        &publish_as(&app, Some(&bearer(&bad_claim)), event).await,
        401,
        "publish claim",
    );
}

#[actix_web::test]
async fn rs256_and_es256_tokens_are_verified_with_the_public_key_file() {
    for (algorithm, private, public) in [
        (Algorithm::RS256, "rs256-private.pem", "rs256-public.pem"),
        (Algorithm::ES256, "es256-private.pem", "es256-public.pem"),
    ] {
        let app = spawn_app_with(|c| c.auth.jwt_public_key_file = fixture(public)).await;
        let pem = std::fs::read(fixture(private)).unwrap();
        let key = match algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
            _ => EncodingKey::from_ec_pem(&pem).unwrap(),
        };
        let token = signed(algorithm, &key, json!({"publish": ["*"]}));
        let reply = publish_as(&app, Some(&bearer(&token)), json!({"data": "x"})).await;
        assert_eq!(reply.0, 200, "{algorithm:?}: {}", reply.2);
        // An HS256 token is another algorithm here, whatever its secret.
        let hs = jwt(json!({"publish": ["*"]}));
        assert_refused(
            &publish_as(&app, Some(&bearer(&hs)), json!({"data": "x"})).await,
            401,
            "HS256",
        );
    }
}

#[test]
fn a_key_file_that_is_not_a_public_key_exits_2_naming_it() {
    let fine = write_config("auth-key", "");
    let line = refusal(
        ssehub()
            .arg("--config")
            .arg(&fine)
            .env("SSEHUB_AUTH_JWT_PUBLIC_KEY_FILE", fixture("README.md")),
    );
    assert!(
        line.contains("SSEHUB_AUTH_JWT_PUBLIC_KEY_FILE")
            && line.contains("auth.jwt_public_key_file")
            && line.contains("not a PEM public key"),
        "{line}"
    );
    let line = refusal(
        ssehub()
            .arg("--config")
            .arg(&fine)
            .env("SSEHUB_AUTH_JWT_PUBLIC_KEY_FILE", "/nonexistent.pem"),
    );
    assert!(line.contains("cannot read /nonexistent.pem"), "{line}");
    // A private key is not a public key, though a JWT library would take it.
    let line = refusal(ssehub().arg("--config").arg(&fine).env(
        "SSEHUB_AUTH_JWT_PUBLIC_KEY_FILE",
        fixture("rs256-private.pem"),
    ));
    assert!(line.contains("not a PUBLIC KEY"), "{line}");
}

/// GET `path` with extra headers; answers the status and, for a refusal, its JSON.
async fn subscribe_status(app: &TestApp, path: &str, headers: &[(&str, String)]) -> (u16, Value) {
    let mut request = app.http.get(app.url(path));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if status == 200 {
        return (status, Value::Null);
    }
    assert!(response.headers().get(WWW_AUTHENTICATE).is_some() || status != 401);
    (status, response.json().await.expect("a refusal is JSON"))
}

#[actix_web::test]
async fn naming_a_private_topic_needs_a_token_that_covers_it_by_header_query_or_cookie() {
    let app = with_auth(|_| {}).await;
    let alice = jwt(json!({"subscribe": ["private.alice"]}));
    let bob = jwt(json!({"subscribe": ["private.bob"]}));
    let path = "/events?topic=private.alice";

    let (status, body) = subscribe_status(&app, path, &[]).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("private topic"),
        "{body}"
    );
    let (status, body) = subscribe_status(&app, path, &[("Authorization", bearer(&bob))]).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = subscribe_status(&app, path, &[("Authorization", bearer(TOKEN))]).await;
    assert_eq!(status, 403, "the publish token opens no private topic");
    let (status, body) = subscribe_status(
        &app,
        "/events?topic=news",
        &[("Authorization", bearer("junk"))],
    )
    .await;
    assert_eq!(
        status, 401,
        "a credential that is sent must be valid: {body}"
    );

    assert_eq!(
        subscribe_status(&app, path, &[("Authorization", bearer(&alice))])
            .await
            .0,
        200
    );
    assert_eq!(
        subscribe_status(&app, &format!("{path}&token={alice}"), &[])
            .await
            .0,
        200
    );
    let cookie = format!("ssehub_token={alice}");
    assert_eq!(
        subscribe_status(&app, path, &[(COOKIE.as_str(), cookie)])
            .await
            .0,
        200
    );
    // Another scheme (a proxy's login) and a stale cookie are not the client's bearer.
    let basic = ("Authorization", "Basic dXNlcjpwYXNz".to_owned());
    assert_eq!(
        subscribe_status(&app, "/events?topic=news", &[basic])
            .await
            .0,
        200
    );
    let stale = (COOKIE.as_str(), "ssehub_token=expired.or.junk".to_owned());
    let with_stale = [stale];
    assert_eq!(
        subscribe_status(&app, "/events?topic=news", &with_stale)
            .await
            .0,
        200
    );
    assert_eq!(subscribe_status(&app, path, &with_stale).await.0, 401);
    // Patterns are accepted without a token: they just never see private events.
    assert_eq!(
        subscribe_status(&app, "/events?topic=private.*", &[])
            .await
            .0,
        200
    );
}

#[actix_web::test]
async fn private_events_reach_only_clients_whose_token_covers_them_live_and_replayed() {
    let app = with_auth(|c| c.sse.history_size = 100).await;
    let alice = jwt(json!({"subscribe": ["private.alice"]}));
    let mut anyone = app.subscribe("/events?topic=*").await;
    let mut public_only = app.subscribe("/events?topic=news").await;
    let mut allowed = app
        .subscribe(&format!("/events?topic=*&token={alice}"))
        .await;
    let token = bearer(TOKEN);
    let mut ids = Vec::new();
    for event in [
        json!({"topic": "news", "data": "public"}),
        json!({"topic": "private.alice", "data": "for alice"}),
        json!({"topics": ["news", "private.alice"], "data": "mixed"}),
        json!({"topics": ["private.alice", "private.bob"], "data": "for both"}),
    ] {
        let reply = publish_as(&app, Some(&token), event).await;
        assert_eq!(reply.0, 200, "{}", reply.2);
        ids.push(reply.2["id"].as_str().unwrap().to_owned());
    }
    let marker = publish_as(
        &app,
        Some(&token),
        json!({"topic": "news", "data": "marker"}),
    )
    .await;
    let marker = marker.2["id"].as_str().unwrap().to_owned();
    let data = |events: Vec<eventsource_stream::Event>| -> Vec<String> {
        events.into_iter().map(|e| e.data).collect()
    };
    assert_eq!(data(anyone.until(&marker).await), ["public"]);
    assert_eq!(
        data(public_only.until(&marker).await),
        ["public"],
        "mixed is private"
    );
    assert_eq!(
        data(allowed.until(&marker).await),
        ["public", "for alice", "mixed"]
    );

    // Replayed the same way.
    let mut replay = app.subscribe("/events?topic=*&lastEventId=earliest").await;
    assert_eq!(data(replay.until(&marker).await), ["public"]);
    let mut replay = app
        .subscribe(&format!(
            "/events?topic=*&lastEventId=earliest&token={alice}"
        ))
        .await;
    assert_eq!(
        data(replay.until(&marker).await),
        ["public", "for alice", "mixed"]
    );
}

#[actix_web::test]
async fn admin_endpoints_need_the_publish_token_or_an_admin_jwt() {
    let app = with_auth(|_| {}).await;
    let stats = |authorization: Option<String>| {
        let mut request = app.http.get(app.url("/stats"));
        if let Some(authorization) = authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = stats(None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["success"], false);
    let (status, _) = stats(Some(bearer(&jwt(json!({"publish": ["*"]}))))).await;
    assert_eq!(status, 403, "a valid JWT without admin");
    let (status, body) = stats(Some(bearer(TOKEN))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = stats(Some(bearer(&jwt(json!({"admin": true}))))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["clients"].is_u64());
}

#[actix_web::test]
async fn a_refused_preflight_is_answered_in_the_json_shape() {
    let app = spawn_app_with(|c| c.cors.allowed_origins = vec!["https://app.test".into()]).await;
    let preflight = |origin: &str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/broadcast"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.test").await.unwrap();
    assert!(allowed.status().is_success());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.test"
    );
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );

    let refused = preflight("https://evil.test").await.unwrap();
    assert!(refused.status().is_client_error(), "{}", refused.status());
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let body: Value = refused.json().await.expect("a JSON refusal");
    assert_eq!(body["success"], false);
    assert!(
        body["error"].as_str().unwrap().starts_with("Origin:"),
        "{body}"
    );

    // CORS is for /events and /broadcast: no other origin may read the admin views,
    // even with allowed_origins = ["*"].
    let app = spawn_app().await;
    let from_elsewhere = |path: &str| {
        app.http
            .get(app.url(path))
            .header("Origin", "https://elsewhere.test")
            .send()
    };
    for path in ["/stats", "/clients", "/metrics"] {
        let answer = from_elsewhere(path).await.unwrap();
        let allowed = answer.headers().get("access-control-allow-origin");
        assert!(allowed.is_none(), "{path} answered another origin");
    }
    let events = from_elsewhere("/events").await.unwrap();
    assert_eq!(events.headers()["access-control-allow-origin"], "*");
}

#[actix_web::test]
async fn ssehub_token_mints_what_the_server_accepts() {
    let fine = write_config("token", "");
    let output = ssehub()
        .arg("--config")
        .arg(&fine)
        .args(["token", "--publish", "stocks", "news.*", "--ttl", "10m"])
        .env("SSEHUB_AUTH_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp"]);
    let claims = jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        &validation,
    )
    .expect("signed with the configured secret")
    .claims;
    assert_eq!(claims["publish"], json!(["stocks", "news.*"]));
    // And the server takes it, for what it covers only.
    let app = with_auth(|_| {}).await;
    let minted = bearer(&token);
    let ok = publish_as(&app, Some(&minted), json!({"topic": "news.x", "data": "1"})).await;
    assert_eq!(ok.0, 200, "{}", ok.2);
    let no = publish_as(
        &app,
        Some(&minted),
        json!({"topic": "weather", "data": "1"}),
    )
    .await;
    assert_eq!(no.0, 403, "{}", no.2);
    let exp = claims["exp"].as_u64().unwrap();
    assert!(
        (now() + 590..=now() + 610).contains(&exp),
        "ten minutes: {exp}"
    );

    let line = refusal(
        ssehub()
            .arg("--config")
            .arg(&fine)
            .args(["token", "--admin"]),
    );
    assert!(line.contains("auth.jwt_secret is not set"), "{line}");
    let help = ssehub().args(["token", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("Examples:"));
}
