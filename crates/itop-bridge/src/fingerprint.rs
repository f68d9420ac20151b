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

/// Hash of one case-log entry (iTop gives entries no id).
pub fn entry_hash(entry: &itop::CaseLogEntry) -> String {
    hex_sha256(&[
        entry.date.as_bytes(),
        entry.user_login.as_bytes(),
        entry.message_html.as_bytes(),
        entry.message.as_bytes(),
    ])
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

/// What the bridge changes on a ticket: its status, given its private log,
/// within a minute `bucket` (an echo comes back within seconds; the same
/// state reached again by a person later is not mistaken for an echo).
pub fn ticket_state(status: &str, private_log: &[itop::CaseLogEntry], bucket: i64) -> String {
    let entries: Vec<String> = private_log.iter().map(entry_hash).collect();
    format!(
        "state:{bucket}:{}",
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
}
