//! The client: one form-encoded POST per operation (`version`, `json_data`).

use std::sync::Arc;

use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use crate::config::{ItopAuth, ItopConfig};
use crate::error::ItopError;
use crate::response::{ItopObject, Key, RestResponse};

/// A cheap-to-clone iTop REST client.
#[derive(Debug, Clone)]
pub struct ItopClient {
    http: reqwest::Client,
    config: Arc<ItopConfig>,
}

impl ItopClient {
    pub fn new(config: ItopConfig) -> Result<ItopClient, ItopError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // A redirect would carry the credentials (an `Auth-Token`
            // header, the form's password) to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ItopError::Config(e.to_string()))?;
        Ok(ItopClient {
            http,
            config: Arc::new(config),
        })
    }

    pub fn config(&self) -> &ItopConfig {
        &self.config
    }

    /// Sends one operation (`json_data` object) and parses the answer; a non-zero
    /// result code becomes the matching error.
    pub async fn call(&self, request: &Value) -> Result<RestResponse, ItopError> {
        let mut form = vec![
            ("version".to_string(), self.config.version.clone()),
            ("json_data".to_string(), request.to_string()),
        ];
        let mut req = self.http.post(self.config.endpoint());
        match &self.config.auth {
            ItopAuth::Basic { user, password } => {
                req = req.basic_auth(user, Some(password.expose_secret()))
            }
            ItopAuth::Form { user, password } => {
                form.push(("auth_user".into(), user.clone()));
                form.push(("auth_pwd".into(), password.expose_secret().to_string()));
            }
            ItopAuth::Token(token) => req = req.header("Auth-Token", token.expose_secret()),
        }
        let operation = request
            .get("operation")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        tracing::debug!(%operation, "itop call");
        let resp = req.form(&form).send().await?;
        let status = resp.status().as_u16();
        if resp.status().is_redirection() {
            let to = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("?");
            return Err(ItopError::Config(format!(
                "iTop answered HTTP {status}, a redirect to {to}: set the target's url to the address it redirects to (redirects are not followed, they would carry the credentials)"
            )));
        }
        if status != 200 {
            return Err(ItopError::Http { status });
        }
        let body = capped_body::read(resp, self.config.max_response_bytes).await?;
        RestResponse::parse(&String::from_utf8_lossy(&body))
    }

    /// `list_operations`: the verbs the server offers.
    pub async fn list_operations(&self) -> Result<Vec<String>, ItopError> {
        let r = self.call(&json!({"operation": "list_operations"})).await?;
        Ok(r.body
            .get("operations")
            .and_then(Value::as_array)
            .map(|ops| {
                ops.iter()
                    .filter_map(|o| o.get("verb").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `core/check_credentials`: whether `user`/`password` are valid iTop credentials.
    pub async fn check_credentials(&self, user: &str, password: &str) -> Result<bool, ItopError> {
        let r = self
            .call(
                &json!({"operation": "core/check_credentials", "user": user, "password": password}),
            )
            .await?;
        Ok(r.body
            .get("authorized")
            .and_then(Value::as_bool)
            .unwrap_or(false))
    }

    /// `core/get`: all objects matching `key`, with `output_fields` (e.g. `"id,ref,status"` or `"*"`).
    pub async fn get(
        &self,
        class: &str,
        key: impl Into<Key>,
        output_fields: &str,
    ) -> Result<Vec<ItopObject>, ItopError> {
        let key = key.into();
        let r = self
            .call(&json!({"operation": "core/get", "class": class, "key": key.to_value(), "output_fields": output_fields}))
            .await?;
        Ok(r.objects)
    }

    /// `core/get` with `limit`/`page` (page ≥ 1); returns the page and the total count.
    pub async fn get_page(
        &self,
        class: &str,
        key: impl Into<Key>,
        output_fields: &str,
        limit: u64,
        page: u64,
    ) -> Result<(Vec<ItopObject>, u64), ItopError> {
        let key = key.into();
        let r = self
            .call(&json!({"operation": "core/get", "class": class, "key": key.to_value(), "output_fields": output_fields, "limit": limit, "page": page}))
            .await?;
        let total = r
            .message
            .as_deref()
            .and_then(|m| m.strip_prefix("Found: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        Ok((r.objects, total))
    }

    /// `core/get` expecting at most one object (the first if several match).
    pub async fn get_one(
        &self,
        class: &str,
        key: impl Into<Key>,
        output_fields: &str,
    ) -> Result<Option<ItopObject>, ItopError> {
        Ok(self
            .get(class, key, output_fields)
            .await?
            .into_iter()
            .next())
    }

    fn single(r: RestResponse, operation: &str) -> Result<ItopObject, ItopError> {
        r.objects
            .into_iter()
            .next()
            .ok_or_else(|| ItopError::MissingObject {
                operation: operation.into(),
            })
    }

    /// `core/create`; `fields` is a JSON object (external keys may be ids, OQL or criteria).
    pub async fn create(
        &self,
        class: &str,
        fields: Value,
        comment: &str,
        output_fields: &str,
    ) -> Result<ItopObject, ItopError> {
        let r = self
            .call(&json!({"operation": "core/create", "class": class, "fields": fields, "comment": comment, "output_fields": output_fields}))
            .await?;
        Self::single(r, "core/create")
    }

    /// `core/update` of exactly one object.
    pub async fn update(
        &self,
        class: &str,
        key: impl Into<Key>,
        fields: Value,
        comment: &str,
        output_fields: &str,
    ) -> Result<ItopObject, ItopError> {
        let key = key.into();
        let r = self
            .call(&json!({"operation": "core/update", "class": class, "key": key.to_value(), "fields": fields, "comment": comment, "output_fields": output_fields}))
            .await?;
        Self::single(r, "core/update")
    }

    /// `core/apply_stimulus` with the fields the transition requires (applied first).
    /// "Code 0 but no object" is reported as `MissingObject`.
    pub async fn apply_stimulus(
        &self,
        class: &str,
        key: impl Into<Key>,
        stimulus: &str,
        fields: Value,
        comment: &str,
        output_fields: &str,
    ) -> Result<ItopObject, ItopError> {
        let key = key.into();
        let fields = if fields.is_null() {
            Value::Object(Map::new())
        } else {
            fields
        };
        let r = self
            .call(&json!({"operation": "core/apply_stimulus", "class": class, "key": key.to_value(), "stimulus": stimulus, "fields": fields, "comment": comment, "output_fields": output_fields}))
            .await?;
        Self::single(r, "core/apply_stimulus")
    }

    /// `core/delete`; returns the ids deleted (empty if nothing matched).
    pub async fn delete(
        &self,
        class: &str,
        key: impl Into<Key>,
        comment: &str,
    ) -> Result<Vec<u64>, ItopError> {
        let key = key.into();
        let r = self.call(&json!({"operation": "core/delete", "class": class, "key": key.to_value(), "comment": comment})).await?;
        Ok(r.objects.iter().map(|o| o.key).collect())
    }
}
