//! The store PD: protected calls in, statuses out.

use crate::journal::SliceMedium;
use crate::store::Store;
use axolotl_sdk::config::StoreClient;
use axolotl_sdk::{Channel, ChannelSet, Handler, Message, Os};
use axolotl_store_api::{value_reply, Request, Status};

/// The state store component.
pub struct StoreServer {
    store: Store<SliceMedium<'static>>,
    clients: &'static [StoreClient],
    puts: u64,
    gets: u64,
    rejects: u64,
}

/// The store cannot run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoJournal;

impl core::fmt::Display for NoJournal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the journal region is too small")
    }
}

impl StoreServer {
    /// Opens the store over its journal region, replaying it.
    ///
    /// # Panics
    /// If the region is too small for a journal (under 192 bytes), which the
    /// system.xml checker's region rules already exclude.
    pub fn init(journal: &'static mut [u8], clients: &'static [StoreClient]) -> StoreServer {
        match StoreServer::try_init(journal, clients) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`StoreServer::init`], reporting a journal that is too small.
    pub fn try_init(
        journal: &'static mut [u8],
        clients: &'static [StoreClient],
    ) -> Result<StoreServer, NoJournal> {
        let store = Store::open(SliceMedium(journal), clients).ok_or(NoJournal)?;
        Ok(StoreServer {
            store,
            clients,
            puts: 0,
            gets: 0,
            rejects: 0,
        })
    }

    /// (puts, gets, rejected requests) so far in this incarnation.
    pub fn counters(&self) -> (u64, u64, u64) {
        (self.puts, self.gets, self.rejects)
    }

    /// Answers one request from the client on `channel`.
    pub fn handle(&mut self, channel: Channel, msg: &Message) -> Message {
        let Some(ns) = self.clients.iter().position(|c| c.channel == channel) else {
            self.rejects += 1;
            log::warn!("call on channel {}, which no client has", channel.index());
            return Status::UnknownClient.reply();
        };
        let request = match Request::decode(msg) {
            Ok(r) => r,
            Err(status) => {
                self.rejects += 1;
                log::warn!(
                    "{}: malformed request (label {})",
                    self.clients[ns].namespace,
                    msg.label()
                );
                return status.reply();
            }
        };
        let status = match request {
            Request::Put(k, v) => {
                self.puts += 1;
                self.store.put(ns, k.as_bytes(), v.as_bytes())
            }
            Request::Get(k) => {
                self.gets += 1;
                return match self.store.get(ns, k.as_bytes()) {
                    Ok(v) => value_reply(v),
                    Err(s) => s.reply(),
                };
            }
            Request::Delete(k) => self.store.delete(ns, k.as_bytes()),
        };
        if !matches!(status, Status::Ok | Status::NotFound) {
            self.rejects += 1;
            log::warn!("{}: {:?}", self.clients[ns].namespace, status);
        }
        status.reply()
    }
}

impl Handler for StoreServer {
    /// Never fails: every problem is a status in the reply.
    type Error = core::convert::Infallible;

    fn notified(&mut self, _os: &mut dyn Os, channels: ChannelSet) -> Result<(), Self::Error> {
        log::debug!("ignoring notifications {:#x}", channels.bits());
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
