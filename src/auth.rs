//! Who may publish, subscribe to private topics, and use the admin endpoints (SPEC §7,
//! §8): the publish token, JWTs, and the loopback rule when neither is configured.
//!
//! A bearer is read from `Authorization: Bearer`, and for subscribers also from the
//! `token` query parameter or the `ssehub_token` cookie (`EventSource` cannot set
//! headers). The publish token may publish anywhere and use the admin endpoints; a JWT
//! may do what its claims say. Every refusal says why: `401` (with
//! `WWW-Authenticate: Bearer`) when there is no valid credential, `403` when a valid
//! one does not allow this.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::HttpRequest;
use actix_web::http::header;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{AuthConfig, ConfigError};
use crate::error::ApiError;
use crate::event::Publication;
use crate::topic::{Patterns, TopicFilter};

/// Seconds a token may be past its `exp` and still be accepted: clocks drift (SPEC §7).
const LEEWAY_SECS: u64 = 60;

/// The cookie a browser may carry its subscriber token in.
pub const COOKIE: &str = "ssehub_token";

/// A JWT's claims (SPEC §7). `exp` is required; the others default to nothing allowed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Claims {
    /// Optional here only so that a token without it is refused by the validation,
    /// which says so, rather than by deserialisation, which would call it malformed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribe: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

/// What a verified bearer may do.
#[derive(Debug)]
enum Bearer {
    /// The publish token: publish anywhere, use the admin endpoints.
    PublishToken,
    Jwt(Grant),
}

/// A verified JWT's rights, its patterns parsed.
#[derive(Debug, Default)]
struct Grant {
    publish: Patterns,
    subscribe: Patterns,
    admin: bool,
}

/// The verifier of one algorithm.
struct Key {
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The access rules of one server, built from `[auth]` at start.
#[derive(Clone)]
pub struct Auth(Arc<Inner>);

struct Inner {
    /// SHA-256 of the publish token: compared in constant time, whatever its length.
    publish_token: Option<[u8; 32]>,
    keys: Vec<Key>,
    private: Patterns,
}

/// What a publisher may publish to: everything (loopback without credentials, or the
/// publish token), or what its JWT's `publish` claim covers.
#[derive(Debug)]
pub struct PublishRights(Option<Patterns>);

impl PublishRights {
    /// Every event's topics must be covered; a global broadcast needs `*` (SPEC §7).
    pub fn check(&self, publication: &Publication) -> Result<(), ApiError> {
        let Some(allowed) = &self.0 else {
            return Ok(());
        };
        for (i, event) in publication.events.iter().enumerate() {
            let field = match publication.batch {
                true => format!("[{i}].topic"),
                false => "topic".into(),
            };
            if event.topics.is_empty() && !allowed.covers_everything() {
                return Err(ApiError::forbidden(
                    field,
                    "a global broadcast needs \"*\" in the token's publish claim",
                ));
            }
            if let Some(topic) = event.topics.iter().find(|t| !allowed.matches(t)) {
                return Err(ApiError::forbidden(
                    field,
                    format!("{:?} is not in the token's publish claim", topic.as_str()),
                ));
            }
        }
        Ok(())
    }
}

/// What a subscriber's credential lets it see of private topics.
pub type Sight = Arc<Patterns>;

impl Auth {
    /// Reads the keys; a key file that cannot be read or is not a PEM public key of a
    /// supported kind is a configuration error (exit 2).
    pub fn from_config(config: &AuthConfig) -> Result<Self, ConfigError> {
        let error = |key: &str, problem: String| ConfigError {
            source_name: String::new(),
            key: key.into(),
            problem,
        };
        let mut keys = Vec::new();
        if !config.jwt_secret.is_empty() {
            keys.push(Key {
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(config.jwt_secret.as_bytes())
                    .map_err(|e| error("auth.jwt_secret", e.to_string()))?,
            });
        }
        if !config.jwt_public_key_file.is_empty() {
            let key = public_key(Path::new(&config.jwt_public_key_file))
                .map_err(|problem| error("auth.jwt_public_key_file", problem))?;
            keys.push(key);
        }
        let private = Patterns::parse(&config.private_topics)
            .map_err(|problem| error("auth.private_topics", problem))?;
        let publish_token = (!config.publish_token.is_empty())
            .then(|| Sha256::digest(config.publish_token.as_bytes()).into());
        Ok(Self(Arc::new(Inner {
            publish_token,
            keys,
            private,
        })))
    }

    /// Whether a token or a JWT key is configured; without either, publishing and the
    /// admin endpoints are open to loopback clients only.
    pub fn configured(&self) -> bool {
        self.0.publish_token.is_some() || !self.0.keys.is_empty()
    }

    /// Who is publishing: checked before the body is read, so an unauthenticated
    /// request costs no parsing. The topics are checked once known
    /// ([`PublishRights::check`]).
    pub fn publisher(&self, req: &HttpRequest) -> Result<PublishRights, ApiError> {
        Ok(PublishRights(
            match self.bearer_or_loopback(req, "publish")? {
                None | Some(Bearer::PublishToken) => None,
                Some(Bearer::Jwt(grant)) => Some(grant.publish),
            },
        ))
    }

    /// May this request use the admin endpoints (SPEC §8)?
    pub fn check_admin(&self, req: &HttpRequest) -> Result<(), ApiError> {
        match self.bearer_or_loopback(req, "use the admin endpoints")? {
            None | Some(Bearer::PublishToken) => Ok(()),
            Some(Bearer::Jwt(grant)) if grant.admin => Ok(()),
            Some(Bearer::Jwt(_)) => Err(ApiError::forbidden(
                "Authorization",
                "the token has no \"admin\": true claim",
            )),
        }
    }

    /// Checks a subscription: naming a private topic outright needs a JWT whose
    /// `subscribe` claim covers it. Answers what the subscriber may see of private
    /// events (what its token covers; nothing without one). A credential that is sent
    /// but not valid is refused even when no private topic is asked for: the client
    /// believes it has rights, and silence would hide why it gets nothing private.
    pub fn check_subscribe(
        &self,
        req: &HttpRequest,
        query_token: Option<&str>,
        filters: &[TopicFilter],
    ) -> Result<Sight, ApiError> {
        // Without any credential configured there is nothing to check: a browser
        // behind a proxy with its own login (`Authorization: Basic`), or with a cookie
        // left from elsewhere, must still get public streams.
        if !self.configured() {
            return Ok(Sight::default());
        }
        // A bearer the client sent on purpose (header, query) must be valid; other
        // schemes belong to someone else (a proxy's login), and a cookie is sent by the
        // browser whatever the page meant, so an invalid one is ignored.
        let chosen = bearer_if_any(req)
            .map(str::to_owned)
            .or_else(|| query_token.map(str::to_owned));
        let token = match chosen {
            Some(token) => Some(token),
            None => req
                .cookie(COOKIE)
                .map(|c| c.value().to_owned())
                .filter(|token| self.verify(token).is_ok()),
        };
        // `None`: no credential was sent.
        let grant = match token {
            Some(token) => Some(match self.verify(&token)? {
                Bearer::Jwt(grant) => grant,
                // The publish token publishes; it does not open private topics.
                Bearer::PublishToken => Grant::default(),
            }),
            None => None,
        };
        let named = filters.iter().filter_map(|f| match f {
            TopicFilter::Exact(topic) if self.0.private.matches(topic) => Some(topic),
            _ => None,
        });
        for topic in named {
            match &grant {
                None => {
                    return Err(ApiError::unauthorized(format!(
                        "{:?} is a private topic: subscribing needs a JWT whose subscribe \
                         claim covers it",
                        topic.as_str()
                    )));
                }
                Some(grant) if !grant.subscribe.matches(topic) => {
                    return Err(ApiError::forbidden(
                        "topic",
                        format!(
                            "{:?} is a private topic the token's subscribe claim does not cover",
                            topic.as_str()
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        let grant = grant.unwrap_or_default();
        Ok(Arc::new(grant.subscribe))
    }

    /// The bearer, or `None` when no credential is configured and the peer is on
    /// loopback (SPEC §7); refusals otherwise.
    fn bearer_or_loopback(
        &self,
        req: &HttpRequest,
        action: &str,
    ) -> Result<Option<Bearer>, ApiError> {
        if !self.configured() {
            return if is_loopback(req.peer_addr()) {
                Ok(None)
            } else {
                Err(ApiError::forbidden(
                    "Authorization",
                    format!(
                        "without publish_token or a JWT key, only loopback clients may {action}"
                    ),
                ))
            };
        }
        match bearer_header(req)? {
            Some(token) => self.verify(token).map(Some),
            None => Err(ApiError::unauthorized(
                "missing (Authorization: Bearer <token>)",
            )),
        }
    }

    /// The publish token, or a JWT valid under one of the configured keys.
    fn verify(&self, token: &str) -> Result<Bearer, ApiError> {
        if let Some(expected) = &self.0.publish_token
            && bool::from(Sha256::digest(token.as_bytes()).ct_eq(expected))
        {
            return Ok(Bearer::PublishToken);
        }
        if self.0.keys.is_empty() {
            return Err(ApiError::unauthorized("wrong token"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            ApiError::unauthorized(match self.0.publish_token {
                Some(_) => format!("neither the publish token nor a JWT ({})", reason(&e)),
                None => format!("not a JWT: {}", reason(&e)),
            })
        })?;
        let Some(key) = self.0.keys.iter().find(|k| k.algorithm == header.alg) else {
            let accepted: Vec<String> = self
                .0
                .keys
                .iter()
                .map(|k| format!("{:?}", k.algorithm))
                .collect();
            return Err(ApiError::unauthorized(format!(
                "the JWT is signed with {:?}; this hub accepts {}",
                header.alg,
                accepted.join(", ")
            )));
        };
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_nbf = true;
        // Tokens from an identity provider carry an audience; the hub has none to
        // compare it with, so it is not a reason to refuse them.
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| ApiError::unauthorized(format!("the JWT {}", reason(&e))))?
            .claims;
        let patterns = |claim: &str, list: &[String]| {
            Patterns::parse(list).map_err(|problem| {
                ApiError::unauthorized(format!("the JWT's {claim} claim: {problem}"))
            })
        };
        Ok(Bearer::Jwt(Grant {
            publish: patterns("publish", &claims.publish)?,
            subscribe: patterns("subscribe", &claims.subscribe)?,
            admin: claims.admin,
        }))
    }
}

/// Why a JWT was refused, in words a person can act on.
fn reason(error: &jsonwebtoken::errors::Error) -> String {
    match error.kind() {
        ErrorKind::ExpiredSignature => {
            format!("has expired (its exp is past, beyond {LEEWAY_SECS} s of leeway)")
        }
        ErrorKind::ImmatureSignature => "is not valid yet (nbf)".into(),
        ErrorKind::InvalidSignature => "is wrongly signed (not by this hub's key)".into(),
        ErrorKind::InvalidAlgorithm => "is signed with another algorithm".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("has no {claim} claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("has a malformed {claim} claim"),
        ErrorKind::Json(e) => format!("is malformed (its claims: {e})"),
        _ => "is malformed".into(),
    }
}

/// The token of `Authorization: Bearer <token>`, ignoring other schemes.
fn bearer_if_any(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// The token of `Authorization: Bearer <token>`, if the header is there.
fn bearer_header(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not ASCII"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::unauthorized(
            "expected \"Authorization: Bearer <token>\"",
        )),
    }
}

/// `to_canonical`: an IPv4 peer on a dual-stack socket shows as `::ffff:127.0.0.1`.
fn is_loopback(peer: Option<SocketAddr>) -> bool {
    peer.is_some_and(|peer| peer.ip().to_canonical().is_loopback())
}

/// DER of the object identifiers a public key's `SubjectPublicKeyInfo` names.
const RSA_OID: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Reads a PEM public key: RSA for RS256, EC P-256 for ES256. Only a public key will
/// do: jsonwebtoken would also take an RSA private key, or an EC key on another
/// curve, and then refuse every token as wrongly signed, whereas a wrong file must stop
/// the server at start.
fn public_key(path: &Path) -> Result<Key, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let refuse = |what: &str| {
        format!(
            "{} is not a PEM public key of RSA (RS256) or EC P-256 (ES256): {what}",
            path.display()
        )
    };
    let block = pem::parse(&text).map_err(|e| refuse(&e.to_string()))?;
    let der = block.contents();
    let holds = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
    let (algorithm, key) = match block.tag() {
        "RSA PUBLIC KEY" => (Algorithm::RS256, DecodingKey::from_rsa_pem(&text)),
        "PUBLIC KEY" if holds(RSA_OID) => (Algorithm::RS256, DecodingKey::from_rsa_pem(&text)),
        "PUBLIC KEY" if holds(P256_OID) => (Algorithm::ES256, DecodingKey::from_ec_pem(&text)),
        "PUBLIC KEY" => return Err(refuse("a key of another kind or curve")),
        other => return Err(refuse(&format!("a {other}, not a PUBLIC KEY"))),
    };
    let key = key.map_err(|e| refuse(&e.to_string()))?;
    Ok(Key { algorithm, key })
}

/// Mints an HS256 token with `secret` (`ssehub token`).
pub fn mint(
    secret: &str,
    ttl: Duration,
    mut claims: Claims,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    claims.exp = Some((now + ttl).as_secs());
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes())?,
    )
}
