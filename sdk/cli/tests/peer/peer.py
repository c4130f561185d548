"""A peer on the system's link, inside the network namespace that
tests/peer.rs makes: the kernel's own stack pings the system and uses its
ports, and raw frames throw hostile input at it while a transfer goes on.
Prints one PEER-OK or PEER-FAIL line per check."""
import os, random, socket, struct, sys, threading, time, json, subprocess

SYS = "10.0.2.15"
SYS_MAC = bytes.fromhex("525400123456")
IFACE = sys.argv[1]
failed = False

def report(name, ok, detail=""):
    global failed
    failed |= not ok
    print(("PEER-OK " if ok else "PEER-FAIL ") + name + (" " + detail if detail else ""), flush=True)

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return (~s) & 0xFFFF

def ping(n=3, size=56):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(1)
    ok = 0
    ident = os.getpid() & 0xFFFF
    for seq in range(n):
        payload = bytes(random.getrandbits(8) for _ in range(size))
        hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        pkt = hdr[:2] + struct.pack("!H", csum(hdr + payload)) + hdr[4:] + payload
        s.sendto(pkt, (SYS, 0))
        deadline = time.time() + 1
        while time.time() < deadline:
            try:
                data, addr = s.recvfrom(4096)
            except socket.timeout:
                break
            icmp = data[(data[0] & 15) * 4:]
            if addr[0] == SYS and icmp[0] == 0 and struct.unpack("!HH", icmp[4:8]) == (ident, seq) and icmp[8:] == payload:
                ok += 1
                break
    return ok

def echo(n, seed):
    rnd = random.Random(seed)
    data = rnd.randbytes(n)
    s = socket.create_connection((SYS, 7), timeout=20)
    got = bytearray()
    def rd():
        while len(got) < n:
            b = s.recv(65536)
            if not b:
                break
            got.extend(b)
    t = threading.Thread(target=rd)
    t.start()
    s.sendall(data)
    t.join(60)
    s.close()
    return bytes(got) == data

def udp_echo():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(1)
    for _ in range(5):
        u.sendto(b"peer datagram", (SYS, 7))
        try:
            return u.recvfrom(100)[0] == b"peer datagram"
        except socket.timeout:
            pass
    return False

def http():
    out = subprocess.run(["curl", "-s", "-m", "10", "http://%s/status.json" % SYS], capture_output=True)
    return json.loads(out.stdout)

# The kernel's stack as a peer.
report("ping", ping() == 3)
report("tcp-echo", echo(1 << 20, 1))
report("udp-echo", udp_echo())
pds = http()
names = {p["name"] for p in pds}
report("http", {"nic", "ip", "filter", "tcp", "udp", "http"} <= names and all(p["state"] == "running" for p in pds), "%d PDs" % len(pds))

# Hostile frames, while a transfer goes on.
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
raw.bind((IFACE, 0))
my_mac = raw.getsockname()[4][:6]
me = socket.inet_aton("10.0.2.2")
sysip = socket.inet_aton(SYS)

def eth(payload, ethertype=0x0800):
    return SYS_MAC + my_mac + struct.pack("!H", ethertype) + payload

def ip(payload, proto, src=me, ident=1, frag=0, mf=False, total=None, ihl=5, bad_sum=False):
    flags_off = (0x2000 if mf else 0) | (frag // 8)
    tot = total if total is not None else 20 + len(payload)
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, tot & 0xFFFF, ident, flags_off, 64, proto, 0, src, sysip)
    c = csum(h)
    if bad_sum:
        c ^= 0x5555
    return h[:10] + struct.pack("!H", c) + h[12:] + payload

def tcp(sport, dport, flags, options=b"", src=me, bad_sum=False):
    off = (20 + len(options)) // 4
    h = struct.pack("!HHIIBBHHH", sport, dport, random.getrandbits(32), 0, off << 4, flags, 65535, 0, 0) + options
    pseudo = src + sysip + struct.pack("!BBH", 0, 6, len(h))
    c = csum(pseudo + h) ^ (0x1234 if bad_sum else 0)
    return h[:16] + struct.pack("!H", c) + h[18:]

transfer_ok = []
t = threading.Thread(target=lambda: transfer_ok.append(echo(16 << 20, 2)))
t.start()
rnd = random.Random(3)
frames = []
# Ping of death: fragments that add up to more than 65535 bytes.
for off in range(0, 65536 + 1480, 1480):
    frames.append(eth(ip(b"\0" * 1480, 1, ident=0xdead, frag=off, mf=off < 65536)))
# Overlapping fragments.
frames.append(eth(ip(b"A" * 64, 17, ident=0xbeef, frag=0, mf=True)))
frames.append(eth(ip(b"B" * 64, 17, ident=0xbeef, frag=32, mf=False)))
# Bad checksums: IP header, TCP.
frames += [eth(ip(tcp(4000, 7, 0x02), 6, bad_sum=True)) for _ in range(50)]
frames += [eth(ip(tcp(4001, 7, 0x02, bad_sum=True), 6)) for _ in range(50)]
# Truncated headers and lying lengths.
frames.append(eth(ip(b"", 6, ihl=15)[:30]))
frames.append(eth(ip(b"\0" * 8, 6, total=1500)))
frames.append(eth(ip(tcp(4002, 7, 0x02)[:10], 6)))
frames.append(eth(b"\x45\x00"))
frames.append(eth(b"\x00\x01\x08\x00\x06", 0x0806))
# Bogus TCP options: zero and overlong lengths, truncated MSS, window scale 255.
for opts in [b"\x02\x00\x05\xb4", b"\x02\xff\x05\xb4", b"\x03\x03\xff\x01", b"\x08\x01\x00\x00", b"\x02\x04\x05"+b"\x01", b"\x05\x22"+b"\0"*2]:
    frames.append(eth(ip(tcp(4003, 7, 0x02, options=opts), 6)))
# A SYN flood from addresses nobody answers ARP for.
for i in range(3000):
    src = socket.inet_aton("10.0.2.%d" % rnd.randint(100, 250))
    frames.append(eth(ip(tcp(rnd.randint(1024, 65535), 7, 0x02, src=src), 6, src=src)))
# Random frames.
for i in range(2000):
    body = rnd.randbytes(rnd.randint(0, 1500))
    frames.append(eth(body, rnd.choice([0x0800, 0x0806, 0x86DD, rnd.getrandbits(16)])))
rnd.shuffle(frames)
for f in frames:
    try:
        raw.send(f)
    except OSError:
        time.sleep(0.001)
t.join(120)
report("transfer-during-hostile-input", transfer_ok == [True])
report("ping-after", ping() >= 2)
report("tcp-echo-after", echo(1 << 20, 4))
pds = http()
net = [p for p in pds if p["name"] in ("nic", "ip", "filter", "tcp", "udp", "http", "echo")]
report("no-network-pd-restarted", len(net) == 7 and all(p["restarts"] == 0 and p["state"] == "running" for p in net),
       " ".join("%s=%s/%d" % (p["name"], p["state"], p["restarts"]) for p in net))
ip_pd = [p for p in pds if p["name"] == "ip"][0]
report("malformed-counted", (ip_pd["counters"] or {}).get("bad", 0) > 0, json.dumps(ip_pd["counters"]))
sys.exit(1 if failed else 0)
