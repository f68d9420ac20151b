//! Standard output of the command line. `println!` panics when the reader
//! has gone (`ticketbridge jobs list | head -1`): here a closed pipe ends the
//! command quietly, as it does for every Unix tool, and nothing else changes.

use std::fmt;
use std::io::{self, Write};

/// Write `args` to standard output; a closed pipe exits at once (status 0:
/// the reader got all it wanted), another write error is reported once.
pub fn write(args: fmt::Arguments<'_>, newline: bool) {
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
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {error}");
        std::process::exit(1);
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
