//! `subscribe`: reader and card events, written as they happen.

use serde::Serialize;
use tokio::sync::mpsc;

use cacbridge_card::monitor::{self, Monitor};
use cacbridge_card::ReaderEvent;

use crate::messaging::protocol::Outbound;
use crate::views;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscribed {
    pub events: [&'static str; 4],
}

/// Start the reader monitor once; its events go to `sink` while anyone listens.
///
/// A subscriber is about to ask for certificates (the extension subscribes when a portal page
/// talks to it): `prefetch` starts reading the authentication certificates of the cards in
/// the readers now, and of each card inserted later, so that the chooser finds them read.
pub fn subscribe(
    monitor: &mut Option<Monitor>,
    sink: Option<mpsc::WeakSender<Outbound>>,
    prefetch: impl Fn(Option<String>) + Send + 'static,
) -> Subscribed {
    if monitor.is_none() {
        prefetch(None);
        *monitor = Some(monitor::watch(move |event| {
            let Some(sender) = sink.as_ref().and_then(mpsc::WeakSender::upgrade) else {
                return false; // nobody is listening any more
            };
            if let ReaderEvent::CardInserted { reader, .. } = &event {
                prefetch(Some(reader.clone()));
            }
            let (name, data) = views::event(&event);
            tracing::info!(event = name, "reader event");
            sender
                .blocking_send(Outbound::Event { event: name, data })
                .is_ok()
        }));
    }
    Subscribed {
        events: super::Event::READER_EVENTS.map(super::Event::name),
    }
}
