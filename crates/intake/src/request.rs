//! The ticket request as callers send it, and its validation.
//!
//! Validation reads the JSON as a tree rather than through a typed
//! deserializer, so one answer lists every invalid field (a wrong type
//! included), each with its path (`requester.email`, `attachments[1].mime`).
//! The typed structs here document the shape (OpenAPI) and are never the
//! parser.

use std::collections::BTreeMap;

use base64::Engine as _;
use flows::helpdesk::{Attachment, TicketKind};
use flows::identity::{normalize_phone, tax_id_digits};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

/// Longest title GLPI keeps comfortably in lists.
pub const MAX_TITLE: usize = 255;
/// Length of a title derived from the description.
pub const DERIVED_TITLE: usize = 70;
/// Longest description accepted.
pub const MAX_DESCRIPTION: usize = 65_000;
/// Most `extra` fields.
pub const MAX_EXTRA_FIELDS: usize = 50;
/// A request to open a ticket. A field sent as `null` or a blank string
/// counts as left out. Unknown fields are refused (400, by name): put custom
/// ones under `extra`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "requester": {"name": "Maria Souza", "email": "maria@acme.com.br", "phone": "(11) 98765-4321"},
    "organisation": {"tax_id": "12.345.678/0001-90"},
    "description": "The printer on the 2nd floor is jammed.\nIt shows error E-203.",
    "category": "Printers",
    "urgency": "high",
    "type": "incident",
    "extra": {"AnyDesk ID": "123 456 789", "Floor": 2}
}))]
pub struct TicketRequest {
    pub requester: RequesterInput,
    /// Which organisation (GLPI entity) the ticket is for; default: the
    /// source's `default_entity`.
    #[serde(default)]
    pub organisation: Option<OrganisationInput>,
    /// The same as `organisation` (either spelling; not both).
    #[serde(default)]
    pub organization: Option<OrganisationInput>,
    /// Optional: derived from the description's first line (≤ 70 characters).
    #[serde(default)]
    #[schema(max_length = 255)]
    pub title: Option<String>,
    /// Plain text; lines are kept. Required (not blank).
    #[schema(max_length = 65000)]
    pub description: String,
    #[serde(default)]
    pub category: Option<CategoryInput>,
    #[serde(default)]
    #[schema(schema_with = urgency_schema)]
    pub urgency: Option<UrgencyInput>,
    #[serde(default, rename = "type")]
    #[schema(schema_with = kind_schema)]
    pub kind: Option<String>,
    /// Free-form fields shown in the ticket as a table (e.g. a remote-access id).
    #[serde(default)]
    #[schema(schema_with = extra_schema)]
    pub extra: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pub attachments: Option<Vec<AttachmentInput>>,
}

/// Who asks. At least an email or a phone.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RequesterInput {
    #[serde(default)]
    #[schema(max_length = 255)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 254)]
    pub email: Option<String>,
    #[serde(default)]
    #[schema(schema_with = phone_schema)]
    pub phone: Option<String>,
}

/// A tax id (CNPJ, any punctuation) and/or an explicit entity id. The tax id
/// wins when both are given.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrganisationInput {
    #[serde(default)]
    #[schema(schema_with = tax_id_schema)]
    pub tax_id: Option<String>,
    #[serde(default)]
    #[schema(schema_with = entity_id_schema)]
    pub entity_id: Option<i64>,
}

/// A category id or its name (complete name such as `Hardware > Printers` works too).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum CategoryInput {
    Id(i64),
    Name(String),
}

/// 1 (very low) .. 5 (very high), or `very_low`, `low`, `medium`, `high`, `very_high`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum UrgencyInput {
    Level(u8),
    Word(String),
}

/// A file, base64-encoded.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AttachmentInput {
    /// A plain file name (no path).
    #[schema(max_length = 255)]
    pub filename: String,
    /// MIME type, e.g. `image/png`. May be left out when `content_base64` is
    /// a data URI (`data:image/png;base64,…`), which names the type.
    #[serde(default)]
    pub mime: Option<String>,
    /// Standard base64 (padding optional, line breaks ignored) or a data URI.
    pub content_base64: String,
}

/// OpenAPI: what the validator takes where several JSON types are read.
fn any_of(types: &[Type]) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(types.iter().cloned().collect::<SchemaType>())
}

fn urgency_schema() -> Object {
    any_of(&[Type::Integer, Type::String, Type::Null])
        .minimum(Some(1))
        .maximum(Some(5))
        .description(Some(
            "1 (very low) to 5 (very high), as a number or in a string, or one of very_low, \
             low, medium, high, very_high (any case; `normal` and `critical` too)",
        ))
        .examples([json!(4), json!("high")])
        .build()
}

fn kind_schema() -> Object {
    any_of(&[Type::String, Type::Integer, Type::Null])
        .pattern(Some(
            r"^\s*([Ii][Nn][Cc][Ii][Dd][Ee][Nn][Tt]|[Rr][Ee][Qq][Uu][Ee][Ss][Tt]|1|2)?\s*$",
        ))
        .minimum(Some(1))
        .maximum(Some(2))
        .description(Some(
            "`incident` (default) or `request` (any case), or GLPI's numbers 1 (incident) and 2 (request)",
        ))
        .examples([json!("incident"), json!(2)])
        .build()
}

fn phone_schema() -> Object {
    any_of(&[Type::String, Type::Number, Type::Null])
        .max_length(Some(64))
        .description(Some(
            "Any common spelling, or digits as a number; read in the source's `default_country` \
             without a +code",
        ))
        .examples([json!("(11) 98765-4321"), json!("+5511987654321")])
        .build()
}

fn tax_id_schema() -> Object {
    any_of(&[Type::String, Type::Number, Type::Null])
        .max_length(Some(64))
        .description(Some(
            "5 to 20 digits, any punctuation (a CNPJ such as 12.345.678/0001-90). Send it as a \
             string: a JSON number loses a leading zero",
        ))
        .examples([json!("12.345.678/0001-90")])
        .build()
}

fn extra_schema() -> Object {
    any_of(&[Type::Object, Type::String, Type::Null])
        .pattern(Some(r"^\s*$"))
        .max_properties(Some(MAX_EXTRA_FIELDS))
        .description(Some(
            "Free-form fields shown in the ticket as a table (e.g. a remote-access id): name → \
             text, number or yes/no. A blank string counts as none",
        ))
        .examples([json!({"AnyDesk ID": "123 456 789", "Floor": 2})])
        .build()
}

fn entity_id_schema() -> Object {
    any_of(&[Type::Integer, Type::String, Type::Null])
        .minimum(Some(0))
        .pattern(Some(r"^\s*[0-9]*\s*$"))
        .description(Some(
            "An entity id (0 or more), as a number or digits in a string",
        ))
        .examples([json!(3)])
        .build()
}

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// Path of the field, e.g. `requester.email` or `attachments[0].mime`.
    pub field: String,
    pub message: String,
}

/// Why a request was refused before it was accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Some fields are invalid (400).
    #[error("{} invalid field(s)", .0.len())]
    Invalid(Vec<FieldError>),
    /// An attachment is larger than allowed (413).
    #[error("attachment too large")]
    TooLarge(Vec<FieldError>),
}

impl Rejection {
    pub fn fields(&self) -> &[FieldError] {
        match self {
            Rejection::Invalid(f) | Rejection::TooLarge(f) => f,
        }
    }

    /// Sending the same request again gives the same answer.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// The limits and defaults validation needs from the source's settings.
#[derive(Debug, Clone)]
pub struct Rules {
    pub default_country: String,
    pub max_attachment_bytes: usize,
    pub max_attachments: usize,
}

/// Category as asked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CategoryRef {
    Id(i64),
    Name(String),
}

/// A request that passed validation, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRequest {
    pub name: Option<String>,
    /// Lower-cased.
    pub email: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    pub tax_id: Option<String>,
    pub entity_id: Option<i64>,
    pub title: String,
    pub description: String,
    pub category: Option<CategoryRef>,
    /// GLPI scale 1..5.
    pub urgency: Option<u8>,
    pub kind: TicketKind,
    pub extra: Vec<(String, String)>,
    pub attachments: Vec<Attachment>,
}

struct Problems {
    invalid: Vec<FieldError>,
    too_large: Vec<FieldError>,
}

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.invalid.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }
}

/// Bodies the validator accepts (with at most 16 bytes per attachment), the
/// spellings its tests try: the OpenAPI document's schema must take each of
/// them too, which the server's tests check.
#[doc(hidden)]
pub fn accepted_examples() -> Vec<Value> {
    vec![
        json!({
            "requester": {"name": "Maria", "email": "Maria@Acme.com", "phone": "(11) 98765-4321"},
            "organization": {"tax_id": "12.345.678/0001-90"},
            "description": "Printer jammed\nerror E-203",
            "category": "Printers",
            "urgency": "very_high",
            "type": "request",
            "extra": {"AnyDesk": "1 2 3", "Floor": 2, "VIP": true},
            "attachments": [{"filename": "a.txt", "mime": "text/plain", "content_base64": "aGVsbG8"}]
        }),
        json!({
            "requester": {"name": "", "email": "", "phone": "11987654321"},
            "organisation": {"tax_id": "", "entity_id": "3"},
            "title": " ",
            "description": "Printer jammed",
            "category": "",
            "urgency": "",
            "type": 2,
            "extra": "",
            "attachments": [{"filename": "a.png", "content_base64": "data:image/png;base64,aGVsbG8="}]
        }),
        json!({
            "requester": {"email": "a@b.co"},
            "description": "x",
            "attachments": [{"filename": "a.txt", "mime": "text/plain", "content_base64": "data:application/octet-stream;base64,aGk="}]
        }),
        json!({
            "requester": {"name": null, "phone": 11987654321_i64},
            "organisation": {"tax_id": 12345678000190_i64, "entity_id": 0},
            "title": null,
            "description": "Numbers where strings are usual",
            "category": 7,
            "urgency": 5,
            "type": "Incident",
            "extra": null,
            "attachments": null
        }),
        json!({
            "requester": {"email": "a@b.co"},
            "organisation": null,
            "description": "Wrapped base64",
            "urgency": "3",
            "type": "1"
        }),
    ]
}

/// Validates a JSON body; lists every invalid field.
pub fn validate(body: &[u8], rules: &Rules) -> Result<ValidRequest, Rejection> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Rejection::Invalid(vec![FieldError {
            field: "body".into(),
            message: format!("not valid JSON: {e}"),
        }])
    })?;
    validate_value(&value, rules)
}

/// [`validate`] for an already parsed body.
pub fn validate_value(value: &Value, rules: &Rules) -> Result<ValidRequest, Rejection> {
    let mut p = Problems {
        invalid: Vec::new(),
        too_large: Vec::new(),
    };
    let Some(root) = value.as_object() else {
        return Err(Rejection::Invalid(vec![FieldError {
            field: "body".into(),
            message: "must be a JSON object".into(),
        }]));
    };
    const KNOWN: [&str; 10] = [
        "requester",
        "organisation",
        "organization",
        "title",
        "description",
        "category",
        "urgency",
        "type",
        "extra",
        "attachments",
    ];
    for key in root.keys() {
        if !KNOWN.contains(&key.as_str()) {
            p.add(
                key.clone(),
                "unknown field (put custom fields under `extra`)",
            );
        }
    }

    // requester
    let (mut name, mut email, mut phone) = (None, None, None);
    match root.get("requester") {
        None | Some(Value::Null) => p.add("requester", "is required (name, email and/or phone)"),
        Some(Value::Object(r)) => {
            for key in r.keys() {
                if !["name", "email", "phone"].contains(&key.as_str()) {
                    p.add(format!("requester.{key}"), "unknown field");
                }
            }
            name = optional_text(&mut p, r.get("name"), "requester.name", 255);
            if let Some(raw) = optional_text(&mut p, r.get("email"), "requester.email", 254) {
                if valid_email(&raw) {
                    email = Some(raw.to_lowercase());
                } else {
                    p.add("requester.email", "is not a valid email address");
                }
            }
            match r.get("phone") {
                Some(Value::Number(n)) => {
                    phone = normalised_phone(&mut p, &n.to_string(), rules);
                }
                other => {
                    if let Some(raw) = optional_text(&mut p, other, "requester.phone", 64) {
                        phone = normalised_phone(&mut p, &raw, rules);
                    }
                }
            }
            if !given(r.get("email")) && !given(r.get("phone")) {
                p.add("requester", "needs an email or a phone");
            }
        }
        Some(_) => p.add("requester", "must be an object"),
    }

    // organisation
    let (mut tax_id, mut entity_id) = (None, None);
    let org = root
        .get("organisation")
        .or_else(|| root.get("organization"));
    match org {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) => {
            for key in o.keys() {
                if !["tax_id", "entity_id"].contains(&key.as_str()) {
                    p.add(format!("organisation.{key}"), "unknown field");
                }
            }
            match o.get("tax_id") {
                Some(Value::Number(n)) => tax_id = Some(n.to_string()),
                other => tax_id = optional_text(&mut p, other, "organisation.tax_id", 64),
            }
            if let Some(t) = &tax_id {
                let digits = tax_id_digits(t);
                if !(5..=20).contains(&digits.len()) {
                    p.add(
                        "organisation.tax_id",
                        "must have 5 to 20 digits (e.g. a CNPJ 12.345.678/0001-90)",
                    );
                }
            }
            match o.get("entity_id").filter(|v| given(Some(v))) {
                None => {}
                Some(v) => match whole_number(v) {
                    Some(id) if id >= 0 => entity_id = Some(id),
                    _ => p.add("organisation.entity_id", "must be an entity id (0 or more)"),
                },
            }
        }
        Some(_) => p.add("organisation", "must be an object with tax_id or entity_id"),
    }

    // description and title
    let description = match root.get("description") {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            if s.chars().count() > MAX_DESCRIPTION {
                p.add(
                    "description",
                    format!("must be at most {MAX_DESCRIPTION} characters"),
                );
            }
            Some(s.trim().to_string())
        }
        Some(Value::String(_)) | None | Some(Value::Null) => {
            p.add("description", "is required");
            None
        }
        Some(_) => {
            p.add("description", "must be a string");
            None
        }
    };
    let title = optional_text(&mut p, root.get("title"), "title", MAX_TITLE);

    // category
    let category = match root.get("category").filter(|v| given(Some(v))) {
        None => None,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(id) if id > 0 => Some(CategoryRef::Id(id)),
            _ => {
                p.add("category", "must be a category id (1 or more) or a name");
                None
            }
        },
        Some(Value::String(s)) if !s.trim().is_empty() => {
            let s = s.trim();
            match s.parse::<i64>() {
                Ok(id) if id > 0 => Some(CategoryRef::Id(id)),
                _ => Some(CategoryRef::Name(s.to_string())),
            }
        }
        Some(_) => {
            p.add("category", "must be a category id or a non-empty name");
            None
        }
    };

    // urgency
    let urgency = match root.get("urgency").filter(|v| given(Some(v))) {
        None => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(level @ 1..=5) => u8::try_from(level).ok(),
            _ => {
                p.add("urgency", "must be 1 to 5");
                None
            }
        },
        Some(Value::String(s)) => match urgency_word(s) {
            Some(level) => Some(level),
            None => {
                p.add(
                    "urgency",
                    "must be 1 to 5 or one of very_low, low, medium, high, very_high",
                );
                None
            }
        },
        Some(_) => {
            p.add("urgency", "must be a number 1 to 5 or a word");
            None
        }
    };

    // type
    let kind = match root.get("type").filter(|v| given(Some(v))) {
        None => TicketKind::Incident,
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "incident" | "1" => TicketKind::Incident,
            "request" | "2" => TicketKind::Request,
            _ => {
                p.add("type", "must be incident or request");
                TicketKind::Incident
            }
        },
        // GLPI's own numbers: 1 incident, 2 request.
        Some(Value::Number(n)) => match n.as_u64() {
            Some(1) => TicketKind::Incident,
            Some(2) => TicketKind::Request,
            _ => {
                p.add("type", "must be incident or request (or GLPI's 1 or 2)");
                TicketKind::Incident
            }
        },
        Some(_) => {
            p.add("type", "must be incident or request");
            TicketKind::Incident
        }
    };

    // extra
    let mut extra = Vec::new();
    match root.get("extra").filter(|v| given(Some(v))) {
        None => {}
        Some(Value::Object(map)) => {
            if map.len() > MAX_EXTRA_FIELDS {
                p.add("extra", format!("at most {MAX_EXTRA_FIELDS} fields"));
            }
            for (key, value) in map {
                if key.trim().is_empty() || key.chars().count() > 100 {
                    p.add(format!("extra.{key}"), "names must be 1 to 100 characters");
                    continue;
                }
                let text = match value {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
                    Value::Number(n) => n.to_string(),
                    other => other.to_string(),
                };
                if text.chars().count() > 2000 {
                    p.add(format!("extra.{key}"), "must be at most 2000 characters");
                    continue;
                }
                extra.push((key.clone(), text));
            }
        }
        Some(_) => p.add("extra", "must be an object of name → value"),
    }

    // attachments
    let mut attachments = Vec::new();
    match root.get("attachments") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            if items.len() > rules.max_attachments {
                p.add(
                    "attachments",
                    format!("at most {} attachments", rules.max_attachments),
                );
            }
            for (i, item) in items.iter().enumerate() {
                if let Some(a) = attachment(&mut p, i, item, rules) {
                    attachments.push(a);
                }
            }
        }
        Some(_) => p.add("attachments", "must be an array"),
    }

    if !p.invalid.is_empty() {
        // One answer names every problem, an attachment too large included.
        p.invalid.extend(p.too_large);
        return Err(Rejection::Invalid(p.invalid));
    }
    if !p.too_large.is_empty() {
        return Err(Rejection::TooLarge(p.too_large));
    }
    let description = description.unwrap_or_default();
    let title = title.unwrap_or_else(|| derive_title(&description));
    Ok(ValidRequest {
        name,
        email,
        phone,
        tax_id,
        entity_id,
        title,
        description,
        category,
        urgency,
        kind,
        extra,
        attachments,
    })
}

fn optional_text(
    p: &mut Problems,
    value: Option<&Value>,
    field: &str,
    max: usize,
) -> Option<String> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() {
                // Form builders, n8n and voice tools send "" for what the
                // caller did not give: the same as leaving the field out.
                None
            } else if s.chars().count() > max {
                p.add(field, format!("must be at most {max} characters"));
                None
            } else {
                Some(s.to_string())
            }
        }
        Some(_) => {
            p.add(field, "must be a string");
            None
        }
    }
}

fn normalised_phone(p: &mut Problems, raw: &str, rules: &Rules) -> Option<String> {
    match normalize_phone(raw, Some(&rules.default_country)) {
        Ok(e164) => Some(e164),
        Err(_) => {
            p.add(
                "requester.phone",
                format!(
                    "is not a valid phone number (country {} assumed without a +code)",
                    rules.default_country
                ),
            );
            None
        }
    }
}

fn attachment(p: &mut Problems, i: usize, item: &Value, rules: &Rules) -> Option<Attachment> {
    let at = |f: &str| format!("attachments[{i}].{f}");
    let Some(obj) = item.as_object() else {
        p.add(format!("attachments[{i}]"), "must be an object");
        return None;
    };
    let filename = optional_text(p, obj.get("filename"), &at("filename"), 255);
    if !given(obj.get("filename")) {
        p.add(at("filename"), "is required");
    }
    if let Some(f) = &filename
        && (f.contains('/') || f.contains('\\') || f.starts_with('.'))
    {
        p.add(at("filename"), "must be a plain file name");
    }
    // A browser's FileReader.readAsDataURL gives `data:image/png;base64,…`:
    // the type comes with it when `mime` is left out.
    let (data_uri_mime, encoded) = match obj.get("content_base64") {
        Some(Value::String(s)) => match split_data_uri(s) {
            Some((mime, data)) => (mime, Some(data)),
            None => (None, Some(s.as_str())),
        },
        _ => (None, None),
    };
    let mime = optional_text(p, obj.get("mime"), &at("mime"), 255).or(data_uri_mime);
    match &mime {
        None if !given(obj.get("mime")) => p.add(at("mime"), "is required"),
        Some(m) if !valid_mime(m) => p.add(at("mime"), "must be a MIME type such as image/png"),
        _ => {}
    }
    let content = match obj.get("content_base64") {
        Some(Value::String(_)) => {
            let s = encoded.unwrap_or_default();
            // Worst-case decoded size from the text length, checked before
            // decoding so a huge string costs nothing. Line breaks and spaces
            // (base64 wrapped at 76 columns, CRLF) carry no data.
            let significant = s.bytes().filter(|b| !b.is_ascii_whitespace()).count();
            let estimate = significant / 4 * 3;
            if estimate > rules.max_attachment_bytes + 3 {
                p.too_large.push(FieldError {
                    field: at("content_base64"),
                    message: format!("decoded size exceeds {} bytes", rules.max_attachment_bytes),
                });
                None
            } else {
                let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(compact.trim_end_matches('=').to_string() + padding(&compact))
                    .or_else(|_| base64::engine::general_purpose::STANDARD.decode(&compact));
                match decoded {
                    Ok(bytes) if bytes.is_empty() => {
                        p.add(at("content_base64"), "is empty");
                        None
                    }
                    Ok(bytes) if bytes.len() > rules.max_attachment_bytes => {
                        p.too_large.push(FieldError {
                            field: at("content_base64"),
                            message: format!(
                                "decoded size {} exceeds {} bytes",
                                bytes.len(),
                                rules.max_attachment_bytes
                            ),
                        });
                        None
                    }
                    Ok(bytes) => Some(bytes),
                    Err(_) => {
                        p.add(at("content_base64"), "is not valid base64");
                        None
                    }
                }
            }
        }
        None | Some(Value::Null) => {
            p.add(at("content_base64"), "is required");
            None
        }
        Some(_) => {
            p.add(at("content_base64"), "must be a base64 string");
            None
        }
    };
    for key in obj.keys() {
        if !["filename", "mime", "content_base64"].contains(&key.as_str()) {
            p.add(at(key), "unknown field");
        }
    }
    Some(Attachment {
        filename: filename?,
        mime: mime?,
        bytes: content?,
    })
}

/// A value given, as opposed to left out: not missing, not `null`, not a blank
/// string (what form builders, n8n and voice tools send for "not given").
fn given(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(_) => true,
    }
}

/// A whole number given as a JSON number or as digits in a string (`"3"`).
fn whole_number(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `data:[<type>][;params];base64,<data>` → (the type, if one, and the data).
fn split_data_uri(text: &str) -> Option<(Option<String>, &str)> {
    let rest = text.trim_start().strip_prefix("data:")?;
    let (header, data) = rest.split_once(',')?;
    let header = header.strip_suffix(";base64")?;
    let mime = header
        .split(';')
        .next()
        .map(str::trim)
        .filter(|m| !m.is_empty());
    Some((mime.map(str::to_owned), data))
}

/// The padding a base64 text without its `=` needs.
fn padding(compact: &str) -> &'static str {
    match compact.trim_end_matches('=').len() % 4 {
        2 => "==",
        3 => "=",
        _ => "",
    }
}

fn valid_mime(m: &str) -> bool {
    let essence = m.split(';').next().unwrap_or("").trim();
    match essence.split_once('/') {
        Some((t, s)) => {
            let ok = |x: &str| {
                !x.is_empty()
                    && x.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
            };
            ok(t) && ok(s)
        }
        None => false,
    }
}

/// A plain check: one `@`, something before it, a dotted domain after it, no spaces.
pub fn valid_email(email: &str) -> bool {
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
        }
        None => false,
    }
}

/// `low` → 2 ... on GLPI's 1..5 scale.
pub fn urgency_word(word: &str) -> Option<u8> {
    let w = word.trim().to_ascii_lowercase().replace([' ', '-'], "_");
    Some(match w.as_str() {
        "very_low" | "verylow" | "1" => 1,
        "low" | "2" => 2,
        "medium" | "normal" | "3" => 3,
        "high" | "4" => 4,
        "very_high" | "veryhigh" | "critical" | "5" => 5,
        _ => return None,
    })
}

/// The description's first non-empty line, at most [`DERIVED_TITLE`]
/// characters (cut at a word boundary when one is near, with `…`).
pub fn derive_title(description: &str) -> String {
    let line = description
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("Ticket");
    if line.chars().count() <= DERIVED_TITLE {
        return line.to_string();
    }
    let cut: String = line.chars().take(DERIVED_TITLE - 1).collect();
    let cut = match cut.rfind(' ') {
        Some(space) if space >= DERIVED_TITLE / 2 => cut[..space].trim_end().to_string(),
        _ => cut,
    };
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn rules() -> Rules {
        Rules {
            default_country: "BR".into(),
            max_attachment_bytes: 16,
            max_attachments: 2,
        }
    }

    fn check(v: Value) -> Result<ValidRequest, Rejection> {
        validate_value(&v, &rules())
    }

    #[test]
    fn a_full_request_is_normalised() {
        let r = check(json!({
            "requester": {"name": "Maria", "email": "Maria@Acme.com", "phone": "(11) 98765-4321"},
            "organization": {"tax_id": "12.345.678/0001-90"},
            "description": "Printer jammed\nerror E-203",
            "category": "Printers",
            "urgency": "very_high",
            "type": "request",
            "extra": {"AnyDesk": "1 2 3", "Floor": 2, "VIP": true},
            "attachments": [{"filename": "a.txt", "mime": "text/plain", "content_base64": "aGVsbG8"}]
        }))
        .unwrap();
        assert_eq!(r.email.as_deref(), Some("maria@acme.com"));
        assert_eq!(r.phone.as_deref(), Some("+5511987654321"));
        assert_eq!(r.tax_id.as_deref(), Some("12.345.678/0001-90"));
        assert_eq!(r.title, "Printer jammed");
        assert_eq!(r.urgency, Some(5));
        assert_eq!(r.kind, TicketKind::Request);
        assert_eq!(r.category, Some(CategoryRef::Name("Printers".into())));
        assert_eq!(r.extra[2], ("VIP".to_string(), "yes".to_string()));
        assert_eq!(r.attachments[0].bytes, b"hello");
    }

    #[test]
    fn every_invalid_field_is_listed() {
        let err = check(json!({
            "requester": {"email": "not-an-email", "phone": "12"},
            "organisation": {"tax_id": "12", "entity_id": -1},
            "description": "",
            "urgency": 9,
            "type": "problem",
            "category": [],
            "attachments": [{"filename": "../x", "mime": "nope", "content_base64": "***"}],
            "colour": "red"
        }))
        .unwrap_err();
        let fields: Vec<&str> = err.fields().iter().map(|f| f.field.as_str()).collect();
        for expected in [
            "requester.email",
            "requester.phone",
            "organisation.tax_id",
            "organisation.entity_id",
            "description",
            "urgency",
            "type",
            "category",
            "attachments[0].filename",
            "attachments[0].mime",
            "attachments[0].content_base64",
            "colour",
        ] {
            assert!(
                fields.contains(&expected),
                "{expected} missing from {fields:?}"
            );
        }
        assert!(matches!(err, Rejection::Invalid(_)));
    }

    #[test]
    fn what_form_builders_and_voice_tools_send_is_understood() {
        // Blank strings for what the caller did not give, numbers as strings and
        // the other way round, a file read with readAsDataURL.
        let r = check(json!({
            "requester": {"name": "", "email": "", "phone": "11987654321"},
            "organisation": {"tax_id": "", "entity_id": "3"},
            "title": " ",
            "description": "Printer jammed",
            "category": "",
            "urgency": "",
            "type": 2,
            "extra": "",
            "attachments": [{"filename": "a.png", "content_base64": "data:image/png;base64,aGVsbG8="}]
        }))
        .unwrap();
        assert_eq!(r.name, None);
        assert_eq!(r.email, None);
        assert_eq!(r.phone.as_deref(), Some("+5511987654321"));
        assert_eq!((r.tax_id, r.entity_id), (None, Some(3)));
        assert_eq!(r.title, "Printer jammed");
        assert_eq!((r.category, r.urgency), (None, None));
        assert_eq!(r.kind, TicketKind::Request);
        assert_eq!(r.attachments.len(), 1);
        assert_eq!(r.attachments[0].mime, "image/png");
        assert_eq!(r.attachments[0].bytes, b"hello");

        // A given `mime` wins over the data URI's; blank still counts as missing
        // where a value is required.
        let r = check(json!({
            "requester": {"email": "a@b.co"},
            "description": "x",
            "attachments": [{"filename": "a.txt", "mime": "text/plain", "content_base64": "data:application/octet-stream;base64,aGk="}]
        }))
        .unwrap();
        assert_eq!(r.attachments[0].mime, "text/plain");
        let err = check(json!({
            "requester": {"email": "", "phone": ""},
            "description": "x",
            "attachments": [{"filename": "", "mime": "", "content_base64": "aGk="}]
        }))
        .unwrap_err();
        let fields: Vec<&str> = err.fields().iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "requester",
                "attachments[0].filename",
                "attachments[0].mime"
            ]
        );
    }

    #[test]
    fn oversized_attachments_are_too_large_not_invalid() {
        let err = check(json!({
            "requester": {"email": "a@b.co"},
            "description": "x",
            "attachments": [{"filename": "a.bin", "mime": "application/octet-stream",
                "content_base64": "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"}]
        }))
        .unwrap_err();
        assert!(matches!(err, Rejection::TooLarge(_)), "{err:?}");
    }

    #[test]
    fn an_oversized_attachment_is_listed_beside_other_invalid_fields() {
        let err = check(json!({
            "requester": {"email": "a@b.co"},
            "description": "",
            "attachments": [{"filename": "a.bin", "mime": "application/octet-stream",
                "content_base64": "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"}]
        }))
        .unwrap_err();
        assert!(matches!(err, Rejection::Invalid(_)), "{err:?}");
        let fields: Vec<&str> = err.fields().iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["description", "attachments[0].content_base64"]);
    }

    #[test]
    fn the_accepted_examples_are_accepted() {
        for example in accepted_examples() {
            assert!(check(example.clone()).is_ok(), "{example}");
        }
    }

    #[test]
    fn wrapped_base64_is_measured_without_its_line_breaks() {
        // 16 bytes (the limit here) in base64, wrapped every 4 characters with
        // CRLF as mail tools and `base64 -b` do: 36 characters, 24 of them data.
        let wrapped = "QUFB\r\nQUFB\r\nQUFB\r\nQUFB\r\nQUFB\r\nQQ==";
        let r = check(json!({
            "requester": {"email": "a@b.co"},
            "description": "x",
            "attachments": [{"filename": "a.bin", "mime": "application/octet-stream",
                "content_base64": wrapped}]
        }))
        .unwrap();
        assert_eq!(r.attachments[0].bytes, b"AAAAAAAAAAAAAAAA");
    }

    #[test]
    fn titles_are_derived_from_the_first_line() {
        assert_eq!(derive_title("\n  Short one \nrest"), "Short one");
        let long = "word ".repeat(30);
        let t = derive_title(&long);
        assert!(t.chars().count() <= DERIVED_TITLE, "{t}");
        assert!(t.ends_with('…'));
    }

    #[test]
    fn urgency_words_map_to_glpi_levels() {
        assert_eq!(urgency_word("low"), Some(2));
        assert_eq!(urgency_word("Very High"), Some(5));
        assert_eq!(urgency_word("urgent"), None);
    }

    #[test]
    fn requester_needs_email_or_phone() {
        let err = check(json!({"requester": {"name": "x"}, "description": "d"})).unwrap_err();
        assert_eq!(err.fields()[0].field, "requester");
    }
}
