//! The `order.viewed` event and the two ways it leaves the service: NATS, or an in-process
//! channel carrying the same headers.

use std::collections::HashMap;

use platform_telemetry::propagation::{MessageHeaders, producer_span};
use serde::{Deserialize, Serialize};

/// The subject (topic) events are published on.
pub const SUBJECT: &str = "orders.viewed";

/// The event the worker consumes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderViewed {
    /// The order looked up.
    pub order_id: u64,
}

/// A message as it crosses the hop: headers (with `traceparent`) and a JSON payload.
#[derive(Clone, Debug)]
pub struct Message {
    /// Header name to value.
    pub headers: HashMap<String, String>,
    /// The serialized event.
    pub payload: Vec<u8>,
}

/// NATS headers, made a propagation carrier: this is all a messaging client needs.
#[derive(Debug, Default)]
pub struct NatsHeaders(pub async_nats::HeaderMap);

impl MessageHeaders for NatsHeaders {
    fn header(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }
    fn set_header(&mut self, key: &str, value: String) {
        self.0.insert(key, value);
    }
    fn header_keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Where events go.
#[derive(Clone, Debug)]
pub enum Events {
    /// A NATS connection.
    Nats(async_nats::Client),
    /// An in-process channel (no broker).
    Channel(tokio::sync::mpsc::Sender<Message>),
}

impl Events {
    /// Publishes `event` inside a PRODUCER span whose context travels in the headers.
    pub async fn publish(&self, event: &OrderViewed) -> anyhow::Result<()> {
        let payload = serde_json::to_vec(event)?;
        match self {
            Events::Nats(client) => {
                let mut headers = NatsHeaders::default();
                let span = producer_span("nats", SUBJECT, &mut headers);
                let published = span
                    .wrap(async {
                        client
                            .publish_with_headers(SUBJECT, headers.0, payload.into())
                            .await?;
                        client.flush().await?;
                        anyhow::Ok(())
                    })
                    .await;
                if published.is_err() {
                    span.set_error("publish_failed");
                }
                published
            }
            Events::Channel(sender) => {
                let mut headers = HashMap::new();
                let span = producer_span("in_process", SUBJECT, &mut headers);
                let sent = span.in_scope(|| sender.try_send(Message { headers, payload }));
                sent.map_err(|e| {
                    span.set_error("channel_full");
                    anyhow::anyhow!("in-process event channel: {e}")
                })
            }
        }
    }
}
