//! The network of `axolotl run`: what the NIC driver PD is attached to.

use axolotl_gateway::{Forward, GatewayConfig};
use axolotl_sysdesc::System;
use std::path::Path;

/// How the system's network reaches the host.
#[derive(clap::Args, Clone, Debug)]
pub struct NetArgs {
    /// What the NIC driver PD is attached to: `user` (a gateway inside
    /// `axolotl run` at the system's gateway address, forwarding host ports;
    /// no privileges needed), `tap:NAME` (a TAP device, where you may create
    /// one, such as inside `unshare -rn`; no forwards) or `none`.
    #[arg(
        long = "net",
        default_value = "user",
        value_name = "user|tap:NAME|none"
    )]
    pub mode: String,
    /// A host port to forward, as PROTO:HOSTPORT:PORT or
    /// PROTO:ADDR:HOSTPORT:PORT (repeat it for more). Given at least once,
    /// it replaces the default forwards tcp:8007:7, udp:8007:7, tcp:8009:9
    /// and tcp:8080:80 (host ports on 127.0.0.1).
    #[arg(long = "forward", value_name = "SPEC")]
    pub forwards: Vec<String>,
}

/// Sets up the host end of the system's network before the PDs start,
/// and prints where it can be reached.
pub fn start(system: &System, args: &NetArgs, control: &Path) -> Result<(), String> {
    let net = system.pds.iter().find_map(|p| p.net.as_ref());
    // The NIC driver is the PD with an interrupt named "nic".
    let nic = system
        .pds
        .iter()
        .any(|p| p.irqs.iter().any(|i| i.name.as_deref() == Some("nic")));
    if !nic {
        return Ok(());
    }
    match args.mode.as_str() {
        "none" => {
            std::env::set_var(axolotl_host::nic::ENV, "none");
            println!("axolotl: network: none (the NIC driver has no device)");
            Ok(())
        }
        "user" => {
            let Some(net) = net else {
                return Err(format!(
                    "{}: the system has a NIC driver but no <axolotl:net>: nothing to forward to",
                    system.file
                ));
            };
            let Some(gw) = net.gateway else {
                return Err(format!(
                    "{}:{}: <axolotl:net> has no gateway: `--net user` puts the host there",
                    system.file, net.pos.line
                ));
            };
            let forwards = if args.forwards.is_empty() {
                Forward::defaults()
            } else {
                args.forwards
                    .iter()
                    .map(|f| Forward::parse(f))
                    .collect::<Result<Vec<_>, _>>()?
            };
            let dir = control.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let socket = dir.join("nic.sock");
            let cfg = GatewayConfig {
                socket: socket.clone(),
                mac: [0x52, 0x55, gw[0], gw[1], gw[2], gw[3]],
                addr: (gw, net.prefix_len),
                system: net.addr,
                forwards: forwards.clone(),
            };
            axolotl_gateway::spawn(&cfg)?;
            std::env::set_var(axolotl_host::nic::ENV, format!("unix:{}", socket.display()));
            let a = net.addr;
            for f in &forwards {
                println!(
                    "axolotl: forwarding {} {} to {}.{}.{}.{}:{}",
                    f.proto.name(),
                    f.host,
                    a[0],
                    a[1],
                    a[2],
                    a[3],
                    f.port
                );
            }
            Ok(())
        }
        m if m.starts_with("tap:") => {
            if !args.forwards.is_empty() {
                return Err("--forward needs --net user: with a TAP device the peer is the host's own stack".into());
            }
            std::env::set_var(axolotl_host::nic::ENV, m);
            println!("axolotl: network: TAP device {}", &m[4..]);
            Ok(())
        }
        m => Err(format!("--net {m}: expected user, tap:NAME or none")),
    }
}
