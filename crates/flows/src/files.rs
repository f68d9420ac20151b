//! Files added to a ticket or reply that already exists.
//!
//! Adapters write the ticket (or reply) first and its files after. A file the
//! target refuses (GLPI's allowed extensions, iTop's rights or size limits),
//! or one that still fails after a few quick tries, must not fail that write:
//! the job would run again, find the ticket by its marker, and the files would
//! be lost without a word, or the caller would be told the ticket failed when
//! it exists. So each file is tried on its own, and what could not be added is
//! written on the ticket as one private note for the technicians.

use std::future::Future;
use std::time::Duration;

use crate::helpdesk::{Attachment, HelpdeskResult, NewFollowup};

/// Pauses before the second and third try of a file that failed with a
/// retryable error.
const RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(500), Duration::from_millis(1500)];

/// A file that could not be added, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingFile {
    pub filename: String,
    pub reason: String,
}

/// Upload every file with `upload`, one by one, trying a retryable failure
/// again after a short pause; returns the files that could not be added.
pub async fn attach_each<'a, F, Fut>(files: &'a [Attachment], upload: F) -> Vec<MissingFile>
where
    F: Fn(&'a Attachment) -> Fut,
    Fut: Future<Output = HelpdeskResult<()>>,
{
    attach_each_once(files, upload, |_| async { Ok(false) }).await
}

/// [`attach_each`] for a target where a failed upload may still have been
/// carried out (a timeout or a lost answer after the target created the
/// document): before trying a file again, `already_added` looks for it on
/// the item, and a file found there is not uploaded a second time. When
/// that look-up fails the upload is tried again anyway (a lost file is worse
/// than a copy).
pub async fn attach_each_once<'a, F, Fut, C, CFut>(
    files: &'a [Attachment],
    upload: F,
    already_added: C,
) -> Vec<MissingFile>
where
    F: Fn(&'a Attachment) -> Fut,
    Fut: Future<Output = HelpdeskResult<()>>,
    C: Fn(&'a Attachment) -> CFut,
    CFut: Future<Output = HelpdeskResult<bool>>,
{
    let mut missing = Vec::new();
    for file in files {
        let mut pauses = RETRY_PAUSES.iter();
        let mut retry = false;
        loop {
            if retry {
                match already_added(file).await {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(error) => {
                        tracing::debug!(file = %file.filename, %error, "could not tell whether the file was added; sending it again");
                    }
                }
            }
            match upload(file).await {
                Ok(()) => break,
                Err(error) => match pauses.next() {
                    Some(pause) if error.is_retryable() => {
                        tokio::time::sleep(*pause).await;
                        retry = true;
                    }
                    _ => {
                        tracing::warn!(file = %file.filename, %error, "file not attached");
                        missing.push(MissingFile {
                            filename: file.filename.clone(),
                            reason: error.to_string(),
                        });
                        break;
                    }
                },
            }
        }
    }
    missing
}

/// The private note that names the files that could not be added, if any.
pub fn missing_files_note(missing: &[MissingFile]) -> Option<NewFollowup> {
    if missing.is_empty() {
        return None;
    }
    let lines: Vec<String> = missing
        .iter()
        .map(|m| format!("- {}: {}", m.filename, m.reason))
        .collect();
    Some(NewFollowup {
        content: format!(
            "ticketbridge could not attach {} sent with this ticket:\n{}",
            if missing.len() == 1 {
                "a file"
            } else {
                "some files"
            },
            lines.join("\n")
        ),
        private: true,
        author: None,
        attachments: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::helpdesk::HelpdeskError;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn file(name: &str) -> Attachment {
        Attachment {
            filename: name.into(),
            mime: "text/plain".into(),
            bytes: b"x".to_vec(),
        }
    }

    #[tokio::test]
    async fn a_refused_file_is_reported_and_the_others_still_go() {
        let files = [file("printer.log"), file("a.txt"), file("b.txt")];
        let calls = AtomicUsize::new(0);
        let missing = attach_each(&files, |f| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                match (f.filename.as_str(), n) {
                    ("printer.log", _) => Err(HelpdeskError::Refused {
                        target: "glpi".into(),
                        reason: "File printer.log not found.".into(),
                    }),
                    // a.txt: one passing failure, then it goes.
                    ("a.txt", 1) => Err(HelpdeskError::Unavailable {
                        target: "glpi".into(),
                        reason: "503".into(),
                        retry_after: None,
                    }),
                    _ => Ok(()),
                }
            }
        })
        .await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            4,
            "refused once, a.txt twice, b.txt once"
        );
        assert_eq!(
            missing,
            [MissingFile {
                filename: "printer.log".into(),
                reason: "glpi refused: File printer.log not found.".into()
            }]
        );
        let note = missing_files_note(&missing).unwrap();
        assert!(note.private);
        assert!(
            note.content.contains("printer.log: glpi refused"),
            "{}",
            note.content
        );
        assert_eq!(missing_files_note(&[]), None);
    }

    #[tokio::test]
    async fn a_file_that_keeps_failing_is_tried_three_times() {
        let calls = AtomicUsize::new(0);
        let missing = attach_each(&[file("a.txt")], |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Err(HelpdeskError::Unavailable {
                    target: "glpi".into(),
                    reason: "timed out".into(),
                    retry_after: None,
                })
            }
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(missing.len(), 1);
    }
}
