//! `subscribe`: reader and card events, written as they happen.

use serde::Serialize;
use tokio::sync::mpsc;

use cacbridge_card::monitor::{self, Monitor};

use crate::messaging::protocol::Outbound;
use crate::views;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscribed {
    pub events: [&'static str; 4],
}

/// Start the reader monitor once; its events go to `sink` while anyone listens.
pub fn subscribe(
    monitor: &mut Option<Monitor>,
    sink: Option<mpsc::WeakSender<Outbound>>,
) -> Subscribed {
    if monitor.is_none() {
        *monitor = Some(monitor::watch(move |event| {
            let Some(sender) = sink.as_ref().and_then(mpsc::WeakSender::upgrade) else {
                return false; // nobody is listening any more
            };
            let (name, data) = views::event(&event);
            tracing::info!(event = name, "reader event");
            sender
                .blocking_send(Outbound::Event { event: name, data })
                .is_ok()
        }));
    }
    Subscribed {
        events: [
            "reader-added",
            "reader-removed",
            "card-inserted",
            "card-removed",
        ],
    }
}
