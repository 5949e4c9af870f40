//! Forwarding names outside the cluster domain to the host's resolvers (CoreDNS's `forward .
//! /etc/resolv.conf` in kubeadm's Corefile).
//!
//! The client's query goes out byte for byte (same ID, same flags, same EDNS) to the first
//! upstream, over the protocol the client used (CoreDNS's default `prefer_udp` off: TCP clients are
//! forwarded over TCP, so a truncated UDP answer retried over TCP gets the whole answer); the next
//! upstream is tried when one fails or does not answer in [`TRY_TIMEOUT`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};
use hickory_server::proto::op::{Message, MessageType, Query};
use hickory_server::proto::rr::{Name, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one upstream gets to answer (CoreDNS forward's read timeout is 2s).
pub const TRY_TIMEOUT: Duration = Duration::from_secs(2);
/// At most this many upstreams are tried for one question, as glibc reads at most 3 nameservers.
const MAX_TRIES: usize = 3;

/// The upstream resolvers.
#[derive(Clone, Debug)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
}

/// The `nameserver` addresses of a resolv.conf text (port 53).
pub fn resolv_conf_nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then_some(())?;
            // A zone index (fe80::1%eth0) is not portable to a SocketAddr: skip such entries.
            let ip: IpAddr = words.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

impl Forwarder {
    /// Forwards to `upstreams`, less any that is this server itself (`listen`): a node whose
    /// resolv.conf names 127.0.0.1 while the DNS listens there on port 53 would loop (CoreDNS's
    /// `loop` plugin stops the server on that; dropping the entry keeps the cluster names working).
    pub fn new(upstreams: Vec<SocketAddr>, listen: SocketAddr) -> Forwarder {
        let is_self = |u: &SocketAddr| {
            u.port() == listen.port()
                && (u.ip() == listen.ip()
                    || (listen.ip().is_unspecified() && u.ip().is_loopback())
                    || (u.ip().is_loopback() && listen.ip().is_loopback()))
        };
        Forwarder {
            upstreams: upstreams.into_iter().filter(|u| !is_self(u)).collect(),
        }
    }

    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// Sends the raw query `raw` upstream and returns the first well-formed answer carrying its ID.
    pub async fn exchange(&self, raw: &[u8], tcp: bool) -> anyhow::Result<Message> {
        if raw.len() < 12 {
            bail!("query shorter than a DNS header");
        }
        let id = u16::from_be_bytes([raw[0], raw[1]]);
        let mut last = anyhow::anyhow!("no upstream resolver (none in resolv.conf)");
        for upstream in self.upstreams.iter().take(MAX_TRIES) {
            let attempt = if tcp {
                tokio::time::timeout(TRY_TIMEOUT, exchange_tcp(*upstream, raw, id)).await
            } else {
                tokio::time::timeout(TRY_TIMEOUT, exchange_udp(*upstream, raw, id)).await
            };
            match attempt {
                Ok(Ok(m)) => return Ok(m),
                Ok(Err(e)) => last = e.context(format!("upstream {upstream}")),
                Err(_) => {
                    last = anyhow::anyhow!("upstream {upstream}: no answer in {TRY_TIMEOUT:?}")
                }
            }
        }
        Err(last)
    }

    /// Resolves `name` (`qtype`) upstream: the answers (the records CoreDNS appends after an
    /// ExternalName's CNAME).
    pub async fn resolve(&self, name: &Name, qtype: RecordType) -> anyhow::Result<Vec<Record>> {
        let mut query = Message::query();
        query.metadata.id = rand::random();
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(name.clone(), qtype));
        let raw = query.to_vec().context("encoding the query")?;
        Ok(self.exchange(&raw, false).await?.answers)
    }
}

fn check(buf: &[u8], id: u16) -> Option<Message> {
    let m = Message::from_vec(buf).ok()?;
    (m.metadata.id == id && m.metadata.message_type == MessageType::Response).then_some(m)
}

async fn exchange_udp(upstream: SocketAddr, raw: &[u8], id: u16) -> anyhow::Result<Message> {
    let local: SocketAddr = if upstream.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    // A fresh socket (random source port) per query, connected so only the upstream's datagrams
    // are received: the ID alone is too easy to spoof.
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(raw).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = socket.recv(&mut buf).await?;
        // Anything else (a late answer to someone else, garbage) is ignored; the caller's
        // timeout bounds the wait.
        if let Some(m) = buf.get(..n).and_then(|b| check(b, id)) {
            return Ok(m);
        }
    }
}

async fn exchange_tcp(upstream: SocketAddr, raw: &[u8], id: u16) -> anyhow::Result<Message> {
    let mut stream = TcpStream::connect(upstream).await?;
    let len = u16::try_from(raw.len()).context("query longer than 64 KiB")?;
    let mut out = Vec::with_capacity(raw.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(raw);
    stream.write_all(&out).await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await?;
    check(&buf, id).context("malformed answer or wrong ID")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_from_resolv_conf() {
        let text = "# comment\nnameserver 10.0.0.2\nsearch example.com\nnameserver ::1\nnameserver fe80::1%eth0\nnameserver\n";
        assert_eq!(
            resolv_conf_nameservers(text),
            vec![
                "10.0.0.2:53".parse::<SocketAddr>().expect("addr"),
                "[::1]:53".parse().expect("addr")
            ]
        );
    }

    #[test]
    fn the_server_itself_is_no_upstream() {
        let ups = vec![
            "127.0.0.1:53".parse().expect("addr"),
            "127.0.0.53:53".parse().expect("addr"),
            "10.0.0.2:53".parse().expect("addr"),
        ];
        let f = Forwarder::new(ups.clone(), "0.0.0.0:53".parse().expect("addr"));
        assert_eq!(f.upstreams(), &ups[2..]);
        let f = Forwarder::new(ups.clone(), "127.0.0.1:5353".parse().expect("addr"));
        assert_eq!(f.upstreams(), &ups[..]);
    }

    #[tokio::test]
    async fn forwards_to_a_loopback_upstream() {
        // A one-shot upstream on loopback answering with a fixed A record.
        let upstream = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = upstream.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut buf = vec![0u8; 512];
            if let Ok((n, from)) = upstream.recv_from(&mut buf).await {
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    return;
                };
                let mut r = Message::response(q.metadata.id, q.metadata.op_code);
                r.add_queries(q.queries.clone());
                if let Some(query) = q.queries.first() {
                    r.add_answer(Record::from_rdata(
                        query.name().clone(),
                        60,
                        hickory_server::proto::rr::RData::A(
                            hickory_server::proto::rr::rdata::A::new(192, 0, 2, 7),
                        ),
                    ));
                }
                if let Ok(bytes) = r.to_vec() {
                    let _ = upstream.send_to(&bytes, from).await;
                }
            }
        });
        let f = Forwarder::new(vec![addr], "127.0.0.1:53".parse().expect("addr"));
        let name = Name::from_ascii("example.com.").expect("name");
        let answers = f.resolve(&name, RecordType::A).await.expect("answer");
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].data.to_string(), "192.0.2.7");
    }
}
