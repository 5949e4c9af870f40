//! The DNS server: hickory-server's UDP and TCP loops, with a [`RequestHandler`] that answers the
//! cluster domain from the current [`Index`] and forwards everything else.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::{Name, Record};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};

use super::forward::Forwarder;
use super::records::Outcome;
use super::watch::Shared;

/// A TCP client that sends nothing for this long is disconnected (hickory's DoS guard).
const TCP_IDLE: Duration = Duration::from_secs(10);
/// The EDNS buffer size advertised when the client advertises none bigger (RFC 6891's floor is
/// 512; 1232 is the DNS flag day's safe UDP size).
const EDNS_PAYLOAD: u16 = 1232;

/// The UDP sockets and the TCP listener of one listen address, bound before anything else starts so
/// that a port in use is known up front.
///
/// For an unspecified address (0.0.0.0) UDP is bound on every local address instead: a UDP answer
/// from a socket bound to 0.0.0.0 leaves with the source address the route picks, and a pod asking
/// the node's address gets it back from the CNI bridge's address, which its resolver drops (and
/// kube-proxy's conntrack could not map back to 10.96.0.10). TCP answers on the connection's own
/// address, so one TCP listener on 0.0.0.0 is right.
pub struct Sockets {
    pub udp: Vec<UdpSocket>,
    pub tcp: TcpListener,
    listen: SocketAddr,
}

impl Sockets {
    /// Binds TCP on `addr` and UDP on the same port (on each local address when `addr`'s is
    /// unspecified).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Sockets> {
        let tcp = TcpListener::bind(addr).await?;
        let port = tcp.local_addr()?.port();
        let ips = if addr.ip().is_unspecified() {
            local_addresses(addr.is_ipv4())
        } else {
            vec![addr.ip()]
        };
        let mut udp = Vec::new();
        let mut last = None;
        for ip in ips {
            match UdpSocket::bind(SocketAddr::new(ip, port)).await {
                Ok(s) => udp.push(s),
                // e.g. an IPv6 address still tentative: the others still serve.
                Err(e) => last = Some(e),
            }
        }
        if udp.is_empty() {
            return Err(last.unwrap_or_else(|| std::io::Error::other("no local address to bind")));
        }
        Ok(Sockets {
            udp,
            tcp,
            listen: SocketAddr::new(addr.ip(), port),
        })
    }

    /// The address asked for, with the port bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.listen)
    }
}

/// This host's addresses of one family (IPv6 link-local ones left out: they need a scope).
fn local_addresses(v4: bool) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates the list it points `ifap` at; it is only read, entry by entry
    // while non-null, and freed once with freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut ifap) != 0 {
            return out;
        }
        let mut cur = ifap;
        while !cur.is_null() {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET if v4 => {
                        let sin = &*(addr as *const libc::sockaddr_in);
                        out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))));
                    }
                    libc::AF_INET6 if !v4 => {
                        let sin6 = &*(addr as *const libc::sockaddr_in6);
                        if sin6.sin6_scope_id == 0 {
                            out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                        }
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    out.sort();
    out.dedup();
    out
}

/// Answers one request at a time per hickory task.
pub struct Handler {
    pub shared: Arc<Shared>,
    pub forwarder: Forwarder,
}

/// What goes back: the header fields and the four sections.
struct Answer {
    metadata: Metadata,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    soa: Vec<Record>,
    additionals: Vec<Record>,
}

impl Handler {
    async fn answer(&self, request: &Request) -> Answer {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        let empty = |metadata: Metadata, rcode: ResponseCode| {
            let mut metadata = metadata;
            metadata.response_code = rcode;
            Answer {
                metadata,
                answers: Vec::new(),
                authorities: Vec::new(),
                soa: Vec::new(),
                additionals: Vec::new(),
            }
        };
        if request.metadata.message_type != MessageType::Query {
            return empty(metadata, ResponseCode::FormErr);
        }
        if request.metadata.op_code != OpCode::Query {
            return empty(metadata, ResponseCode::NotImp);
        }
        let Ok(info) = request.request_info() else {
            // Not exactly one question.
            return empty(metadata, ResponseCode::FormErr);
        };
        let qname: Name = info.query.original().name().clone();
        let qtype = info.query.query_type();
        let index = self.shared.current();
        match index.lookup(&qname, qtype) {
            Outcome::Reply(mut reply) => {
                metadata.authoritative = true;
                metadata.response_code = reply.rcode;
                if let Some(target) = reply.chase.take() {
                    // An ExternalName's target, resolved upstream as CoreDNS does; without an
                    // answer the CNAME is dropped too (backend_lookup.go: `continue`).
                    match self.forwarder.resolve(&target, qtype).await {
                        Ok(records) => reply.answers.extend(records),
                        Err(e) => {
                            tracing::debug!("dns: resolving {target} upstream: {e:#}");
                            reply.answers.clear();
                            reply.soa = index.soa();
                        }
                    }
                }
                Answer {
                    metadata,
                    answers: reply.answers,
                    authorities: Vec::new(),
                    soa: reply.soa,
                    additionals: reply.additionals,
                }
            }
            Outcome::Forward => {
                let tcp = request.protocol() == Protocol::Tcp;
                match self.forwarder.exchange(request.as_slice(), tcp).await {
                    Ok(m) => forwarded(request, m),
                    Err(e) => {
                        tracing::debug!("dns: forwarding {qname} {qtype}: {e:#}");
                        empty(metadata, ResponseCode::ServFail)
                    }
                }
            }
        }
    }
}

/// The upstream's answer as ours: its flags and sections under the client's ID.
fn forwarded(request: &Request, m: Message) -> Answer {
    let mut metadata = m.metadata;
    metadata.id = request.metadata.id;
    Answer {
        metadata,
        answers: m.answers,
        authorities: m.authorities,
        soa: Vec::new(),
        // The upstream's OPT record is not in `additionals` (hickory parses it into `edns`); ours
        // is added from the request's.
        additionals: m.additionals,
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let answer = self.answer(request).await;
        // EDNS answered with EDNS (version 0), our buffer no bigger than the client's.
        let edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().clamp(512, EDNS_PAYLOAD));
            e.set_version(0);
            e
        });
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let metadata = answer.metadata;
        let response = builder.build(
            metadata,
            answer.answers.iter(),
            answer.authorities.iter(),
            answer.soa.iter(),
            answer.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!("dns: sending the answer to {}: {e}", request.src());
                let mut metadata = metadata;
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

/// Serves `sockets` until the server fails.
pub async fn serve(sockets: Sockets, handler: Handler) -> anyhow::Result<()> {
    let mut server = hickory_server::Server::new(handler);
    for udp in sockets.udp {
        server.register_socket(udp);
    }
    server.register_listener(sockets.tcp, TCP_IDLE, 32);
    server.block_until_done().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unspecified_binds_udp_on_each_local_address() {
        let s = Sockets::bind("0.0.0.0:0".parse().expect("addr"))
            .await
            .expect("bind");
        let port = s.local_addr().expect("addr").port();
        let bound: Vec<SocketAddr> = s.udp.iter().filter_map(|u| u.local_addr().ok()).collect();
        assert!(
            bound.contains(&SocketAddr::from(([127, 0, 0, 1], port))),
            "{bound:?}"
        );
        assert!(bound
            .iter()
            .all(|a| a.port() == port && !a.ip().is_unspecified()));
    }
}
