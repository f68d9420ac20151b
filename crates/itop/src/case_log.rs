//! Case logs (`public_log`, `private_log`): reading entries and appending with `add_item`.

use serde_json::{Map, Value, json};

use crate::client::ItopClient;
use crate::error::ItopError;
use crate::response::{lenient_text, lenient_u64};

/// Which case log of a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaseLog {
    Public,
    Private,
}

impl CaseLog {
    pub fn attribute(self) -> &'static str {
        match self {
            CaseLog::Public => "public_log",
            CaseLog::Private => "private_log",
        }
    }
}

/// One entry as iTop returns it (insertion order, no entry id).
#[derive(Debug, Clone, PartialEq)]
pub struct CaseLogEntry {
    /// `Y-m-d H:i:s` in the server's timezone.
    pub date: String,
    /// Author label (the user's contact friendly name, or free text).
    pub user_login: String,
    /// Author user id; None for anonymous entries (0).
    pub user_id: Option<u64>,
    /// Plain text.
    pub message: String,
    pub message_html: String,
}

impl CaseLogEntry {
    /// Parses `{"entries":[…]}`.
    pub fn parse_log(value: Option<&Value>) -> Vec<CaseLogEntry> {
        value
            .and_then(|v| v.get("entries"))
            .and_then(Value::as_array)
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        let text = |k: &str| e.get(k).and_then(lenient_text).unwrap_or_default();
                        CaseLogEntry {
                            date: text("date"),
                            user_login: text("user_login"),
                            user_id: e.get("user_id").and_then(lenient_u64).filter(|id| *id != 0),
                            message: text("message"),
                            message_html: text("message_html"),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Format of a new entry's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Html,
    Text,
}

/// An entry to append. With `author` set (admin REST account only) the entry is
/// anonymous (`user_id` 0) and shows `author` as its label; `date` keeps the
/// original time (`Y-m-d H:i:s`, server timezone).
#[derive(Debug, Clone, PartialEq)]
pub struct NewLogEntry {
    pub message: String,
    pub format: LogFormat,
    pub date: Option<String>,
    pub author: Option<String>,
}

impl NewLogEntry {
    pub fn html(message: impl Into<String>) -> NewLogEntry {
        NewLogEntry {
            message: message.into(),
            format: LogFormat::Html,
            date: None,
            author: None,
        }
    }

    pub fn text(message: impl Into<String>) -> NewLogEntry {
        NewLogEntry {
            message: message.into(),
            format: LogFormat::Text,
            date: None,
            author: None,
        }
    }

    pub fn dated(mut self, date: impl Into<String>) -> NewLogEntry {
        self.date = Some(date.into());
        self
    }

    pub fn by(mut self, author: impl Into<String>) -> NewLogEntry {
        self.author = Some(author.into());
        self
    }

    /// The `{"add_item": {…}}` value for `fields`.
    pub fn to_add_item(&self) -> Value {
        let mut item = Map::new();
        item.insert("message".into(), Value::String(self.message.clone()));
        item.insert(
            "format".into(),
            Value::String(
                if self.format == LogFormat::Html {
                    "html"
                } else {
                    "text"
                }
                .into(),
            ),
        );
        if let Some(d) = &self.date {
            item.insert("date".into(), Value::String(d.clone()));
        }
        if let Some(a) = &self.author {
            item.insert("user_id".into(), Value::from(0));
            item.insert("user_login".into(), Value::String(a.clone()));
        }
        json!({ "add_item": item })
    }
}

impl ItopClient {
    /// Appends one entry to a case log (never replaces the log).
    pub async fn add_case_log_entry(
        &self,
        class: &str,
        id: u64,
        log: CaseLog,
        entry: &NewLogEntry,
        comment: &str,
    ) -> Result<(), ItopError> {
        let mut fields = Map::new();
        fields.insert(log.attribute().into(), entry.to_add_item());
        self.update(class, id, Value::Object(fields), comment, "id")
            .await
            .map(|_| ())
    }

    /// Appends one entry and returns the log as the update's own answer
    /// shows it: the new entry is the last one, whatever others write to the
    /// ticket meanwhile (a separate read could end with someone else's).
    pub async fn append_case_log_entry(
        &self,
        class: &str,
        id: u64,
        log: CaseLog,
        entry: &NewLogEntry,
        comment: &str,
    ) -> Result<Vec<CaseLogEntry>, ItopError> {
        let mut fields = Map::new();
        fields.insert(log.attribute().into(), entry.to_add_item());
        let answer = self
            .update(
                class,
                id,
                Value::Object(fields),
                comment,
                &format!("id,{}", log.attribute()),
            )
            .await?;
        Ok(CaseLogEntry::parse_log(answer.fields.get(log.attribute())))
    }

    /// The entries of a case log in insertion order; None if the object does not exist.
    pub async fn case_log(
        &self,
        class: &str,
        id: u64,
        log: CaseLog,
    ) -> Result<Option<Vec<CaseLogEntry>>, ItopError> {
        let obj = self
            .get_one(class, id, &format!("id,{}", log.attribute()))
            .await?;
        Ok(obj.map(|o| CaseLogEntry::parse_log(o.fields.get(log.attribute()))))
    }
}
