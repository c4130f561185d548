//! The store PD: protected calls in, statuses out.

use crate::journal::Medium;
use crate::store::Store;
use alloc::vec::Vec;
use axolotl_ring::shared::SharedBytes;
use axolotl_sdk::config::StoreClient;
use axolotl_sdk::{Channel, ChannelSet, Handler, Message, Os};
use axolotl_store_api::buffered::{self, BufRequest};
use axolotl_store_api::incarnations::{Board, BoardError};
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
    /// Batches applied.
    pub batches: u64,
    /// Watches set.
    pub watches: u64,
    /// Incarnations taken from the monitor's board that changed a value.
    pub incarnations: u64,
    /// Boards not believed (torn, scribbled, or refused by the quota).
    pub bad_boards: u64,
    /// PINGs answered.
    pub pings: u64,
}

/// The monitor's incarnation board, as the store reads it.
struct BoardIn {
    region: SharedBytes,
    channel: Channel,
    /// The monitor's namespace (a client index).
    ns: usize,
    /// Scratch for the board's copy.
    buf: Vec<u8>,
}

/// The state store component.
pub struct StoreServer<M: Medium = &'static mut [u8]> {
    store: Store<M>,
    counters: Counters,
    /// Each client's value buffer, if it has one (by client index).
    buffers: Vec<Option<SharedBytes>>,
    /// Scratch for what is copied out of a buffer before it is checked.
    scratch: Vec<u8>,
    board: Option<BoardIn>,
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
            buffers: Vec::new(),
            scratch: Vec::new(),
            board: None,
        }
    }

    /// Reads the monitor's incarnation board in `region` (system.xml's
    /// `<axolotl:monitor publish>`) whenever the monitor notifies
    /// `channel`, and now: each PD's incarnation is kept in the monitor's
    /// namespace (the client on `channel`), under the PD's name, so a
    /// change fires the watches on it. A store that restarted catches up
    /// here with what it missed. Without a client on `channel` the board
    /// is ignored (and said so).
    pub fn with_board(mut self, region: SharedBytes, channel: Channel) -> Self {
        let clients = self.store.clients();
        match clients.iter().position(|c| c.channel == channel) {
            Some(ns) => {
                let buf = alloc::vec![0u8; region.len()];
                self.board = Some(BoardIn {
                    region,
                    channel,
                    ns,
                    buf,
                });
                self.sync_board();
            }
            None => log::warn!(
                "store: no namespace for the monitor's board on channel {}",
                channel.index()
            ),
        }
        self
    }

    /// Takes what the board says into the monitor's namespace; how many
    /// incarnations changed.
    pub fn sync_board(&mut self) -> usize {
        let Some(b) = &mut self.board else { return 0 };
        let board = match Board::copy_from(&b.region, &mut b.buf) {
            Ok(board) => board,
            // Nothing published yet: the monitor has not started.
            Err(BoardError::Empty) => return 0,
            Err(e) => {
                self.counters.bad_boards += 1;
                if self.counters.bad_boards.is_power_of_two() {
                    log::warn!(
                        "store: the monitor's board is not readable ({e:?}, {} times); waiting for the next one",
                        self.counters.bad_boards
                    );
                }
                return 0;
            }
        };
        let mut changed = 0;
        for (name, incarnation) in board.iter() {
            let value = incarnation.to_le_bytes();
            if self.store.get(b.ns, name.as_bytes()) == Ok(&value[..]) {
                continue;
            }
            match self.store.put(b.ns, name.as_bytes(), &value) {
                Status::Ok => changed += 1,
                refused => {
                    // Counted and logged sparingly: a scribbling monitor
                    // must not flood the log.
                    self.counters.bad_boards += 1;
                    if self.counters.bad_boards.is_power_of_two() {
                        log::warn!("store: cannot keep {name}'s incarnation: {refused}");
                    }
                }
            }
        }
        self.counters.incarnations += changed as u64;
        changed
    }

    /// Sends the notifications of watched keys that changed.
    pub fn notify_watchers(&mut self, os: &mut dyn Os) {
        for ch in self.take_notifications() {
            os.notify(ch);
        }
    }

    /// Gives the clients their value buffers: `buffers[i]` is client `i`'s
    /// (system.xml's `<axolotl:state buffer>`, as the store maps it).
    pub fn with_buffers(mut self, buffers: Vec<Option<SharedBytes>>) -> Self {
        self.buffers = buffers;
        self
    }

    /// The clients to notify that a key they watch changed.
    pub fn take_notifications(&mut self) -> Vec<Channel> {
        let clients = self.store.clients();
        self.store
            .take_notifications()
            .into_iter()
            .filter_map(|i| clients.get(i).map(|c| c.channel))
            .collect()
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
        if msg.label() == axolotl_store_api::PING {
            self.counters.pings += 1;
            return Status::Ok.reply();
        }
        if buffered::is_buffered(msg.label()) {
            let status = match BufRequest::decode(msg) {
                Ok(request) => match self.buffered(client, request) {
                    Ok(reply) => return reply,
                    Err(status) => status,
                },
                Err(status) => self.malformed(name, msg, status),
            };
            return self.answer(name, status);
        }
        let request = match Request::decode(msg) {
            Ok(request) => request,
            Err(status) => {
                let status = self.malformed(name, msg, status);
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
                        None => Status::TooLarge,
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
                        _ => Status::TooLarge,
                    },
                    None => Status::NotFound,
                }
            }
        };
        self.answer(name, status)
    }

    /// Counts and logs a malformed request of `name`; the status to refuse
    /// it with.
    fn malformed(&mut self, name: &str, msg: &Message, status: Status) -> Status {
        self.counters.bad_requests += 1;
        log::warn!(
            "store: {name}: malformed request (label {:#x}, {} words)",
            msg.label(),
            msg.words().len()
        );
        status
    }

    /// The reply that carries `status` to `name`; a refusal is logged and
    /// counted.
    fn answer(&mut self, name: &str, status: Status) -> Message {
        match status {
            Status::Ok | Status::NotFound => status.reply(),
            refused => {
                log::warn!("store: {name}: {refused}");
                self.reject(refused)
            }
        }
    }
}

impl<M: Medium> StoreServer<M> {
    /// The client index of namespace `ns` if client `client` may read it
    /// (its own, or one system.xml grants it).
    fn readable(&self, client: usize, ns: &[u8]) -> Result<usize, Status> {
        let clients = self.store.clients();
        if ns.is_empty() {
            return Ok(client);
        }
        let target = clients
            .iter()
            .position(|c| c.namespace.as_bytes() == ns)
            .ok_or(Status::Denied)?;
        let me = &clients[client];
        if target == client || me.reads.iter().any(|r| r.as_bytes() == ns) {
            Ok(target)
        } else {
            Err(Status::Denied)
        }
    }

    /// Copies the first `len` bytes of client `client`'s buffer into
    /// `scratch`, before anything looks at them: the client may write its
    /// buffer meanwhile.
    fn copy_from_buffer(&mut self, client: usize, len: usize) -> Result<(), Status> {
        let buf = self.buffers.get(client).and_then(Option::as_ref);
        let buf = buf.ok_or(Status::Denied)?;
        if len > buf.len() {
            return Err(Status::BadRequest);
        }
        self.scratch.resize(len, 0);
        if !buf.copy_out(0, &mut self.scratch) {
            return Err(Status::BadRequest);
        }
        Ok(())
    }

    /// A buffered request of client `client`: the reply, or the status to
    /// refuse it with.
    fn buffered(&mut self, client: usize, request: BufRequest) -> Result<Message, Status> {
        match request {
            BufRequest::PutBuf { key, value_len } => {
                self.copy_from_buffer(client, value_len)?;
                let status = self.store.put(client, key.as_bytes(), &self.scratch);
                if status == Status::Ok {
                    self.counters.puts += 1;
                    return Ok(Status::Ok.reply());
                }
                Err(status)
            }
            BufRequest::GetBuf { key } => {
                self.counters.gets += 1;
                let value = self.store.get(client, key.as_bytes())?;
                let buf = self.buffers.get_mut(client).and_then(Option::as_mut);
                let buf = buf.ok_or(Status::Denied)?;
                if !buf.copy_in(0, value) {
                    return Err(Status::TooLarge);
                }
                Ok(buffered::get_buf_reply(value.len()))
            }
            BufRequest::Batch { len } => {
                self.copy_from_buffer(client, len)?;
                let mut changes = Vec::new();
                buffered::parse_batch(&self.scratch, |c| changes.push(c))?;
                match self.store.batch(client, &changes) {
                    Status::Ok => {
                        self.counters.batches += 1;
                        Ok(Status::Ok.reply())
                    }
                    s => Err(s),
                }
            }
            BufRequest::GetFrom(named) => {
                self.counters.gets += 1;
                let ns = self.readable(client, named.namespace())?;
                let value = self.store.get(ns, named.key.as_bytes())?;
                Value::new(value)
                    .map(|v| value_reply(&v))
                    .ok_or(Status::TooLarge)
            }
            BufRequest::Watch(named) => {
                let ns = self.readable(client, named.namespace())?;
                match self.store.watch(client, ns, named.key.as_bytes()) {
                    Status::Ok => {
                        self.counters.watches += 1;
                        Ok(Status::Ok.reply())
                    }
                    s => Err(s),
                }
            }
            BufRequest::Changed => {
                let (ns, key) = self.store.changed(client).ok_or(Status::NotFound)?;
                let own = ns == client;
                let name = self.store.clients()[ns].namespace.as_bytes();
                Ok(buffered::changed_reply(if own { &[] } else { name }, &key))
            }
        }
    }
}

impl<M: Medium> Handler for StoreServer<M> {
    /// Never fails: every problem is a status in the reply.
    type Error = core::convert::Infallible;

    fn notified(&mut self, os: &mut dyn Os, channels: ChannelSet) -> Result<(), Self::Error> {
        let mut channels = channels;
        if let Some(ch) = self.board.as_ref().map(|b| b.channel) {
            if channels.contains(ch) {
                channels.remove(ch);
                self.sync_board();
                self.notify_watchers(os);
            }
        }
        if !channels.is_empty() {
            self.counters.notifications += 1;
            log::debug!(
                "store: ignoring notifications on channels {:#x}",
                channels.bits()
            );
        }
        Ok(())
    }

    fn protected(
        &mut self,
        os: &mut dyn Os,
        channel: Channel,
        msg: &Message,
    ) -> Result<Message, Self::Error> {
        let reply = self.handle(channel, msg);
        self.notify_watchers(os);
        Ok(reply)
    }
}
