//! Standard output of the command line. `println!` panics when the reader
//! has gone (`ticketbridge jobs list | head -1`): here a closed pipe ends the
//! output quietly, as it does for every Unix tool. The command itself runs
//! to its end and exits with its own status (a failed `config check` piped
//! into a reader that left early still exits 1, never 0).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::{fmt, process};

/// Set once standard output turned out to be a closed pipe.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Write `args` to standard output; once it is a closed pipe, nothing more
/// is written (the reader got all it wanted) and the command goes on to its
/// own exit status; another write error is reported once.
pub fn write(args: fmt::Arguments<'_>, newline: bool) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    if let Err(error) = written {
        if error.kind() == io::ErrorKind::BrokenPipe {
            CLOSED.store(true, Ordering::Relaxed);
            return;
        }
        eprintln!("error: cannot write to standard output: {error}");
        process::exit(1);
    }
}

/// `println!` that ends quietly when standard output is a closed pipe.
#[macro_export]
macro_rules! say {
    () => { $crate::output::write(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::output::write(format_args!($($arg)*), true) };
}

/// `print!` that ends quietly when standard output is a closed pipe.
#[macro_export]
macro_rules! say_part {
    ($($arg:tt)*) => { $crate::output::write(format_args!($($arg)*), false) };
}

/// Rows under a header, each column as wide as its widest cell (counted in
/// characters), two spaces between columns; the last column is not padded.
/// Columns listed in `right` are right-aligned (ids). Line breaks inside a
/// cell (an error's text) become spaces, so one row stays one line.
pub fn table(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> Vec<String> {
    let cell = |text: &str| text.replace(['\r', '\n', '\t'], " ");
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|text| cell(text)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, text) in widths.iter_mut().zip(row) {
            *width = (*width).max(text.chars().count());
        }
    }
    std::iter::once(&header)
        .chain(&rows)
        .map(|row| {
            let last = row.len().saturating_sub(1);
            let mut line = String::new();
            for (index, (text, width)) in row.iter().zip(&widths).enumerate() {
                let pad = width.saturating_sub(text.chars().count());
                if index > 0 {
                    line.push_str("  ");
                }
                if right.contains(&index) {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(text);
                } else {
                    line.push_str(text);
                    if index < last {
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                }
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let rows = vec![
            vec![
                "7".to_owned(),
                "chatwoot:support:conversation:1234".to_owned(),
                "a\nb".to_owned(),
            ],
            vec!["12345".to_owned(), "k".to_owned(), String::new()],
        ];
        let lines = table(&["ID", "KEY", "ERROR"], &rows, &[0]);
        assert_eq!(
            lines,
            vec![
                "   ID  KEY                                 ERROR",
                "    7  chatwoot:support:conversation:1234  a b",
                "12345  k                                   ",
            ]
        );
    }
}
