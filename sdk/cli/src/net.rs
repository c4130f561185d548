//! The network of `axolotl run` and `axolotl qemu`: what the NIC driver
//! PD is attached to, and which host ports reach the system.

use axolotl_gateway::{Forward, GatewayConfig};
use axolotl_host::service::Service;
use axolotl_sysdesc::{NetSpec, System};
use std::path::Path;

/// How the system's network reaches the host.
#[derive(clap::Args, Clone, Debug)]
pub struct NetArgs {
    /// What the NIC driver PD is attached to: `user` (a gateway at the
    /// system's gateway address, forwarding host ports; no privileges
    /// needed: inside `axolotl run`, or QEMU's user networking under
    /// `axolotl qemu`), `tap:NAME` (a TAP device, where you may create one,
    /// such as inside `unshare -rn`; no forwards) or `none`.
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
    /// (axolotl qemu) Writes every frame the NIC sends or receives to FILE,
    /// in pcap format (QEMU's filter-dump): for Wireshark or `tcpdump -r`.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<std::path::PathBuf>,
}

/// Whether the system has a NIC driver: a PD with an interrupt named
/// "nic".
fn has_nic(system: &System) -> bool {
    system
        .pds
        .iter()
        .any(|p| p.irqs.iter().any(|i| i.name.as_deref() == Some("nic")))
}

/// The system's `<axolotl:net>` and its gateway, which `--net user` puts
/// the host at.
fn user_net(system: &System) -> Result<(&NetSpec, [u8; 4]), String> {
    let Some(net) = system.pds.iter().find_map(|p| p.net.as_ref()) else {
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
    Ok((net, gw))
}

/// The forwards asked for, or the defaults.
fn forwards(args: &NetArgs) -> Result<Vec<Forward>, String> {
    if args.forwards.is_empty() {
        return Ok(Forward::defaults());
    }
    args.forwards.iter().map(|f| Forward::parse(f)).collect()
}

fn dotted(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

/// Prints where each forward reaches the system.
fn print_forwards(net: &NetSpec, forwards: &[Forward]) {
    for f in forwards {
        println!(
            "axolotl: forwarding {} {} to {}:{}",
            f.proto.name(),
            f.host,
            dotted(net.addr),
            f.port
        );
    }
}

/// QEMU's network options for a system booted under `axolotl qemu`: the
/// NIC (virtio-net, on virtio-mmio or PCI as the board wants it) on user
/// networking with system.xml's network, gateway and MAC, and a host
/// forward for each port; or on a TAP device; or none. Prints where the
/// system can be reached.
pub fn qemu_args(system: &System, board: &str, args: &NetArgs) -> Result<Vec<String>, String> {
    if !has_nic(system) {
        return Ok(Vec::new());
    }
    let net = system.pds.iter().find_map(|p| p.net.as_ref());
    let backend = match args.mode.as_str() {
        "none" => {
            println!("axolotl: network: none (the NIC driver finds no device)");
            return Ok(Vec::new());
        }
        "user" => {
            let (net, gw) = user_net(system)?;
            let forwards = forwards(args)?;
            let mask = u32::MAX
                .checked_shl(32 - u32::from(net.prefix_len))
                .unwrap_or(0);
            let network = u32::from_be_bytes(net.addr) & mask;
            let mut b = format!(
                "user,id=net0,net={}/{},host={}",
                dotted(network.to_be_bytes()),
                net.prefix_len,
                dotted(gw)
            );
            for f in &forwards {
                b.push_str(&format!(
                    ",hostfwd={}:{}-{}:{}",
                    f.proto.name(),
                    f.host,
                    dotted(net.addr),
                    f.port
                ));
            }
            print_forwards(net, &forwards);
            b
        }
        m if m.starts_with("tap:") => {
            if !args.forwards.is_empty() {
                return Err("--forward needs --net user: with a TAP device the peer is the host's own stack".into());
            }
            println!("axolotl: network: TAP device {}", &m[4..]);
            format!("tap,id=net0,ifname={},script=no,downscript=no", &m[4..])
        }
        m => return Err(format!("--net {m}: expected user, tap:NAME or none")),
    };
    // The device: where the board's NIC driver looks for it (system.xml's
    // comments on the nic PD say the same).
    let device = match board {
        "qemu_virt_aarch64" => "virtio-net-device,netdev=net0",
        "x86_64_generic" => "virtio-net-pci,netdev=net0,addr=0x3,disable-legacy=on",
        _ => return Err(format!("no QEMU network device for board '{board}'")),
    };
    let mac = net.map(|n| {
        let m = n.mac;
        format!(
            ",mac={:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    });
    let mut out = vec![
        "-netdev".into(),
        backend,
        "-device".into(),
        format!("{device}{}", mac.unwrap_or_default()),
    ];
    if let Some(file) = &args.pcap {
        println!("axolotl: network: every frame goes to {}", file.display());
        out.push("-object".into());
        out.push(format!(
            "filter-dump,id=dump0,netdev=net0,file={}",
            file.display()
        ));
    }
    Ok(out)
}

/// Sets up the host end of the system's network before the PDs start,
/// and prints where it can be reached. Returns what the supervisor must
/// watch beside the PDs: the gateway, with `--net user`.
pub fn start(system: &System, args: &NetArgs, control: &Path) -> Result<Vec<Service>, String> {
    if args.pcap.is_some() {
        return Err("--pcap: only under `axolotl qemu` (on the host, run tcpdump on the TAP device or the loopback)".into());
    }
    if !has_nic(system) {
        return Ok(Vec::new());
    }
    match args.mode.as_str() {
        "none" => {
            std::env::set_var(axolotl_host::nic::ENV, "none");
            println!("axolotl: network: none (the NIC driver has no device)");
            Ok(Vec::new())
        }
        "user" => {
            let (net, gw) = user_net(system)?;
            let forwards = forwards(args)?;
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
            let gateway = Service::new("gateway").map_err(|e| format!("gateway: {e}"))?;
            axolotl_gateway::spawn(&cfg, &gateway)?;
            std::env::set_var(axolotl_host::nic::ENV, format!("unix:{}", socket.display()));
            print_forwards(net, &forwards);
            Ok(vec![gateway])
        }
        m if m.starts_with("tap:") => {
            if !args.forwards.is_empty() {
                return Err("--forward needs --net user: with a TAP device the peer is the host's own stack".into());
            }
            std::env::set_var(axolotl_host::nic::ENV, m);
            println!("axolotl: network: TAP device {}", &m[4..]);
            Ok(Vec::new())
        }
        m => Err(format!("--net {m}: expected user, tap:NAME or none")),
    }
}
