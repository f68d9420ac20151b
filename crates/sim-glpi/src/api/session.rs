//! initSession, killSession and the session/profile/entity endpoints.

use super::{Ctx, Req, Resp, error};
use crate::row::{Out, Row};
use crate::state::State;
use base64::Engine;
use serde_json::{Map, Value, json};

pub(super) fn init_session(st: &mut State, req: &Req, params: &Map<String, Value>) -> Resp {
    let auth = req
        .headers
        .get("authorization")
        .cloned()
        .unwrap_or_default();
    let mut user_token = params
        .get("user_token")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut login = params
        .get("login")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut password = params
        .get("password")
        .and_then(Value::as_str)
        .map(str::to_string);
    if auth.contains("user_token") {
        user_token = auth.split(' ').nth(1).map(str::to_string);
    } else if let Some(b64) = auth.strip_prefix("Basic ")
        && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64.trim())
    {
        let s = String::from_utf8_lossy(&bytes).to_string();
        if let Some((l, p)) = s.split_once(':') {
            login = Some(l.to_string());
            password = Some(p.to_string());
        }
    }
    let user_id = if let Some(tok) = user_token.filter(|t| !t.is_empty()) {
        match st.user_by_api_token(&tok) {
            Some(id) => id,
            None => {
                return error(
                    st,
                    401,
                    "ERROR_GLPI_LOGIN_USER_TOKEN",
                    "parameter user_token seems invalid",
                    false,
                );
            }
        }
    } else if let (Some(l), Some(p)) = (login, password) {
        match st.check_password(&l, &p) {
            Some(id) => id,
            None => {
                return error(
                    st,
                    401,
                    "ERROR_GLPI_LOGIN",
                    "Incorrect username or password",
                    false,
                );
            }
        }
    } else {
        return error(
            st,
            400,
            "ERROR_LOGIN_PARAMETERS_MISSING",
            "parameter(s) login, password or user_token are missing",
            true,
        );
    };
    let token = st.open_session(user_id);
    let mut fields = vec![("session_token", Out::json(token.clone()))];
    if crate::params::truthy(params.get("get_full_session")) {
        fields.push(("session", Out::Json(full_session(st, &token))));
    }
    Resp::json(200, &Out::obj(fields))
}

/// Session endpoints; `None` when the resource is not one of them.
pub(super) fn dispatch(
    st: &mut State,
    ctx: &Ctx,
    resource: &str,
    _req: &Req,
    params: &Map<String, Value>,
) -> Option<Resp> {
    let r = resource.to_ascii_lowercase();
    Some(match r.as_str() {
        "killsession" => {
            st.sessions.remove(&ctx.token);
            st.counters.sessions_killed += 1;
            Resp::json(200, &Out::json(true))
        }
        "getfullsession" => {
            let session = full_session(st, &ctx.token);
            let body = if st.is_v11() {
                session
            } else {
                json!({ "session": session })
            };
            Resp::json(200, &Out::Json(body))
        }
        "getmyprofiles" => Resp::json(
            200,
            &Out::obj(vec![("myprofiles", Out::Arr(my_profiles(st, ctx.user_id)))]),
        ),
        "getactiveprofile" => {
            let mut profile = profile_row(st, ctx.profile_id);
            let entities = profile_entities(st, ctx.user_id, ctx.profile_id);
            profile.set("entities", Value::Array(entities));
            Resp::json(200, &Out::obj(vec![("active_profile", Out::Row(profile))]))
        }
        "changeactiveprofile" => {
            let Some(pid) = params.get("profiles_id").map(crate::row::value_int) else {
                return Some(error(
                    st,
                    400,
                    "ERROR",
                    "missing parameter profiles_id",
                    true,
                ));
            };
            let owns = st
                .rows("Profile_User")
                .any(|r| r.int("users_id") == ctx.user_id && r.int("profiles_id") == pid);
            if !owns {
                return Some(error(
                    st,
                    404,
                    "ERROR_ITEM_NOT_FOUND",
                    "Item not found",
                    false,
                ));
            }
            // `Session::changeProfile` chooses the active entities again, as at login.
            let (active, list, recursive) = st.login_entities(ctx.user_id, pid);
            if let Some(s) = st.sessions.get_mut(&ctx.token) {
                s.profile_id = pid;
                s.active_entity = active;
                s.active_entities = list;
                s.recursive = recursive;
            }
            Resp::json(200, &Out::json(true))
        }
        "getmyentities" => {
            let recursive = crate::params::truthy(params.get("is_recursive"));
            let mut list = Vec::new();
            let mut seen = Vec::new();
            for pu in st
                .rows("Profile_User")
                .filter(|r| r.int("users_id") == ctx.user_id)
            {
                let e = pu.int("entities_id");
                let ids = if recursive && pu.int("is_recursive") == 1 {
                    let mut sub: Vec<i64> = st
                        .entity_subtree(e)
                        .into_iter()
                        .filter(|x| *x != e)
                        .collect();
                    sub.push(e);
                    sub
                } else {
                    vec![e]
                };
                for id in ids {
                    if !seen.contains(&id) {
                        seen.push(id);
                        list.push(
                            json!({"id": id, "name": st.store_text(&st.entity_completename(id))}),
                        );
                    }
                }
            }
            Resp::json(200, &Out::Json(json!({ "myentities": list })))
        }
        "getactiveentities" => {
            let s = st.sessions.get(&ctx.token).cloned();
            let (entity, rec, list) = s
                .map(|s| (s.active_entity, s.recursive, s.active_entities))
                .unwrap_or((0, json!(0), vec![]));
            let list: Vec<Value> = list.into_iter().map(|id| json!({ "id": id })).collect();
            Resp::json(
                200,
                &Out::obj(vec![(
                    "active_entity",
                    Out::obj(vec![
                        ("id", Out::json(entity)),
                        ("active_entity_recursive", Out::Json(rec)),
                        ("active_entities", Out::json(list)),
                    ]),
                )]),
            )
        }
        "changeactiveentities" => {
            let recursive = match params.get("is_recursive") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
                Some(_) => return Some(error(st, 400, "ERROR", "Bad Request", true)),
            };
            // GLPI: no `entities_id` is "all"; anything else goes through `intval`
            // (so the string "all" is entity 0).
            let entity = params.get("entities_id").map(crate::row::value_int);
            let Some((active, list)) =
                st.changed_active_entities(ctx.user_id, ctx.profile_id, entity, recursive)
            else {
                return Some(Resp::json(200, &Out::json(false)));
            };
            if let Some(s) = st.sessions.get_mut(&ctx.token) {
                s.active_entity = active;
                s.active_entities = list;
                s.recursive = Value::Bool(recursive);
            }
            Resp::json(200, &Out::json(true))
        }
        "getglpiconfig" => Resp::json(
            200,
            &Out::Json(
                json!({"cfg_glpi": {"url_base": st.origin, "url_base_api": st.api_url(), "list_limit": st.list_limit}}),
            ),
        ),
        _ => return None,
    })
}

fn profile_row(st: &State, profile_id: i64) -> Row {
    st.get("Profile", profile_id).cloned().unwrap_or_default()
}

fn profile_entities(st: &State, user_id: i64, profile_id: i64) -> Vec<Value> {
    st.rows("Profile_User")
        .filter(|r| r.int("users_id") == user_id && r.int("profiles_id") == profile_id)
        .map(|r| {
            let e = r.int("entities_id");
            json!({"id": e, "name": st.store_text(&st.entity_completename(e)), "is_recursive": r.int("is_recursive")})
        })
        .collect()
}

fn my_profiles(st: &State, user_id: i64) -> Vec<Out> {
    let mut ids: Vec<i64> = st
        .rows("Profile_User")
        .filter(|r| r.int("users_id") == user_id)
        .map(|r| r.int("profiles_id"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .map(|pid| {
            let name = st
                .get("Profile", pid)
                .map(|p| p.str("name"))
                .unwrap_or_default();
            Out::obj(vec![
                ("id", Out::json(pid)),
                ("name", Out::json(name)),
                (
                    "entities",
                    Out::Arr(
                        st.rows("Profile_User")
                            .filter(|r| r.int("users_id") == user_id && r.int("profiles_id") == pid)
                            .map(|r| {
                                let e = r.int("entities_id");
                                Out::obj(vec![
                                    ("id", Out::json(e)),
                                    ("name", Out::json(st.store_text(&st.entity_completename(e)))),
                                    ("is_recursive", Out::json(r.int("is_recursive"))),
                                ])
                            })
                            .collect(),
                    ),
                ),
            ])
        })
        .collect()
}

fn full_session(st: &State, token: &str) -> Value {
    let Some(s) = st.sessions.get(token) else {
        return json!({});
    };
    let user = st.get("User", s.user_id).cloned().unwrap_or_default();
    let mut profile = profile_row(st, s.profile_id).to_value();
    if let Value::Object(p) = &mut profile {
        p.insert(
            "entities".into(),
            Value::Array(profile_entities(st, s.user_id, s.profile_id)),
        );
    }
    let entity_name = st.entity_completename(s.active_entity);
    let recursive = s.recursive == json!(true) || s.recursive == json!(1);
    let active_name = if recursive {
        format!("{entity_name} (tree structure)")
    } else {
        entity_name.clone()
    };
    let profiles: Map<String, Value> = st
        .rows("Profile_User")
        .filter(|r| r.int("users_id") == s.user_id)
        .map(|r| (r.int("profiles_id").to_string(), json!({"name": st.get("Profile", r.int("profiles_id")).map(|p| p.str("name")).unwrap_or_default()})))
        .collect();
    json!({
        "valid_id": "glpi-sim",
        "glpi_currenttime": st.clock.now(),
        "glpi_use_mode": 0,
        "glpiID": s.user_id,
        "glpiis_ids_visible": 0,
        "glpifriendlyname": user.str("name"),
        "glpiname": user.str("name"),
        "glpirealname": user.get("realname").cloned().unwrap_or(Value::Null),
        "glpifirstname": user.get("firstname").cloned().unwrap_or(Value::Null),
        "glpidefault_entity": user.int("entities_id"),
        "glpiextauth": 0,
        "glpiauthtype": 1,
        "glpiroot": "",
        "glpilanguage": "en_GB",
        "glpilist_limit": st.list_limit,
        "glpigroups": [],
        "glpiprofiles": profiles,
        "glpiactiveprofile": profile,
        "glpiactive_entity": s.active_entity,
        "glpiactive_entity_name": active_name,
        "glpiactive_entity_shortname": entity_name,
        "glpiactive_entity_recursive": s.recursive,
        "glpiactiveentities": s.active_entities,
        "glpiactiveentities_string": s.active_entities.iter().map(|e| format!("'{e}'")).collect::<Vec<_>>().join(", "),
        "glpiparententities": st.entity_ancestors(s.active_entity),
    })
}
