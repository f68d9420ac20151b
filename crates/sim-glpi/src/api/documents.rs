//! Documents: multipart upload (`uploadManifest` + file parts), linking, download.

use super::items::{Act, can, create, sanitize};
use super::{Ctx, NO_RIGHT, Resp, error, error_value};
use crate::row::{Out, Row, value_int};
use crate::state::State;
use rand::Rng;
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

/// A parsed multipart request.
#[derive(Clone, Debug, Default)]
pub(crate) struct Upload {
    pub(crate) manifest: Option<String>,
    pub(crate) files: Vec<UploadFile>,
}

#[derive(Clone, Debug)]
pub(crate) struct UploadFile {
    /// Part name without brackets (`filename[0]` -> `filename`).
    pub(crate) field: String,
    pub(crate) filename: String,
    pub(crate) content_type: String,
    pub(crate) bytes: Vec<u8>,
}

/// Extensions a fresh GLPI accepts for upload (`.log` is not one of them).
const ALLOWED: &[&str] = &[
    "7z", "aac", "avi", "bmp", "bz2", "csv", "doc", "docx", "eml", "gif", "gz", "heic", "htm",
    "html", "ics", "jpeg", "jpg", "json", "m4a", "mkv", "mov", "mp3", "mp4", "msg", "odg", "odp",
    "ods", "odt", "oga", "ogg", "ogv", "opus", "pdf", "png", "ppt", "pptx", "rar", "rtf", "svg",
    "tar", "tgz", "tif", "tiff", "txt", "wav", "webm", "webp", "xls", "xlsx", "xml", "zip",
];

fn extension(filename: &str) -> String {
    filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default()
}

/// `uniqid('', true)`: 14 hex digits, a dot, 8 digits.
fn uniq_prefix() -> String {
    let mut rng = rand::thread_rng();
    let hex: String = (0..14)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect();
    format!("{hex}.{:08}", rng.gen_range(0..100_000_000u32))
}

struct Stored {
    prefix: String,
    file: UploadFile,
    allowed: bool,
}

fn upload_result(st: &State, stored: &[Stored]) -> Out {
    let mut rng = rand::thread_rng();
    let api = st.api_url();
    let mut by_field: Vec<(String, Vec<Out>)> = Vec::new();
    for s in stored {
        let name = format!("{}{}", s.prefix, s.file.filename);
        let size = s.file.bytes.len();
        let mut fields = vec![
            ("name", Out::json(name.clone())),
            ("size", Out::json(size)),
            ("type", Out::json(s.file.content_type.clone())),
        ];
        if s.allowed {
            fields.push(("url", Out::json(format!("{}/files/{name}", st.origin))));
            fields.push(("deleteUrl", Out::json(format!("{api}?filenam={name}"))));
            fields.push(("deleteType", Out::json("DELETE")));
        } else {
            fields.push(("error", Out::json("Filetype not allowed")));
        }
        fields.push(("prefix", Out::json(s.prefix.clone())));
        fields.push(("display", Out::json(s.file.filename.clone())));
        fields.push(("filesize", Out::json(format!("{size} o"))));
        fields.push((
            "id",
            Out::json(format!(
                "docfilename{}",
                rng.gen_range(100_000_000u32..2_000_000_000)
            )),
        ));
        let entry = Out::obj(fields);
        match by_field.iter_mut().find(|(f, _)| *f == s.file.field) {
            Some((_, list)) => list.push(entry),
            None => by_field.push((s.file.field.clone(), vec![entry])),
        }
    }
    Out::Obj(
        by_field
            .into_iter()
            .map(|(f, l)| (f, Out::Arr(l)))
            .collect(),
    )
}

/// Create a Document (with the first uploaded file, if any and allowed) and link it when the
/// input names an item. Returns (id, message).
pub(crate) fn create_document(
    st: &mut State,
    ctx: &Ctx,
    input: &Map<String, Value>,
    file: Option<(&UploadFile, &str)>,
) -> Result<(i64, String), String> {
    let link_type = input
        .get("itemtype")
        .and_then(Value::as_str)
        .map(str::to_string);
    let link_id = input.get("items_id").map(value_int).unwrap_or(0);
    let linked = link_type
        .as_ref()
        .and_then(|t| st.get(t, link_id).map(|r| (t.clone(), r.clone())));
    if link_type.is_some() && linked.is_none() {
        return Err(NO_RIGHT.to_string());
    }
    // A document is created in `entities_id`, else in the session's active entity (not
    // the linked item's: T10 shows Document 1 in entity 0 for a ticket in entity 1), and
    // only in an active entity.
    let entity = input
        .get("entities_id")
        .map(value_int)
        .unwrap_or(ctx.active_entity);
    if !ctx.active_entities.contains(&entity) {
        return Err(NO_RIGHT.to_string());
    }
    let now = st.clock.now();
    let id = st.alloc_id("Document");
    let mut row = crate::schema::default_row("Document", &now);
    row.set("id", id);
    row.set("entities_id", entity);
    row.set(
        "name",
        input.get("name").cloned().unwrap_or(Value::from("")),
    );
    for key in ["comment", "documentcategories_id", "link", "is_recursive"] {
        if let Some(v) = input.get(key) {
            row.set(key, v.clone());
        }
    }
    row.set("users_id", ctx.user_id);
    if let Some((f, prefix)) = file {
        let sha = hex::encode(Sha1::digest(&f.bytes));
        let ext = extension(&f.filename).to_ascii_uppercase();
        row.set("filename", f.filename.clone());
        row.set(
            "filepath",
            format!("{ext}/{}/{}.{ext}", &sha[..2], &sha[2..]),
        );
        row.set("mime", f.content_type.clone());
        row.set("sha1sum", sha);
        let mut rng = rand::thread_rng();
        row.set(
            "tag",
            format!(
                "{:08x}-{:08x}-{prefix}",
                rng.r#gen::<u32>(),
                rng.r#gen::<u32>()
            ),
        );
        st.files.insert(id, f.bytes.clone());
    }
    if let Some((t, item)) = &linked {
        let item_name = st.plain_text(&item.str("name"));
        row.set(
            "name",
            st.store_text(&format!("Document: {t} - {item_name}")),
        );
    }
    st.insert_row("Document", id, row.clone());
    if let Some((t, _)) = linked {
        st.create_row(
            "Document_Item",
            &[
                ("documents_id", Value::from(id)),
                ("items_id", Value::from(link_id)),
                ("itemtype", Value::from(t.clone())),
                (
                    "entities_id",
                    row.get("entities_id").cloned().unwrap_or(Value::from(0)),
                ),
                ("users_id", Value::from(ctx.user_id)),
            ],
        );
        if t == "Ticket" {
            st.touch_ticket(link_id, ctx.user_id);
        }
    }
    Ok((id, super::items::add_message(st, "Document", &row)))
}

pub(crate) fn post_multipart(st: &mut State, ctx: &Ctx, itemtype: &str, upload: &Upload) -> Resp {
    let Some(manifest) = &upload.manifest else {
        return error(
            st,
            400,
            "ERROR_JSON_PAYLOAD_INVALID",
            "JSON payload seems not valid",
            false,
        );
    };
    let Ok(Value::Object(manifest)) = serde_json::from_str::<Value>(manifest) else {
        return error(
            st,
            400,
            "ERROR_JSON_PAYLOAD_INVALID",
            "JSON payload seems not valid",
            false,
        );
    };
    if upload.files.is_empty() {
        return error_value(
            400,
            "ERROR_UPLOAD_FILE_TOO_BIG_POST_MAX_SIZE",
            Value::from("The file seems too big"),
        );
    }
    let input = sanitize(
        st,
        &manifest
            .get("input")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    );
    let stored: Vec<Stored> = upload
        .files
        .iter()
        .map(|f| Stored {
            prefix: uniq_prefix(),
            file: f.clone(),
            allowed: ALLOWED.contains(&extension(&f.filename).as_str()),
        })
        .collect();
    if !can(st, ctx, itemtype, Act::Create) {
        return error_value(400, "ERROR_GLPI_ADD", Value::from(NO_RIGHT));
    }
    let result = if itemtype == "Document" {
        let first = &stored[0];
        if !first.allowed && input.contains_key("itemtype") {
            return error_value(
                400,
                "ERROR_GLPI_ADD",
                Value::from(format!("File {} not found.", first.file.filename)),
            );
        }
        let file = first
            .allowed
            .then_some((&first.file, first.prefix.as_str()));
        create_document(st, ctx, &input, file)
    } else {
        // Multipart on an ITIL object: create it, then attach every allowed file.
        match create(st, ctx, itemtype, &input) {
            Ok((id, message)) => {
                for s in stored.iter().filter(|s| s.allowed) {
                    let mut doc_input = Map::new();
                    doc_input.insert("name".into(), Value::from(st.store_text(&s.file.filename)));
                    let (parent_type, parent_id) = match itemtype {
                        "ITILFollowup" | "ITILSolution" => st
                            .get(itemtype, id)
                            .map(|r| (r.str("itemtype"), r.int("items_id")))
                            .unwrap_or_default(),
                        "TicketTask" => (
                            "Ticket".to_string(),
                            st.get(itemtype, id)
                                .map(|r| r.int("tickets_id"))
                                .unwrap_or(0),
                        ),
                        other => (other.to_string(), id),
                    };
                    doc_input.insert("itemtype".into(), Value::from(parent_type));
                    doc_input.insert("items_id".into(), Value::from(parent_id));
                    let _ =
                        create_document(st, ctx, &doc_input, Some((&s.file, s.prefix.as_str())));
                }
                Ok((id, message))
            }
            Err(m) => Err(m),
        }
    };
    match result {
        Ok((id, message)) => {
            let body = Out::obj(vec![
                ("id", Out::json(id)),
                ("message", Out::json(message)),
                ("upload_result", upload_result(st, &stored)),
            ]);
            let mut resp = Resp::json(201, &body);
            resp.headers.insert(
                0,
                (
                    "location".into(),
                    format!("{}/{itemtype}/{id}", st.api_url()),
                ),
            );
            resp
        }
        Err(m) => error_value(400, "ERROR_GLPI_ADD", Value::from(m)),
    }
}

pub(crate) fn download(st: &State, row: &Row, last_modified: Option<String>) -> Resp {
    let id = row.int("id");
    let Some(bytes) = st.files.get(&id) else {
        return error(st, 404, "ERROR_ITEM_NOT_FOUND", "Item not found", false);
    };
    let filename = row.str("filename");
    let mime = row
        .opt_str("mime")
        .unwrap_or_else(|| "application/octet-stream".to_string());
    let mut headers = Vec::new();
    if let Some(lm) = last_modified {
        headers.push(("Last-Modified".to_string(), lm));
    }
    headers.push((
        "Content-disposition".to_string(),
        format!(
            "attachment; filename=\"{filename}\"; filename*=utf-8''{}",
            url::form_urlencoded::byte_serialize(filename.as_bytes()).collect::<String>()
        ),
    ));
    headers.push(("Content-type".to_string(), format!("{mime};charset=UTF-8")));
    Resp {
        status: 200,
        headers,
        body: bytes.clone(),
    }
}
