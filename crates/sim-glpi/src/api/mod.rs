//! Request handling: authentication, routing and the answers of GLPI's legacy API.
//! Everything here is synchronous and runs under the state lock.

pub(crate) mod documents;
pub(crate) mod items;
mod session;
pub(crate) mod tickets;

pub(crate) use documents::{Upload, UploadFile};

use crate::faults::FaultState;
use crate::params;
use crate::row::Out;
use crate::state::State;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// A parsed request.
pub(crate) struct Req {
    pub(crate) method: String,
    pub(crate) segments: Vec<String>,
    pub(crate) query: Map<String, Value>,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) content_type: Option<String>,
    pub(crate) raw_body: Vec<u8>,
    pub(crate) upload: Option<Upload>,
}

/// An answer before it becomes an HTTP response.
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

pub(crate) const JSON_CT: &str = "application/json; charset=UTF-8";

impl Resp {
    pub(crate) fn json(status: u16, body: &Out) -> Resp {
        Resp {
            status,
            headers: vec![("Content-Type".into(), JSON_CT.into())],
            body: body.to_body().into_bytes(),
        }
    }

    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Resp {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// The session a call runs in, copied out of the state.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    pub(crate) token: String,
    pub(crate) user_id: i64,
    pub(crate) profile_id: i64,
    pub(crate) active_entity: i64,
    pub(crate) active_entities: Vec<i64>,
    /// Whether the active entity was chosen with its sub-entities.
    pub(crate) recursive: bool,
    pub(crate) helpdesk: bool,
}

/// `["CODE","message"]`, with GLPI's documentation suffix when `docs`.
pub(crate) fn error(st: &State, status: u16, code: &str, msg: &str, docs: bool) -> Resp {
    let msg = if docs {
        let base = if st.is_v11() {
            format!("{}/api.php/v1", st.origin)
        } else {
            st.api_url()
        };
        format!("{msg}; view documentation in your browser at {base}/#{code}")
    } else {
        msg.to_string()
    };
    error_value(status, code, Value::String(msg))
}

pub(crate) fn error_value(status: u16, code: &str, msg: Value) -> Resp {
    Resp::json(
        status,
        &Out::json(Value::Array(vec![Value::from(code), msg])),
    )
}

pub(crate) const NO_RIGHT: &str = "You don't have permission to perform this action.";

/// The normalised endpoint a call is counted under: `GET /Ticket/:id/ITILFollowup`.
pub(crate) fn endpoint_key(method: &str, segments: &[String]) -> String {
    let path: Vec<&str> = segments
        .iter()
        .map(|s| {
            if s.chars().all(|c| c.is_ascii_digit()) {
                ":id"
            } else {
                s.as_str()
            }
        })
        .collect();
    format!("{method} /{}", path.join("/"))
}

pub(crate) fn handle(st: &mut State, faults: &FaultState, req: &Req) -> Resp {
    st.clock.freeze();
    let resp = handle_at(st, faults, req);
    st.clock.thaw();
    resp
}

fn handle_at(st: &mut State, faults: &FaultState, req: &Req) -> Resp {
    // Body parsing (PHP parses the body before anything else).
    let body = match parse_body(st, req) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let mut params = req.query.clone();
    for (k, v) in body.iter() {
        params.insert(k.clone(), v.clone());
    }

    let resource = req.segments.first().cloned().unwrap_or_default();
    if resource.is_empty() {
        return Resp {
            status: 200,
            headers: vec![("Content-Type".into(), "text/html; charset=UTF-8".into())],
            body: b"<html><body><h1>GLPI API (simulator)</h1></body></html>".to_vec(),
        };
    }

    // API client / App-Token.
    let app_token = req.headers.get("app-token").cloned().or_else(|| {
        params
            .get("app_token")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    match app_token {
        None => {
            return error(
                st,
                400,
                "ERROR_APP_TOKEN_PARAMETERS_MISSING",
                "missing parameter app_token",
                true,
            );
        }
        Some(t) if t != st.app_token => {
            return error(
                st,
                400,
                "ERROR_WRONG_APP_TOKEN_PARAMETER",
                "parameter app_token seems wrong",
                true,
            );
        }
        Some(_) => {}
    }

    if resource.eq_ignore_ascii_case("initSession") {
        return session::init_session(st, req, &params);
    }

    // Session.
    let token = req
        .headers
        .get("session-token")
        .cloned()
        .or_else(|| {
            params
                .get("session_token")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default();
    if token.is_empty() || !st.token_well_formed(&token) {
        return error(
            st,
            400,
            "ERROR_SESSION_TOKEN_MISSING",
            "parameter session_token is missing or empty",
            true,
        );
    }
    let Some(session) = st.sessions.get_mut(&token) else {
        return error(
            st,
            401,
            "ERROR_SESSION_TOKEN_INVALID",
            "session_token seems invalid",
            false,
        );
    };
    if faults
        .expire_after_calls
        .is_some_and(|n| session.calls >= n)
    {
        st.sessions.remove(&token);
        return error(
            st,
            401,
            "ERROR_SESSION_TOKEN_INVALID",
            "session_token seems invalid",
            false,
        );
    }
    session.calls += 1;
    let session = session.clone();
    let ctx = Ctx {
        token,
        user_id: session.user_id,
        profile_id: session.profile_id,
        active_entity: session.active_entity,
        active_entities: session.active_entities.clone(),
        recursive: session.recursive != 0 && session.recursive != Value::Bool(false),
        helpdesk: st.profile_is_helpdesk(session.profile_id),
    };

    if let Some(resp) = session::dispatch(st, &ctx, &resource, req, &params) {
        return resp;
    }
    items::dispatch(st, &ctx, req, &params)
}

fn parse_body(st: &State, req: &Req) -> Result<Map<String, Value>, Resp> {
    if req.upload.is_some() || req.raw_body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    if req.method == "GET" {
        return Err(error_value(
            400,
            "ERROR_JSON_PAYLOAD_FORBIDDEN",
            Value::from(
                "GET Request should not have json payload (http body); view documentation in your browser at /#ERROR_JSON_PAYLOAD_FORBIDDEN",
            ),
        ));
    }
    let ct = req
        .content_type
        .clone()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if ct.starts_with("application/x-www-form-urlencoded") {
        return Ok(params::parse_query(&String::from_utf8_lossy(&req.raw_body)));
    }
    match serde_json::from_slice::<Value>(&req.raw_body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Ok(Map::new()),
        Err(_) => Err(error(
            st,
            400,
            "ERROR_JSON_PAYLOAD_INVALID",
            "JSON payload seems not valid",
            false,
        )),
    }
}
