//! `certstore watch`: a real store on the files, its events as lines.

use std::sync::mpsc;

use certstore::{Error, Event, Snapshot, Store, format_unix};
use serde_json::json;

use crate::check::{exit_code, options, refusal_json};
use crate::cli::WatchArgs;
use crate::describe::Leaf;
use crate::signals::Termination;
use crate::timearg::now_unix;
use crate::{EXIT_OK, output};

enum Message {
    Event(Event),
    Stop,
}

pub fn run(args: &WatchArgs) -> i32 {
    // Before Store::open: its threads must not take SIGINT/SIGTERM away from us.
    let signals = Termination::block();
    let mut options = options(&args.files);
    options.reread_interval = Some(args.reread_interval);
    let store = match Store::open(options) {
        Ok(store) => store,
        Err(error) => {
            refused(args.json, &error, None);
            return exit_code(&error);
        }
    };

    let (tx, rx) = mpsc::channel();
    let events = tx.clone();
    store.subscribe(move |event| {
        let _ = events.send(Message::Event(event.clone()));
    });
    // Read after subscribing: a rotation in between shows up here, and its event is skipped
    // below by generation, so nothing is missed and nothing is printed twice.
    let current = store.current();
    let mut shown = current.generation();
    served(args.json, "serving", &current);
    std::thread::spawn(move || {
        signals.wait(None);
        let _ = tx.send(Message::Stop);
    });

    for message in rx {
        let event = match message {
            Message::Stop => break,
            Message::Event(event) => event,
        };
        // Event kinds added later are not printed (the `if let`s stay exhaustive-proof).
        if let Event::Rotated { snapshot } = &event {
            if snapshot.generation() > shown {
                shown = snapshot.generation();
                served(args.json, "rotated", snapshot);
            }
        } else if let Event::ReloadFailed {
            error,
            served_generation,
        } = &event
        {
            refused(args.json, error, Some(*served_generation));
        } else if let Event::WatchDegraded { error, .. } = &event {
            watch_state(args.json, "watch_degraded", Some(error));
        } else if let Event::WatchRestored { .. } = &event {
            watch_state(args.json, "watch_restored", None);
        } else if let Event::WatchRepaired { path, .. } = &event {
            let path = path.display().to_string();
            notice(args.json, "watch_repaired", "path", json!(path), &path);
        } else if let Event::EventsDropped { count, .. } = &event {
            notice(
                args.json,
                "events_dropped",
                "count",
                json!(count),
                &count.to_string(),
            );
        }
    }
    store.shutdown();
    EXIT_OK
}

fn served(json: bool, what: &str, snapshot: &Snapshot) {
    let leaf = Leaf::from_snapshot(snapshot);
    let now = format_unix(now_unix());
    if json {
        output::json(&json!({
            "time": now,
            "event": what,
            "generation": snapshot.generation(),
            "leaf": leaf.to_json(),
            "ca_certs": snapshot.ca_certs().len(),
        }));
    } else {
        output::line(&format!(
            "{now} {what} generation={} serial={} notAfter={} sha256={} subject={:?}",
            snapshot.generation(),
            leaf.serial_hex,
            format_unix(leaf.not_after),
            leaf.sha256_hex,
            leaf.subject,
        ));
    }
}

/// inotify stopped (or resumed) watching the files; the store re-reads them on a timer meanwhile.
fn watch_state(json: bool, what: &str, error: Option<&Error>) {
    let now = format_unix(now_unix());
    if json {
        output::json(&json!({
            "time": now,
            "event": what,
            "message": error.map(ToString::to_string),
        }));
    } else {
        match error {
            Some(error) => output::line(&format!("{now} {what}: {error}")),
            None => output::line(&format!("{now} {what}")),
        }
    }
}

/// A one-field event: a watch found dead and rebuilt (the directory re-added), or events the
/// library discarded because this subscriber fell behind (how many).
fn notice(json: bool, what: &str, key: &str, value: serde_json::Value, shown: &str) {
    let now = format_unix(now_unix());
    if json {
        output::json(&json!({ "time": now, "event": what, key: value }));
    } else {
        output::line(&format!("{now} {what} {key}={shown}"));
    }
}

/// `served_generation` is `None` when the initial files are refused (nothing is served).
fn refused(json: bool, error: &Error, served_generation: Option<u64>) {
    let now = format_unix(now_unix());
    if json {
        let mut line = refusal_json(error);
        line["time"] = json!(now);
        line["event"] = json!("refused");
        line["served_generation"] = json!(served_generation);
        output::json(&line);
    } else {
        let still = match served_generation {
            Some(generation) => format!("still_serving={generation}"),
            None => "still_serving=none".to_owned(),
        };
        output::line(&format!(
            "{now} refused {still} reason={}: {error}",
            error.reason()
        ));
    }
}
