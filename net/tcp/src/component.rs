//! The TCP PD's service with its app PDs: [`TcpWithApps`] carries the
//! socket interface (`axolotl-socket`) over a pair of links per app, and
//! runs as the `Transport` of the generic transport PD.

use crate::leftover::ConnBook;
use crate::{ClientIo, Event, Handle, TcpService};
use alloc::vec::Vec;
use axolotl_netqueue::component::Transport;
use axolotl_netqueue::ports::{claim, Kept};
use axolotl_sdk::{Channel, Instant, Os};
use axolotl_socket::{decode, Msg};

pub use axolotl_socket::AppLinks;

/// The store key of TCP's incarnation count.
const INCARNATION: &[u8] = b"incarnation";

/// Messages taken from one app per round at most.
const BATCH: usize = 64;

struct App {
    links: AppLinks,
    /// Bytes of a `Send` the connection had no room for yet.
    held: Option<(Handle, Vec<u8>)>,
    /// Messages refused as malformed.
    bad: u64,
    /// Events its link refused though it had free buffers (a link the app
    /// broke): each is offered again later.
    refused: u64,
}

/// The TCP service and its app PDs.
pub struct TcpWithApps {
    svc: TcpService,
    apps: Vec<App>,
    /// Whether the apps were told this TCP started (a restarted TCP has
    /// forgotten their ports: the notification makes them look at the
    /// links, see the restart and listen again).
    greeted: bool,
    /// The listening ports, kept in the store if there is one; answers to
    /// listens go out once the port is kept.
    kept: Kept<Msg<'static>>,
    /// The open connections, kept in the store if there is one.
    book: Option<ConnBook>,
    /// Connections accepted when the book was last brought up to date.
    accepted_kept: u64,
    last_kept: Instant,
}

/// The book is brought up to date at once when a connection was accepted
/// (a restart right after must find it), and this often for the ends.
const KEEP_CONNECTIONS_NS: u64 = 200_000_000;

struct LinkIo<'a>(&'a mut [App]);

impl ClientIo for LinkIo<'_> {
    fn room(&mut self, client: u8) -> bool {
        self.0
            .get_mut(client as usize)
            .is_some_and(|a| a.links.to_app.free_buffers() > 0)
    }
    fn event(&mut self, client: u8, ev: Event<'_>) -> bool {
        let Some(a) = self.0.get_mut(client as usize) else {
            return false;
        };
        let m = match ev {
            Event::Accepted(h, p, r) => Msg::Accepted(h, p, r),
            Event::Data(h, d) => Msg::Data(h, d),
            Event::PeerClosed(h) => Msg::PeerClosed(h),
            Event::Closed(h) => Msg::Closed(h),
        };
        let sent = axolotl_socket::send(&mut a.links.to_app, &m);
        if let Err(e) = sent {
            a.refused += 1;
            if a.refused.is_power_of_two() {
                log::warn!(
                    "link to app {client} refused a {} message ({e:?}; {} so far): offered again later",
                    m.op_name(),
                    a.refused
                );
            }
        }
        sent.is_ok()
    }
}

impl TcpWithApps {
    /// `svc` serving the apps on `apps` (app `n` is `apps[n]`).
    pub fn new(svc: TcpService, apps: Vec<AppLinks>) -> TcpWithApps {
        TcpWithApps {
            svc,
            apps: apps
                .into_iter()
                .map(|links| App {
                    links,
                    held: None,
                    bad: 0,
                    refused: 0,
                })
                .collect(),
            greeted: false,
            kept: Kept::nowhere(),
            book: None,
            accepted_kept: 0,
            last_kept: Instant(0),
        }
    }

    /// Keeps the apps' listening ports in the state store on `store`, and
    /// listens now on the ones an earlier incarnation kept there, for the
    /// apps that held them: a SYN is answered before the apps have even
    /// noticed that TCP restarted.
    pub fn keep_ports_in(mut self, os: &mut dyn Os, store: Channel) -> Self {
        self.kept = Kept::restore(os, store, &mut self.svc, self.apps.len(), "TCP");
        // A new incarnation number, for new handles: an app's handle from
        // before the restart names nothing now.
        let get = |os: &mut dyn Os| axolotl_store_api::get_u64(os, store, INCARNATION);
        let n = axolotl_store_api::retry(os, 4, get)
            .ok()
            .flatten()
            .unwrap_or(0)
            .wrapping_add(1);
        let put = |os: &mut dyn Os| axolotl_store_api::put_u64(os, store, INCARNATION, n);
        if let Err(e) = axolotl_store_api::retry(os, 4, put) {
            log::warn!("cannot keep TCP's incarnation in the store: {e:?}");
        }
        self.svc.set_incarnation(n as u8);
        log::info!("TCP incarnation {n}");
        let (book, left) = ConnBook::open(os, store);
        if !left.is_empty() {
            log::info!(
                "{} connections of TCP's earlier incarnation: their peers are told to reset them",
                left.len()
            );
            self.svc.provoke(left);
        }
        self.book = Some(book);
        self
    }

    /// Brings the store's list of open connections up to date: at once
    /// after a connection was accepted, and every
    /// [`KEEP_CONNECTIONS_NS`] for those that ended.
    fn keep_connections(&mut self, os: &mut dyn Os) {
        let Some(book) = &mut self.book else { return };
        let accepted = self.svc.stats().accepted;
        let now = os.now();
        if accepted == self.accepted_kept && now.nanos_since(self.last_kept) < KEEP_CONNECTIONS_NS {
            return;
        }
        book.keep(os, &self.svc.connections());
        self.accepted_kept = accepted;
        self.last_kept = now;
    }

    /// Takes what the apps asked for.
    fn take_app_requests(&mut self) {
        let mut buf = [0u8; 4096];
        for (k, app) in self.apps.iter_mut().enumerate() {
            let k = k as u8;
            if app.links.from_app.peer_restarted() {
                // Its connections belonged to its earlier life.
                self.svc.client_reset(k);
                self.kept.changed();
                app.held = None;
            }
            if let Some((h, rest)) = app.held.take() {
                let n = self.svc.client_send(k, h, &rest);
                if n < rest.len() {
                    app.held = Some((h, rest[n..].to_vec()));
                    continue;
                }
            }
            for _ in 0..BATCH {
                let (n, meta) = match app.links.from_app.recv(&mut buf) {
                    Ok(Some(got)) => got,
                    Ok(None) => break,
                    Err(e) => {
                        if app.links.from_app.ring_errors().is_power_of_two() {
                            log::warn!(
                                "link from app {k}: {e} ({} so far)",
                                app.links.from_app.ring_errors()
                            );
                        }
                        break;
                    }
                };
                match decode(meta, &buf[..n]) {
                    Ok(Msg::Listen(port)) => {
                        let max = app.links.max_ports;
                        let what = ("listens on TCP", "listen on TCP");
                        let reply = if claim(&mut self.svc, k, port, max, what) {
                            Msg::Listening(port)
                        } else {
                            Msg::Refused(port)
                        };
                        // Answered once the port is in the store.
                        self.kept.answer(k, reply);
                    }
                    Ok(Msg::Send(h, data)) => {
                        let taken = self.svc.client_send(k, h, data);
                        if taken < data.len() {
                            app.held = Some((h, data[taken..].to_vec()));
                            break;
                        }
                    }
                    Ok(Msg::Close(h)) => self.svc.client_close(k, h),
                    Ok(Msg::Abort(h)) => self.svc.client_abort(k, h),
                    Ok(other) => {
                        app.bad += 1;
                        if app.bad.is_power_of_two() {
                            log::warn!(
                                "app {k} sent {}, which TCP does not take ({} bad so far)",
                                other.op_name(),
                                app.bad
                            );
                        }
                    }
                    Err(e) => {
                        app.bad += 1;
                        if app.bad.is_power_of_two() {
                            log::warn!(
                                "app {k} sent a malformed message: {e:?} ({} bad so far)",
                                app.bad
                            );
                        }
                    }
                }
            }
        }
    }
}

impl Transport for TcpWithApps {
    fn input(&mut self, packet: &[u8]) {
        self.svc.input(packet)
    }

    fn poll(&mut self, now_ns: u64, out: &mut dyn FnMut(&[u8])) {
        self.take_app_requests();
        self.svc.poll_with(now_ns, out, &mut LinkIo(&mut self.apps));
    }

    fn poll_at(&mut self, now_ns: u64) -> Option<u64> {
        self.svc.poll_at(now_ns)
    }

    fn after(&mut self, os: &mut dyn Os) -> bool {
        self.keep_connections(os);
        // Answers to the apps' ports once those are kept.
        let apps = &mut self.apps;
        self.kept.keep(os, &self.svc, |k, m| {
            if let Some(a) = apps.get_mut(usize::from(k)) {
                axolotl_socket::send_or_log(&mut a.links.to_app, &m, k);
            }
        });
        // Events wait for an app to give buffers back: hear of it.
        let waiting = self.svc.clients_waiting();
        let apps = self
            .apps
            .iter_mut()
            .map(|a| (&mut a.links, a.held.is_none()));
        axolotl_socket::after_round(os, &mut self.greeted, apps, waiting)
    }

    fn app_errors(&self) -> (u64, u64) {
        (self.apps.iter().map(|a| a.bad).sum(), 0)
    }

    fn app_buffers_out(&mut self) -> u64 {
        self.apps
            .iter_mut()
            .map(|a| a.links.to_app.unreturned())
            .sum()
    }
}
