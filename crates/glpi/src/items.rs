//! Generic item CRUD (spec §4): anything the typed operations do not cover.

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::client::{Call, GlpiClient, Reply, parse_json};
use crate::error::GlpiError;
use crate::lenient::int_from_value;

/// Largest page asked for in one list call.
const PAGE: u64 = 1000;
/// Safety stop for paging loops.
const MAX_PAGES: u64 = 100;

/// Reject itemtype names that would change the URL path.
pub(crate) fn checked_itemtype(itemtype: &str) -> Result<&str, GlpiError> {
    if !itemtype.is_empty()
        && itemtype
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        Ok(itemtype)
    } else {
        Err(GlpiError::InvalidInput(format!(
            "bad itemtype {itemtype:?}"
        )))
    }
}

impl GlpiClient {
    /// `GET /:itemtype/:id` into any deserialisable type (use `serde_json::Value` for raw).
    /// Text is entity-decoded on GLPI 9.5/10.
    pub async fn get_item<T: DeserializeOwned>(
        &self,
        itemtype: &str,
        id: i64,
    ) -> Result<T, GlpiError> {
        let itemtype = checked_itemtype(itemtype)?;
        let (value, _) = self
            .get_json(Call::get(format!("{itemtype}/{id}")).query("get_hateoas", "false"))
            .await?;
        from_value(value)
    }

    /// `GET /:itemtype` — every visible item (pages through 206 answers).
    pub async fn list_items<T: DeserializeOwned>(
        &self,
        itemtype: &str,
    ) -> Result<Vec<T>, GlpiError> {
        let itemtype = checked_itemtype(itemtype)?;
        self.list_all(itemtype.to_owned(), Vec::new()).await
    }

    /// `GET /:itemtype?searchText[column]=text` — items whose column contains `text`
    /// (GLPI LIKE semantics; `^`/`$` anchor).
    pub async fn list_items_matching<T: DeserializeOwned>(
        &self,
        itemtype: &str,
        column: &str,
        text: &str,
    ) -> Result<Vec<T>, GlpiError> {
        let itemtype = checked_itemtype(itemtype)?;
        let column = checked_itemtype(column)?;
        let text = self.search_value(text).await?;
        self.list_all(
            itemtype.to_owned(),
            vec![(format!("searchText[{column}]"), text)],
        )
        .await
    }

    /// `GET /:parent/:parent_id/:itemtype` — children of an item (e.g. `Ticket/5/ITILFollowup`).
    pub async fn list_sub_items<T: DeserializeOwned>(
        &self,
        parent_itemtype: &str,
        parent_id: i64,
        itemtype: &str,
    ) -> Result<Vec<T>, GlpiError> {
        let parent = checked_itemtype(parent_itemtype)?;
        let itemtype = checked_itemtype(itemtype)?;
        self.list_all(format!("{parent}/{parent_id}/{itemtype}"), Vec::new())
            .await
    }

    /// `POST /:itemtype {"input": input}` → the new id. Send text raw: GLPI encodes it itself.
    pub async fn create_item(
        &self,
        itemtype: &str,
        input: &impl Serialize,
    ) -> Result<i64, GlpiError> {
        let itemtype = checked_itemtype(itemtype)?;
        let input = to_value(input)?;
        let reply = self
            .call(Call::new(Method::POST, itemtype).json(json!({ "input": input })))
            .await?;
        created_id(&reply).map(|(id, _)| id)
    }

    /// `PUT /:itemtype/:id {"input": input}`. Succeeds only if GLPI reports this id updated
    /// (GLPI may still have dropped fields silently — read back when it matters).
    pub async fn update_item(
        &self,
        itemtype: &str,
        id: i64,
        input: &impl Serialize,
    ) -> Result<(), GlpiError> {
        let itemtype = checked_itemtype(itemtype)?;
        let input = to_value(input)?;
        let reply = self
            .call(
                Call::new(Method::PUT, format!("{itemtype}/{id}")).json(json!({ "input": input })),
            )
            .await?;
        item_result(&reply, id, |message| GlpiError::UpdateFailed { message })
    }

    /// `DELETE /:itemtype/:id` — to the trash bin, or purged when `purge` is true.
    pub async fn delete_item(&self, itemtype: &str, id: i64, purge: bool) -> Result<(), GlpiError> {
        let itemtype = checked_itemtype(itemtype)?;
        let reply = self
            .call(
                Call::new(Method::DELETE, format!("{itemtype}/{id}"))
                    .query("force_purge", if purge { "true" } else { "false" }),
            )
            .await?;
        item_result(&reply, id, |message| GlpiError::DeleteFailed { message })
    }

    /// Pages through a list endpoint (`range` always sent: GLPI's default page is the user's
    /// list_limit preference, spec §17 trap 5).
    pub(crate) async fn list_all<T: DeserializeOwned>(
        &self,
        path: String,
        query: Vec<(String, String)>,
    ) -> Result<Vec<T>, GlpiError> {
        let mut out = Vec::new();
        let mut start = 0u64;
        for _ in 0..MAX_PAGES {
            let mut call = Call::get(path.clone())
                .query("range", format!("{start}-{}", start + PAGE - 1))
                .query("get_hateoas", "false");
            call.query.extend(query.iter().cloned());
            let (value, reply) = self.get_json(call).await?;
            let Value::Array(items) = value else {
                return Err(GlpiError::InvalidResponse {
                    status: reply.status,
                    detail: "list answer is not an array".into(),
                });
            };
            let got = items.len() as u64;
            for item in items {
                out.push(from_value(item)?);
            }
            let total = content_range_total(&reply);
            match total {
                Some(total) if start + got < total && got > 0 => start += got,
                _ => break,
            }
        }
        Ok(out)
    }
}

/// `Content-Range: start-end/total` → total.
pub(crate) fn content_range_total(reply: &Reply) -> Option<u64> {
    let value = reply
        .headers
        .get(reqwest::header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    value.rsplit('/').next()?.trim().parse().ok()
}

pub(crate) fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, GlpiError> {
    serde_json::from_value(value).map_err(|e| GlpiError::InvalidResponse {
        status: 200,
        detail: format!("unexpected item shape: {e}"),
    })
}

pub(crate) fn to_value(input: &impl Serialize) -> Result<Value, GlpiError> {
    serde_json::to_value(input).map_err(|e| GlpiError::InvalidInput(e.to_string()))
}

/// A single create answer `{"id":15,"message":"..."}` (id may be a string) → (id, body).
pub(crate) fn created_id(reply: &Reply) -> Result<(i64, Value), GlpiError> {
    let body = parse_json(reply)?;
    let id = body.get("id").and_then(int_from_value).filter(|id| *id > 0);
    match id {
        Some(id) => Ok((id, body)),
        None => Err(GlpiError::AddFailed {
            message: body
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("GLPI returned no id")
                .to_owned(),
        }),
    }
}

/// PUT/DELETE answer: an array even for one id, `[{"15":true,"message":""}]` (spec §4.6).
fn item_result(
    reply: &Reply,
    id: i64,
    failed: impl Fn(String) -> GlpiError,
) -> Result<(), GlpiError> {
    let body = parse_json(reply)?;
    let key = id.to_string();
    let entries: Vec<&Value> = match &body {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![&body],
        Value::Bool(true) => return Ok(()),
        _ => Vec::new(),
    };
    for entry in entries {
        if let Some(flag) = entry.get(&key) {
            let ok = match flag {
                Value::Bool(b) => *b,
                other => int_from_value(other).unwrap_or(0) != 0,
            };
            if ok {
                return Ok(());
            }
            let message = entry
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            return Err(failed(message));
        }
    }
    Err(GlpiError::InvalidResponse {
        status: reply.status,
        detail: format!(
            "no result for id {id} in {}",
            crate::client::excerpt(&reply.body)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn reply(body: &str) -> Reply {
        Reply {
            status: 200,
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn update_array_answer() {
        assert!(
            item_result(&reply(r#"[{"5":true,"message":""}]"#), 5, |m| {
                GlpiError::UpdateFailed { message: m }
            })
            .is_ok()
        );
        let err = item_result(&reply(r#"[{"5":false,"message":"nope"}]"#), 5, |m| {
            GlpiError::UpdateFailed { message: m }
        });
        assert!(matches!(err, Err(GlpiError::UpdateFailed { message }) if message == "nope"));
        assert!(matches!(
            item_result(&reply(r#"[{"6":true,"message":""}]"#), 5, |m| {
                GlpiError::UpdateFailed { message: m }
            }),
            Err(GlpiError::InvalidResponse { .. })
        ));
    }

    #[test]
    fn created_id_accepts_string_ids() {
        assert_eq!(
            created_id(&reply(r#"{"id":"15","message":""}"#)).unwrap().0,
            15
        );
        assert!(matches!(
            created_id(&reply(r#"{"id":false,"message":"no"}"#)),
            Err(GlpiError::AddFailed { message }) if message == "no"
        ));
    }

    #[test]
    fn content_range() {
        let mut r = reply("[]");
        r.headers.insert(
            reqwest::header::CONTENT_RANGE,
            HeaderValue::from_static("0-19/42"),
        );
        assert_eq!(content_range_total(&r), Some(42));
    }

    #[test]
    fn itemtype_names() {
        assert!(checked_itemtype("Ticket_User").is_ok());
        assert!(checked_itemtype("../x").is_err());
        assert!(checked_itemtype("").is_err());
    }
}
