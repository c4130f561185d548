//! The ports a transport's apps hold (bound UDP ports, listening TCP
//! ports, each with the app that owns it), kept in the state store so that
//! a restarted transport serves them at once, before its apps have even
//! noticed the restart.
//!
//! The record is one value under [`KEY`] in the transport's namespace:
//! a version byte (1), then three bytes per port: the port (little-endian)
//! and the app's number. [`decode`] checks all of it; a record that does
//! not parse is logged and ignored (the apps bind and listen again, as
//! they do after any restart of the transport).

use alloc::vec::Vec;
use axolotl_sdk::{Channel, Os};
use axolotl_store_api::{Mirror, StoreError, MAX_VALUE_LEN};

/// The key of the record.
pub const KEY: &[u8] = b"ports";
/// Ports the record has room for.
pub const MAX_PORTS: usize = (MAX_VALUE_LEN - 1) / 3;
const VERSION: u8 = 1;
/// Tries of a store call that met a restarting store.
const RETRIES: usize = 4;

/// A port and the app that holds it.
pub type Held = (u16, u8);

/// Why a record was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadRecord {
    /// Empty, longer than [`MAX_PORTS`] entries, or a length that is not a
    /// version byte and whole entries.
    Length(usize),
    /// A version this code does not know.
    Version(u8),
    /// Port 0, or a port listed twice.
    Port(u16),
}

/// The record of `ports` (at most [`MAX_PORTS`]; more are not kept).
pub fn encode(ports: &[Held]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 3 * ports.len().min(MAX_PORTS));
    out.push(VERSION);
    for &(port, app) in ports.iter().take(MAX_PORTS) {
        out.extend_from_slice(&port.to_le_bytes());
        out.push(app);
    }
    out
}

/// The ports of a record.
pub fn decode(bytes: &[u8]) -> Result<Vec<Held>, BadRecord> {
    let (&version, entries) = bytes.split_first().ok_or(BadRecord::Length(0))?;
    if version != VERSION {
        return Err(BadRecord::Version(version));
    }
    if entries.len() % 3 != 0 || entries.len() > 3 * MAX_PORTS {
        return Err(BadRecord::Length(bytes.len()));
    }
    let mut ports: Vec<Held> = Vec::with_capacity(entries.len() / 3);
    for e in entries.chunks_exact(3) {
        let port = u16::from_le_bytes([e[0], e[1]]);
        if port == 0 || ports.iter().any(|p| p.0 == port) {
            return Err(BadRecord::Port(port));
        }
        ports.push((port, e[2]));
    }
    Ok(ports)
}

/// The record in the store.
pub struct PortBook {
    mirror: Mirror,
}

impl PortBook {
    /// Reads the record through the store on `store`: the book, and the
    /// ports it lists (none if there is no record, it does not parse, or
    /// the store cannot be reached; each logged).
    pub fn open(os: &mut dyn Os, store: Channel) -> (PortBook, Vec<Held>) {
        let mut buf = [0u8; MAX_VALUE_LEN];
        let (mirror, found) = Mirror::open(os, store, KEY, RETRIES, &mut buf);
        let ports = match found {
            Ok(Some(record)) => decode(record).unwrap_or_else(|e| {
                log::warn!("the ports in the store do not parse ({e:?}): starting with none");
                Vec::new()
            }),
            Ok(None) => Vec::new(),
            Err(e) => {
                log::warn!("cannot read the ports from the store ({e:?}): starting with none");
                Vec::new()
            }
        };
        (PortBook { mirror }, ports)
    }

    /// Makes the record say `ports` (in any order), if it does not
    /// already; durable when this returns `Ok`.
    pub fn keep(&mut self, os: &mut dyn Os, ports: &[Held]) -> Result<(), StoreError> {
        let mut sorted = ports.to_vec();
        sorted.sort_unstable();
        self.mirror.keep(os, &encode(&sorted))
    }
}

/// A transport whose apps hold ports.
pub trait Ports {
    /// App `app` takes `port`, or keeps it if it is its own; whether the
    /// app holds it now.
    fn take(&mut self, app: u8, port: u16) -> bool;
    /// The ports apps hold.
    fn held(&self) -> Vec<Held>;
}

/// Whether app `app` may take `port` while the apps hold `held`: it holds
/// it already, or fewer than `max_ports` others.
pub fn may_take(held: &[Held], app: u8, port: u16, max_ports: u16) -> bool {
    let mine = held.iter().filter(|&&(_, a)| a == app);
    mine.clone().any(|&(p, _)| p == port) || mine.count() < usize::from(max_ports)
}

/// App `app` asks `ports` for `port`, holding at most `max_ports` ports at
/// once (`max_ports` of its link in system.xml); whether it has it now.
/// Logged as `what` says: (done, asked), such as ("listens on TCP",
/// "listen on TCP").
pub fn claim(
    ports: &mut dyn Ports,
    app: u8,
    port: u16,
    max_ports: u16,
    (done, asked): (&str, &str),
) -> bool {
    if !may_take(&ports.held(), app, port, max_ports) {
        log::warn!("app {app} cannot {asked} port {port}: it holds its {max_ports} ports already (max_ports of its link)");
        false
    } else if ports.take(app, port) {
        log::info!("app {app} {done} port {port}");
        true
    } else {
        log::warn!("app {app} cannot {asked} port {port}: taken");
        false
    }
}

/// A transport's side of keeping ports: the book, if there is a store,
/// and the answers to the apps' requests (of type `R`), which go out only
/// once the book holds what they confirm.
pub struct Kept<R> {
    book: Option<PortBook>,
    answers: Vec<(u8, R)>,
    /// The ports may differ from the book: an answer is waiting, or an
    /// app's ports were dropped. Only then does [`Kept::keep`] look.
    changed: bool,
}

impl<R> Default for Kept<R> {
    fn default() -> Self {
        Kept::nowhere()
    }
}

impl<R> Kept<R> {
    /// Ports kept nowhere: answers go out at the next [`Kept::keep`].
    pub fn nowhere() -> Kept<R> {
        Kept {
            book: None,
            answers: Vec::new(),
            changed: false,
        }
    }

    /// Ports kept in the store on `store`; those an earlier incarnation
    /// kept there are taken in `ports` now, for the apps that held them
    /// (of `apps` apps). `what` names them in the log ("TCP", "UDP").
    pub fn restore(
        os: &mut dyn Os,
        store: Channel,
        ports: &mut dyn Ports,
        apps: usize,
        what: &str,
    ) -> Kept<R> {
        let (book, held) = PortBook::open(os, store);
        for (port, app) in held {
            if usize::from(app) < apps && ports.take(app, port) {
                log::info!("app {app}'s {what} port {port} is back, from the store");
            } else {
                log::warn!("the store's {what} port {port} of app {app}: it cannot have it");
            }
        }
        Kept {
            book: Some(book),
            answers: Vec::new(),
            // What did not come back must leave the book too.
            changed: true,
        }
    }

    /// An answer for app `app`, to go out after the next [`Kept::keep`].
    pub fn answer(&mut self, app: u8, answer: R) {
        self.answers.push((app, answer));
        self.changed = true;
    }

    /// The ports changed without a request to answer (an app that
    /// restarted lost its ports): the next [`Kept::keep`] writes them.
    pub fn changed(&mut self) {
        self.changed = true;
    }

    /// If the ports changed, brings the book up to date with what `ports`
    /// holds (a failure is logged, and tried again at the next call: the
    /// ports still hold in this incarnation), then hands the answers
    /// waiting to `send`, oldest first. Nothing to do costs nothing: it
    /// runs after every round of a transport.
    pub fn keep(&mut self, os: &mut dyn Os, ports: &dyn Ports, mut send: impl FnMut(u8, R)) {
        if !self.changed {
            return;
        }
        self.changed = false;
        if let Some(book) = &mut self.book {
            if let Err(e) = book.keep(os, &ports.held()) {
                log::warn!("cannot keep the apps' ports in the store: {e:?}");
                self.changed = true;
            }
        }
        for (app, answer) in self.answers.drain(..) {
            send(app, answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axolotl_sdk::mock::MockOs;
    use axolotl_sdk::CallError;
    use axolotl_store::mock::{os_with_store, Calls};

    const STORE: Channel = Channel::new(1);

    fn world() -> (MockOs, Calls) {
        os_with_store(STORE, "udp")
    }

    #[test]
    fn ports_kept_are_there_for_the_next_incarnation() {
        let (mut os, calls) = world();
        let (mut book, ports) = PortBook::open(&mut os, STORE);
        assert!(ports.is_empty(), "a first start finds no ports");
        book.keep(&mut os, &[(7, 0), (53, 1)]).unwrap();
        // The store restarts during the next write: it is tried again.
        calls.fail_next.set(2);
        book.keep(&mut os, &[(9, 0), (7, 0), (53, 1)]).unwrap();
        // The transport restarts: fresh memory, the same store.
        let (_, ports) = PortBook::open(&mut os, STORE);
        assert_eq!(ports, vec![(7, 0), (9, 0), (53, 1)]);
    }

    #[test]
    fn an_unchanged_set_is_not_written_again() {
        let (mut os, _) = world();
        let (mut book, _) = PortBook::open(&mut os, STORE);
        book.keep(&mut os, &[(7, 0)]).unwrap();
        // Any call now would fail: none is made.
        let mut calls_fail = MockOs::new().on_call(|_, _| Err(CallError::PeerStopped));
        book.keep(&mut calls_fail, &[(7, 0)]).unwrap();
        assert!(book.keep(&mut calls_fail, &[(8, 0)]).is_err());
    }

    #[test]
    fn a_store_that_stays_away_is_reported_not_waited_for() {
        let (mut os, calls) = world();
        calls.fail_next.set(100);
        let (mut book, ports) = PortBook::open(&mut os, STORE);
        assert!(ports.is_empty());
        assert_eq!(
            book.keep(&mut os, &[(7, 0)]),
            Err(StoreError::PeerRestarted)
        );
    }

    /// A transport's ports, for the tests.
    struct Held2(Vec<Held>);

    impl Ports for Held2 {
        fn take(&mut self, app: u8, port: u16) -> bool {
            self.0.push((port, app));
            true
        }
        fn held(&self) -> Vec<Held> {
            self.0.clone()
        }
    }

    #[test]
    fn an_app_takes_ports_up_to_its_limit_and_its_own_again() {
        let held = [(7, 1), (9, 1), (80, 0)];
        assert!(may_take(&held, 1, 7, 2), "its own port again");
        assert!(!may_take(&held, 1, 6379, 2), "a third port");
        assert!(may_take(&held, 1, 6379, 3));
        assert!(!may_take(&held, 0, 8080, 1), "app 0's limit is its own");
        assert!(may_take(&held, 2, 8080, 1), "another app is not held back");
    }

    #[test]
    fn answers_wait_for_the_book_and_go_out_in_order() {
        let (mut os, calls) = world();
        let mut udp = Held2(vec![(7, 0), (9, 1)]);
        let mut kept = Kept::restore(&mut os, STORE, &mut udp, 2, "UDP");
        kept.answer(0, "bound 7");
        kept.answer(1, "bound 9");
        let mut out = Vec::new();
        kept.keep(&mut os, &udp, |k, a| out.push((k, a)));
        assert_eq!(out, [(0, "bound 7"), (1, "bound 9")]);
        // Nothing changed since: no answer, and no call to the store.
        let made = calls.made.get();
        kept.keep(&mut os, &udp, |_, _| panic!("an answer twice"));
        assert_eq!(
            calls.made.get(),
            made,
            "the store asked with nothing changed"
        );
        // An app dropped its ports without a request: written all the same.
        udp.0.retain(|p| p.1 != 1);
        kept.changed();
        kept.keep(&mut os, &udp, |_, _| panic!("no answer was waiting"));
        assert!(calls.made.get() > made);
        // The next incarnation takes what the answers confirmed; a port
        // of an app that is not there (app 1 of 1) is not taken.
        let mut again = Held2(vec![]);
        let _: Kept<()> = Kept::restore(&mut os, STORE, &mut again, 1, "UDP");
        assert_eq!(again.0, [(7, 0)]);
        // Kept nowhere: the answers go out all the same.
        let mut nowhere = Kept::nowhere();
        nowhere.answer(2, "x");
        let mut out = Vec::new();
        nowhere.keep(&mut os, &udp, |k, a| out.push((k, a)));
        assert_eq!(out, [(2, "x")]);
    }

    #[test]
    fn records_round_trip_and_bad_ones_are_refused() {
        let ports = vec![(7, 0), (65535, 255), (1, 3)];
        assert_eq!(decode(&encode(&ports)), Ok(ports));
        assert_eq!(decode(&encode(&[])), Ok(vec![]));
        assert_eq!(decode(&[]), Err(BadRecord::Length(0)));
        assert_eq!(decode(&[2, 7, 0, 0]), Err(BadRecord::Version(2)));
        assert_eq!(decode(&[1, 7, 0]), Err(BadRecord::Length(3)));
        assert_eq!(decode(&[1, 0, 0, 0]), Err(BadRecord::Port(0)));
        assert_eq!(decode(&[1, 7, 0, 0, 7, 0, 1]), Err(BadRecord::Port(7)));
        // Too many to keep: the record holds the first MAX_PORTS and
        // still fits a store value.
        let many: Vec<Held> = (1..=200).map(|p| (p, 0)).collect();
        let record = encode(&many);
        assert!(record.len() <= MAX_VALUE_LEN);
        assert_eq!(decode(&record).unwrap().len(), MAX_PORTS);
    }

    #[test]
    fn any_bytes_decode_without_a_panic() {
        let mut x: u32 = 1;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = decode(&bytes);
            let mut b = bytes.clone();
            if let Some(v) = b.first_mut() {
                *v = VERSION;
            }
            if let Ok(p) = decode(&b) {
                assert_eq!(encode(&p), b);
            }
        }
    }
}
