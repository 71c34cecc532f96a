//! Writing results. Lines are flushed one by one (`watch` and `probe --interval` are read by
//! other programs while they run); a closed stdout ends the program instead of panicking.

use std::io::Write;

use crate::EXIT_TROUBLE;

/// Writes `text` (a newline is added) to stdout and flushes it.
pub fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
        // The reader went away (`certstore watch | head -1`): nobody is left to tell.
        std::process::exit(EXIT_TROUBLE);
    }
}

/// Writes a block of text that already ends with a newline.
pub fn block(text: &str) {
    line(text.trim_end_matches('\n'));
}

/// Writes one compact JSON document on one line.
pub fn json(value: &serde_json::Value) {
    line(&value.to_string());
}

/// A problem that stops the command before it has anything to report, on stderr.
pub fn trouble(message: &str) -> i32 {
    eprintln!("certstore: {message}");
    EXIT_TROUBLE
}
