//! Content hashes: attachment identity, case-log entry identity, and the
//! state of a ticket as far as the bridge writes it (for echo detection).

use sha2::{Digest, Sha256};

fn hex_sha256(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// Hash of an attachment's name and bytes.
pub fn attachment_hash(filename: &str, data: &[u8]) -> String {
    hex_sha256(&[filename.as_bytes(), data])
}

/// Identity of one case-log entry (iTop gives entries no id), from what
/// iTop stores for it: the author (the account id, else the label), the
/// date in canonical form, and the HTML as entered (normalised). Not the
/// plain `message`, which iTop derives from the HTML at read time and whose
/// rendering changes with iTop versions, nor links iTop rewrites on read.
pub fn entry_hash(entry: &itop::CaseLogEntry) -> String {
    let author = match entry.user_id {
        Some(id) => format!("user:{id}"),
        None => format!("login:{}", entry.user_login.trim()),
    };
    let date = canonical_date(&entry.date);
    let html = normalise_html(&entry.message_html);
    format!(
        "v2-{}",
        hex_sha256(&[author.as_bytes(), date.as_bytes(), html.as_bytes()])
    )
}

/// The identity entries had before `entry_hash` (ticketbridge up to the
/// version that introduced "v2-"): every field as read, so a changed
/// rendering changed it. Kept to recognise entries filed under it.
pub fn legacy_entry_hash(entry: &itop::CaseLogEntry) -> String {
    hex_sha256(&[
        entry.date.as_bytes(),
        entry.user_login.as_bytes(),
        entry.message_html.as_bytes(),
        entry.message.as_bytes(),
    ])
}

/// `Y-m-d H:i:s` (also with a `T`, or without seconds) as `Y-m-d H:i:s`;
/// anything else as given, trimmed.
pub fn canonical_date(text: &str) -> String {
    let text = text.trim();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parsed = text.split_once([' ', 'T']).and_then(|(date, time)| {
        let mut d = date.split('-');
        let (y, m, day) = (d.next()?, d.next()?, d.next()?);
        let mut t = time.split(':');
        let (h, mi) = (t.next()?, t.next()?);
        let sec = t.next().unwrap_or("0");
        let parts = [y, m, day, h, mi, sec];
        if d.next().is_some() || t.next().is_some() || !parts.iter().all(|p| digits(p)) {
            return None;
        }
        let n: Vec<u32> = parts.iter().filter_map(|p| p.parse().ok()).collect();
        (n.len() == 6
            && (1..=12).contains(&n[1])
            && (1..=31).contains(&n[2])
            && n[3] < 24
            && n[4] < 60
            && n[5] < 61)
            .then(|| {
                format!(
                    "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                    n[0], n[1], n[2], n[3], n[4], n[5]
                )
            })
    });
    parsed.unwrap_or_else(|| text.to_string())
}

/// The HTML with runs of white space made one space and the `src` of
/// inline images (`<img data-img-id=…>`, whose address iTop rewrites to its
/// current URL on every read) left out.
pub fn normalise_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find("<img") {
        out.push_str(&rest[..start]);
        let tag_end = rest[start..]
            .find('>')
            .map_or(rest.len(), |e| start + e + 1);
        let tag = &rest[start..tag_end];
        if tag.contains("data-img-id") {
            out.push_str(&without_src(tag));
        } else {
            out.push_str(tag);
        }
        rest = &rest[tag_end..];
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn without_src(tag: &str) -> String {
    let Some(at) = tag.find(" src=") else {
        return tag.to_string();
    };
    let value = &tag[at + 5..];
    let end = match value.chars().next() {
        Some(q @ ('"' | '\'')) => value[1..].find(q).map_or(value.len(), |e| e + 2),
        _ => value
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(value.len()),
    };
    format!("{}{}", &tag[..at], &value[end..])
}

/// What a status push copies from its source ticket (state and the
/// fields stimuli carry): a refused push is tried again when it changes,
/// even within the second `last_update` cannot tell apart.
pub fn push_source(ticket: &itop::UserRequest) -> String {
    hex_sha256(&[
        ticket.status.as_bytes(),
        ticket.resolution_code.as_bytes(),
        ticket.solution.as_bytes(),
        ticket.pending_reason.as_bytes(),
    ])
}

/// What the create of a mirror copies from its external ticket: a create
/// refused for good is sent again when it changes, even within the second
/// `last_update` cannot tell apart.
pub fn create_source(ticket: &itop::UserRequest) -> String {
    hex_sha256(&[
        ticket.title.as_bytes(),
        ticket.description.as_bytes(),
        ticket.impact.as_bytes(),
        ticket.urgency.as_bytes(),
    ])
}

/// How every [`ticket_state`] fingerprint starts.
pub const TICKET_STATE: &str = "state:";

/// How long a [`ticket_state`] marker is kept: it is only looked up in its
/// own minute and the next, so after this it can match nothing.
pub const TICKET_STATE_KEPT_MS: i64 = 10 * 60_000;

/// What the bridge changes on a ticket: its status, given its private log,
/// within a minute `bucket` (an echo comes back within seconds; the same
/// state reached again by a person later is not mistaken for an echo).
pub fn ticket_state(status: &str, private_log: &[itop::CaseLogEntry], bucket: i64) -> String {
    let entries: Vec<String> = private_log.iter().map(entry_hash).collect();
    format!(
        "{TICKET_STATE}{bucket}:{}",
        hex_sha256(&[status.as_bytes(), entries.join(",").as_bytes()])
    )
}

/// The minute bucket of a unix-ms instant.
pub fn bucket_of(ms: i64) -> i64 {
    ms / 60_000
}

/// The fingerprint remembered before deleting an object.
pub const DELETED: &str = "deleted";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_separate_their_parts() {
        assert_ne!(attachment_hash("ab", b"c"), attachment_hash("a", b"bc"));
        assert_eq!(attachment_hash("a", b"b"), attachment_hash("a", b"b"));
        assert_ne!(
            ticket_state("new", &[], 1),
            ticket_state("assigned", &[], 1)
        );
        assert_ne!(ticket_state("new", &[], 1), ticket_state("new", &[], 2));
    }

    fn entry(date: &str, message: &str, html: &str) -> itop::CaseLogEntry {
        itop::CaseLogEntry {
            date: date.into(),
            user_login: "Jane Doe".into(),
            user_id: Some(7),
            message: message.into(),
            message_html: html.into(),
        }
    }

    #[test]
    fn entry_identity_ignores_what_itop_derives_on_read() {
        let first = entry(
            "2026-11-25 11:13:28",
            "Nota interna",
            "<p>Nota <b>interna</b></p>",
        );
        // Another plain-text rendering, white space, the date with a T.
        let again = entry(
            "2026-11-25T11:13:28",
            "Nota INTERNA",
            "<p>Nota  <b>interna</b></p>\n",
        );
        assert_eq!(entry_hash(&first), entry_hash(&again));
        assert_ne!(legacy_entry_hash(&first), legacy_entry_hash(&again));
        // Inline images: the address iTop rewrites does not count, the image does.
        let img = |src: &str, id: &str| {
            entry(
                "2026-11-25 11:13:28",
                "",
                &format!("<p><img src=\"{src}\" data-img-id=\"{id}\"></p>"),
            )
        };
        assert_eq!(
            entry_hash(&img("http://a/x?id=3", "3")),
            entry_hash(&img("https://b/y?id=3", "3"))
        );
        assert_ne!(
            entry_hash(&img("http://a/x", "3")),
            entry_hash(&img("http://a/x", "4"))
        );
        // What the entry is: text, date, author.
        assert_ne!(
            entry_hash(&first),
            entry_hash(&entry("2026-11-25 11:13:28", "", "<p>Other</p>"))
        );
        assert_ne!(
            entry_hash(&first),
            entry_hash(&entry(
                "2026-11-25 11:13:29",
                "",
                "<p>Nota <b>interna</b></p>"
            ))
        );
        assert_eq!(canonical_date("25/11/2026 11:13"), "25/11/2026 11:13");
        assert_eq!(canonical_date("2026-11-25 11:13"), "2026-11-25 11:13:00");
    }
}
