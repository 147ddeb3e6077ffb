//! Watching readers and cards come and go, on a thread of its own with its own PC/SC context.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use pcsc::{Context, ReaderState, Scope, State, PNP_NOTIFICATION};

use crate::model::ReaderEvent;

/// How long one wait for a change lasts; also the longest a stop request waits.
const POLL: Duration = Duration::from_millis(500);

/// A running watcher. Dropping it asks the thread to stop (within one poll) without waiting,
/// so that a process can exit at once.
pub struct Monitor {
    stop: Arc<AtomicBool>,
    _thread: JoinHandle<()>,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Call `on_event` for every reader added or removed and every card inserted or removed, until
/// it returns `false` or the monitor is dropped. Survives pcscd restarts.
pub fn watch(on_event: impl FnMut(ReaderEvent) -> bool + Send + 'static) -> Monitor {
    let stop = Arc::new(AtomicBool::new(false));
    let thread = std::thread::Builder::new()
        .name("cacbridge-reader-monitor".into())
        .spawn({
            let stop = stop.clone();
            move || run(&stop, on_event)
        })
        .expect("spawn the reader monitor");
    Monitor {
        stop,
        _thread: thread,
    }
}

/// What the watcher knows per reader: whether a card is in it.
type Known = BTreeMap<String, bool>;

fn run(stop: &AtomicBool, mut on_event: impl FnMut(ReaderEvent) -> bool) {
    let mut known: Option<Known> = None;
    while !stop.load(Ordering::Relaxed) {
        let Ok(context) = Context::establish(Scope::User) else {
            std::thread::sleep(POLL);
            continue;
        };
        match watch_with(&context, stop, &mut known, &mut on_event) {
            Ok(()) => return,
            Err(err) => {
                tracing::debug!(%err, "reader monitor lost its context");
                std::thread::sleep(POLL);
            }
        }
    }
}

fn watch_with(
    context: &Context,
    stop: &AtomicBool,
    known: &mut Option<Known>,
    on_event: &mut impl FnMut(ReaderEvent) -> bool,
) -> Result<(), pcsc::Error> {
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let names = match context.list_readers_owned() {
            Ok(names) => names,
            Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
            Err(err) => return Err(err),
        };
        let mut states: Vec<ReaderState> = names
            .iter()
            .map(|name| ReaderState::new(name.clone(), State::UNAWARE))
            .collect();
        // Learn the present state of every reader at once.
        if !states.is_empty() {
            context.get_status_change(Duration::ZERO, &mut states)?;
        }
        let now: Known = states
            .iter()
            .map(|s| {
                let present = s.event_state().contains(State::PRESENT);
                (s.name().to_string_lossy().into_owned(), present)
            })
            .collect();
        if let Some(before) = known.as_ref() {
            for event in diff(before, &now, &states) {
                if !on_event(event) {
                    return Ok(());
                }
            }
        }
        *known = Some(now);

        // Wait for the next change of any reader, or of the reader list.
        for state in &mut states {
            state.sync_current_state();
        }
        states.push(ReaderState::new(
            CString::from(PNP_NOTIFICATION()),
            State::UNAWARE,
        ));
        match context.get_status_change(POLL, &mut states) {
            Ok(()) | Err(pcsc::Error::Timeout) => {}
            Err(pcsc::Error::UnknownReader) => {} // a reader vanished mid-wait
            Err(err) => return Err(err),
        }
    }
}

fn diff(before: &Known, now: &Known, states: &[ReaderState]) -> Vec<ReaderEvent> {
    let atr_of = |reader: &str| {
        states
            .iter()
            .find(|s| s.name().to_string_lossy() == reader)
            .map(|s| s.atr().to_vec())
            .unwrap_or_default()
    };
    let mut events = Vec::new();
    for (reader, &had_card) in before {
        if !now.contains_key(reader) {
            if had_card {
                events.push(ReaderEvent::CardRemoved {
                    reader: reader.clone(),
                });
            }
            events.push(ReaderEvent::ReaderRemoved {
                reader: reader.clone(),
            });
        }
    }
    for (reader, &has_card) in now {
        match before.get(reader) {
            None => {
                events.push(ReaderEvent::ReaderAdded {
                    reader: reader.clone(),
                });
                if has_card {
                    events.push(ReaderEvent::CardInserted {
                        reader: reader.clone(),
                        atr: atr_of(reader),
                    });
                }
            }
            Some(&had_card) if had_card != has_card => events.push(if has_card {
                ReaderEvent::CardInserted {
                    reader: reader.clone(),
                    atr: atr_of(reader),
                }
            } else {
                ReaderEvent::CardRemoved {
                    reader: reader.clone(),
                }
            }),
            Some(_) => {}
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_reports_readers_and_cards() {
        let before: Known = [("A".to_string(), true), ("B".to_string(), false)].into();
        let now: Known = [("B".to_string(), true), ("C".to_string(), false)].into();
        let events = diff(&before, &now, &[]);
        assert_eq!(
            events,
            vec![
                ReaderEvent::CardRemoved { reader: "A".into() },
                ReaderEvent::ReaderRemoved { reader: "A".into() },
                ReaderEvent::CardInserted {
                    reader: "B".into(),
                    atr: vec![]
                },
                ReaderEvent::ReaderAdded { reader: "C".into() },
            ]
        );
    }
}
