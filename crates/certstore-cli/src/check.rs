//! `certstore check`: one validation by certstore's own reader and validator.

use std::fmt::Write as _;

use certstore::{Error, Options, Reason, Snapshot, format_unix};
use serde_json::{Value, json};

use crate::cli::{CheckArgs, FileArgs};
use crate::describe::{Authority, Leaf};
use crate::timearg::now_unix;
use crate::{EXIT_OK, EXIT_REFUSED, EXIT_TROUBLE, output};

/// The store's options for these files (everything else at the store's defaults).
pub fn options(files: &FileArgs) -> Options {
    let mut options = Options::new(&files.cert, &files.key);
    options.ca_path = files.ca.clone();
    options.max_file_size = files.max_file_size;
    options
}

/// A file that is not there or cannot be read is trouble with the command line or the machine
/// (2); everything else the store refuses is a verdict on the files' content (1).
pub fn exit_code(error: &Error) -> i32 {
    match error.reason() {
        Reason::Missing | Reason::Io | Reason::Other => EXIT_TROUBLE,
        _ => EXIT_REFUSED,
    }
}

/// The refusal as JSON fields: the stable reason, the file and the store's own message.
pub fn refusal_json(error: &Error) -> Value {
    json!({
        "reason": error.reason().as_str(),
        "file_role": error.role().map(|r| r.to_string()),
        "file": error.path().map(|p| p.display().to_string()),
        "error": error.to_string(),
    })
}

pub fn run(args: &CheckArgs) -> i32 {
    let options = options(&args.files);
    let at = args.at.map_or_else(now_unix, |at| at.0);
    let result = certstore::check(&options, at);
    let code = match &result {
        Ok(_) => EXIT_OK,
        Err(error) => exit_code(error),
    };
    if args.json {
        output::json(&report_json(&options, at, &result));
    } else {
        output::block(&report_text(&options, at, &result));
    }
    code
}

fn chain_and_cas(snapshot: &Snapshot) -> (Vec<Authority>, Vec<Authority>) {
    let chain = snapshot.certified_key().cert[1..]
        .iter()
        .map(|der| Authority::from_der(der.as_ref()))
        .collect();
    let cas = snapshot
        .ca_certs()
        .iter()
        .map(|der| Authority::from_der(der.as_ref()))
        .collect();
    (chain, cas)
}

fn report_json(options: &Options, at: i64, result: &Result<Snapshot, Error>) -> Value {
    let mut report = json!({
        "cert_file": options.cert_path.display().to_string(),
        "key_file": options.key_path.display().to_string(),
        "ca_file": options.ca_path.as_ref().map(|p| p.display().to_string()),
        "at": format_unix(at),
    });
    let fields = match result {
        Ok(snapshot) => {
            let (chain, cas) = chain_and_cas(snapshot);
            json!({
                "verdict": "would_be_served",
                "leaf": Leaf::from_snapshot(snapshot).to_json(),
                "chain_length": snapshot.certified_key().cert.len(),
                "intermediates": chain.iter().map(Authority::to_json).collect::<Vec<_>>(),
                "ca": cas.iter().map(Authority::to_json).collect::<Vec<_>>(),
            })
        }
        Err(error) => {
            let mut fields = refusal_json(error);
            fields["verdict"] = json!("refused");
            fields
        }
    };
    if let (Value::Object(report), Value::Object(fields)) = (&mut report, fields) {
        report.extend(fields);
    }
    report
}

fn report_text(options: &Options, at: i64, result: &Result<Snapshot, Error>) -> String {
    let mut text = String::new();
    let snapshot = match result {
        Ok(snapshot) => snapshot,
        Err(error) => {
            let _ = writeln!(text, "refused: {error}");
            let _ = writeln!(text, "reason: {}", error.reason());
            let _ = writeln!(text, "checked at   {}", format_unix(at));
            return text;
        }
    };
    let chain_len = snapshot.certified_key().cert.len();
    let (chain, cas) = chain_and_cas(snapshot);
    let _ = writeln!(text, "certificate  {}", options.cert_path.display());
    text.push_str(&Leaf::from_snapshot(snapshot).text_lines("  "));
    let _ = writeln!(
        text,
        "chain        {chain_len} certificate{} (leaf first)",
        if chain_len == 1 { "" } else { "s" }
    );
    for (i, authority) in chain.iter().enumerate() {
        let _ = writeln!(text, "  #{}         {}", i + 1, authority.text());
    }
    if let Some(ca_path) = &options.ca_path {
        let _ = writeln!(
            text,
            "CA bundle    {} ({} certificate{})",
            ca_path.display(),
            cas.len(),
            if cas.len() == 1 { "" } else { "s" }
        );
        for authority in &cas {
            let _ = writeln!(text, "  CA         {}", authority.text());
        }
    }
    let _ = writeln!(text, "checked at   {}", format_unix(at));
    text.push_str("would be served\n");
    text
}
