//! The UDP PD's service with its app PDs: [`UdpWithApps`] carries the
//! socket interface (`axolotl-socket`: bind, send to, datagrams) over a
//! pair of links per app, and runs as the `Transport` of the generic
//! transport PD.

use crate::{DatagramIo, Endpoint, UdpService};
use alloc::vec::Vec;
use axolotl_netqueue::component::Transport;
use axolotl_netqueue::ports::{claim, Kept};
use axolotl_sdk::{Channel, Os};
use axolotl_socket::{decode, AppLinks, Msg};

/// Messages taken from one app per round at most.
const BATCH: usize = 64;

struct App {
    links: AppLinks,
    /// Messages refused as malformed or not for UDP.
    bad: u64,
    /// Datagrams an app sent that UDP could not (a port not its own, or
    /// no room).
    dropped: u64,
}

/// The UDP service and its app PDs.
pub struct UdpWithApps {
    svc: UdpService,
    apps: Vec<App>,
    /// Whether the apps were told this UDP started (a restarted UDP has
    /// forgotten their ports: the notification makes them look at the
    /// links, see the restart and bind again).
    greeted: bool,
    /// The bound ports, kept in the store if there is one; answers to
    /// binds go out once the port is kept.
    kept: Kept<Msg<'static>>,
}

struct LinkIo<'a>(&'a mut [App]);

impl DatagramIo for LinkIo<'_> {
    fn room(&mut self, client: u8) -> bool {
        self.0
            .get_mut(usize::from(client))
            .is_some_and(|a| a.links.to_app.free_buffers() > 0)
    }
    fn datagram(&mut self, client: u8, port: u16, from: Endpoint, data: &[u8]) {
        if let Some(a) = self.0.get_mut(usize::from(client)) {
            if axolotl_socket::send(&mut a.links.to_app, &Msg::Datagram(port, from, data)).is_err()
            {
                a.dropped += 1;
            }
        }
    }
}

impl UdpWithApps {
    /// `svc` serving the apps on `apps` (app `n` is `apps[n]`).
    pub fn new(svc: UdpService, apps: Vec<AppLinks>) -> UdpWithApps {
        UdpWithApps {
            svc,
            apps: apps
                .into_iter()
                .map(|links| App {
                    links,
                    bad: 0,
                    dropped: 0,
                })
                .collect(),
            greeted: false,
            kept: Kept::nowhere(),
        }
    }

    /// Keeps the apps' bound ports in the state store on `store`, and binds
    /// the ones kept there by an earlier incarnation now, for the apps
    /// that held them: their datagrams arrive before the apps have even
    /// noticed that UDP restarted.
    pub fn keep_ports_in(mut self, os: &mut dyn Os, store: Channel) -> Self {
        self.kept = Kept::restore(os, store, &mut self.svc, self.apps.len(), "UDP");
        self
    }

    /// Takes what the apps asked for.
    fn take_app_requests(&mut self) {
        let mut buf = [0u8; axolotl_socket::MAX_MESSAGE];
        for (k, app) in self.apps.iter_mut().enumerate() {
            let k = k as u8;
            if app.links.from_app.peer_restarted() {
                // Its ports belonged to its earlier life.
                self.svc.client_reset(k);
                self.kept.changed();
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
                    Ok(Msg::Bind(port)) => {
                        let max = app.links.max_ports;
                        let what = ("bound UDP", "bind UDP");
                        let reply = if claim(&mut self.svc, k, port, max, what) {
                            Msg::Bound(port)
                        } else {
                            Msg::Refused(port)
                        };
                        // Answered once the port is in the store.
                        self.kept.answer(k, reply);
                    }
                    Ok(Msg::SendTo(port, to, data)) => {
                        if !self.svc.client_send_to(k, port, to, data) {
                            app.dropped += 1;
                        }
                    }
                    Ok(other) => {
                        app.bad += 1;
                        if app.bad.is_power_of_two() {
                            log::warn!(
                                "app {k} sent {}, which UDP does not take ({} bad so far)",
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

impl Transport for UdpWithApps {
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
        // Answers to the apps' ports once those are kept.
        let apps = &mut self.apps;
        self.kept.keep(os, &self.svc, |k, m| {
            if let Some(a) = apps.get_mut(usize::from(k)) {
                axolotl_socket::send_or_log(&mut a.links.to_app, &m, k);
            }
        });
        // Datagrams wait for an app to give buffers back: hear of it.
        let waiting = self.svc.clients_waiting();
        let apps = self.apps.iter_mut().map(|a| (&mut a.links, true));
        axolotl_socket::after_round(os, &mut self.greeted, apps, waiting)
    }

    fn app_errors(&self) -> (u64, u64) {
        self.apps
            .iter()
            .fold((0, 0), |(b, d), a| (b + a.bad, d + a.dropped))
    }

    fn app_buffers_out(&mut self) -> u64 {
        self.apps
            .iter_mut()
            .map(|a| a.links.to_app.unreturned())
            .sum()
    }
}
