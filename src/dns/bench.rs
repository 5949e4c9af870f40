//! `rkube bench-dns`: how many Service-name answers per second the DNS server gives one client
//! (not a test; the figure goes in the benchmark report).
//!
//! Builds the index of N Services (spread over 10 namespaces) as the watchers would, serves it on
//! a loopback UDP port with the real server ([`super::server`]), and sends A queries for random
//! Service names from one UDP socket: first one at a time (latency-bound), then with a window of
//! queries in flight (throughput-bound). Every answer is checked (ID, NOERROR, one A record).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hickory_server::proto::op::{Message, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Service};
use serde_json::json;
use tokio::net::UdpSocket;

use super::records::{Index, DEFAULT_TTL};
use super::{forward::Forwarder, server, watch::Shared};

const NAMESPACES: usize = 10;
/// A lost datagram (none expected on loopback) fails the run rather than hanging it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

fn fixtures(count: usize) -> anyhow::Result<(Vec<Service>, Vec<Namespace>)> {
    let mut services = Vec::with_capacity(count);
    for i in 0..count {
        let ip = format!("10.{}.{}.{}", 96 + i / 65536, (i / 256) % 256, i % 256);
        services.push(serde_json::from_value(json!({
            "metadata": {"name": format!("svc-{i}"), "namespace": format!("ns-{}", i % NAMESPACES)},
            "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}]},
        }))?);
    }
    let namespaces = (0..NAMESPACES)
        .map(|i| serde_json::from_value(json!({"metadata": {"name": format!("ns-{i}")}})))
        .collect::<Result<_, _>>()?;
    Ok((services, namespaces))
}

fn query(id: u16, i: usize) -> anyhow::Result<Vec<u8>> {
    let name = Name::from_ascii(format!("svc-{i}.ns-{}.svc.cluster.local.", i % NAMESPACES))?;
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name, RecordType::A));
    Ok(m.to_vec()?)
}

fn check(buf: &[u8]) -> anyhow::Result<u16> {
    let m = Message::from_vec(buf).context("malformed answer")?;
    if m.metadata.response_code != ResponseCode::NoError || m.answers.len() != 1 {
        bail!(
            "answer {}: {} with {} records",
            m.metadata.id,
            m.metadata.response_code,
            m.answers.len()
        );
    }
    Ok(m.metadata.id)
}

/// Sends `queries` A queries with at most `window` in flight; returns answers/s.
async fn drive(
    server: SocketAddr,
    services: usize,
    queries: usize,
    window: usize,
) -> anyhow::Result<f64> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    socket.connect(server).await?;
    let mut buf = vec![0u8; 4096];
    let mut in_flight: HashMap<u16, ()> = HashMap::new();
    let (mut sent, mut answered) = (0usize, 0usize);
    let start = Instant::now();
    while answered < queries {
        while sent < queries && in_flight.len() < window {
            let id = (sent % 65536) as u16;
            let i = rand::random_range(0..services);
            socket.send(&query(id, i)?).await?;
            in_flight.insert(id, ());
            sent += 1;
        }
        let n = tokio::time::timeout(ANSWER_TIMEOUT, socket.recv(&mut buf))
            .await
            .context("no answer in 5s")??;
        let id = check(buf.get(..n).unwrap_or_default())?;
        if in_flight.remove(&id).is_some() {
            answered += 1;
        }
    }
    Ok(answered as f64 / start.elapsed().as_secs_f64())
}

pub async fn run(services: usize, queries: usize, window: usize) -> anyhow::Result<()> {
    let services = services.max(1);
    let (svcs, namespaces) = fixtures(services)?;
    let building = Instant::now();
    let index = Index::build(
        super::DEFAULT_DOMAIN,
        DEFAULT_TTL,
        true,
        &svcs,
        [],
        &namespaces,
    );
    let build_time = building.elapsed();
    let shared = Shared::new(index);
    let sockets = server::Sockets::bind("127.0.0.1:0".parse()?).await?;
    let addr = sockets.local_addr()?;
    let handler = server::Handler {
        shared,
        forwarder: Forwarder::new(Vec::new(), addr),
    };
    let serving = tokio::spawn(server::serve(sockets, handler));
    let sequential = drive(addr, services, queries, 1).await?;
    let pipelined = drive(addr, services, queries, window.clamp(1, 60000)).await?;
    serving.abort();
    println!(
        "bench-dns: {services} Services (index built in {:.1} ms), {queries} A queries per run from one UDP client",
        build_time.as_secs_f64() * 1000.0
    );
    println!("  one at a time:        {sequential:>9.0} answers/s");
    println!("  {window:>4} in flight:       {pipelined:>9.0} answers/s");
    Ok(())
}
