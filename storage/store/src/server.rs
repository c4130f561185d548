//! The store PD: protected calls in, statuses out.

use crate::journal::Medium;
use crate::store::Store;
use axolotl_sdk::config::StoreClient;
use axolotl_sdk::{Channel, ChannelSet, Handler, Message, Os};
use axolotl_store_api::{entry_reply, value_reply, Key, Request, Status, Value};

/// What the server has done since it started (this incarnation), for status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// PUTs that succeeded.
    pub puts: u64,
    /// GETs answered (found or not).
    pub gets: u64,
    /// DELETEs answered (found or not).
    pub deletes: u64,
    /// Requests refused: every reply other than `OK` and `NOT_FOUND`.
    pub rejects: u64,
    /// Of those, calls on channels of no client.
    pub unknown_client: u64,
    /// Of those, malformed requests.
    pub bad_requests: u64,
    /// Stray notifications ignored.
    pub notifications: u64,
}

/// The state store component.
pub struct StoreServer<M: Medium = &'static mut [u8]> {
    store: Store<M>,
    counters: Counters,
}

impl StoreServer {
    /// Attaches to the journal region (replaying it, or formatting it if it
    /// holds no journal) and serves `clients`: a call on `clients[i].channel`
    /// comes from client `i`.
    pub fn init(journal: &'static mut [u8], clients: &'static [StoreClient]) -> StoreServer {
        StoreServer::with_medium(journal, clients)
    }
}

impl<M: Medium> StoreServer<M> {
    /// Like [`StoreServer::init`], over any medium.
    pub fn with_medium(medium: M, clients: &'static [StoreClient]) -> StoreServer<M> {
        StoreServer {
            store: Store::new(medium, clients),
            counters: Counters::default(),
        }
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The store.
    pub fn store(&self) -> &Store<M> {
        &self.store
    }

    /// Gives the store back.
    pub fn into_store(self) -> Store<M> {
        self.store
    }

    fn reject(&mut self, status: Status) -> Message {
        self.counters.rejects += 1;
        status.reply()
    }

    /// Answers one call that arrived on `channel`. Every message gets a reply
    /// whose label is a [`Status`].
    pub fn handle(&mut self, channel: Channel, msg: &Message) -> Message {
        let clients = self.store.clients();
        let Some(client) = clients.iter().position(|c| c.channel == channel) else {
            self.counters.unknown_client += 1;
            log::warn!(
                "store: call on channel {}, which belongs to no client",
                channel.index()
            );
            return self.reject(Status::UnknownClient);
        };
        let name = clients[client].namespace;
        let request = match Request::decode(msg) {
            Ok(request) => request,
            Err(status) => {
                self.counters.bad_requests += 1;
                log::warn!(
                    "store: {name}: malformed request (label {:#x}, {} words)",
                    msg.label(),
                    msg.words().len()
                );
                return self.reject(status);
            }
        };
        let status = match request {
            Request::Put { key, value } => {
                let status = self.store.put(client, key.as_bytes(), value.as_bytes());
                if status == Status::Ok {
                    self.counters.puts += 1;
                }
                status
            }
            Request::Get { key } => {
                self.counters.gets += 1;
                match self.store.get(client, key.as_bytes()) {
                    Ok(value) => match Value::new(value) {
                        Some(value) => return value_reply(&value),
                        None => Status::BadRequest,
                    },
                    Err(status) => status,
                }
            }
            Request::Delete { key } => {
                self.counters.deletes += 1;
                self.store.delete(client, key.as_bytes())
            }
            Request::Next { after } => {
                self.counters.gets += 1;
                let after = after.as_ref().map(Key::as_bytes);
                match self.store.next(client, after) {
                    Some((k, v)) => match (Key::new(k), Value::new(v)) {
                        (Some(k), Some(v)) => return entry_reply(&k, &v),
                        _ => Status::BadRequest,
                    },
                    None => Status::NotFound,
                }
            }
        };
        match status {
            Status::Ok | Status::NotFound => status.reply(),
            refused => {
                log::warn!("store: {name}: {refused}");
                self.reject(refused)
            }
        }
    }
}

impl<M: Medium> Handler for StoreServer<M> {
    /// Never fails: every problem is a status in the reply.
    type Error = core::convert::Infallible;

    fn notified(&mut self, _os: &mut dyn Os, channels: ChannelSet) -> Result<(), Self::Error> {
        self.counters.notifications += 1;
        log::debug!(
            "store: ignoring notifications on channels {:#x}",
            channels.bits()
        );
        Ok(())
    }

    fn protected(
        &mut self,
        _os: &mut dyn Os,
        channel: Channel,
        msg: &Message,
    ) -> Result<Message, Self::Error> {
        Ok(self.handle(channel, msg))
    }
}
