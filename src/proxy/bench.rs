//! `rkube bench-proxy`: how long kube-proxy's syncs take in each mode (upstream publishes the same
//! figure as `sync_proxy_rules_duration_seconds`). It programs a network namespace of its own (so
//! the host's rules are untouched) with N synthetic Services of 3 endpoints each, and reports the
//! full sync, then one endpoint change (the median of several: an endpoint replaced, as a rolling
//! update does), one endpoint added (a scale-up), then a second full sync over the existing rules.
//! Goals from the issue: 10,000 Services under 1 s full sync in nftables mode, one change under
//! 50 ms.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::exec::Runner;
use super::iptables::Options;
use super::service_map::{Endpoint, ServicePort};
use super::{Mode, Proxier};

/// `n` Services of one port and 3 ready endpoints; every tenth has a node port.
pub fn synthetic(n: usize) -> Vec<ServicePort> {
    let ip = |base: u32, i: usize| Ipv4Addr::from(base + i as u32);
    (0..n)
        .map(|i| ServicePort {
            namespace: "bench".into(),
            name: format!("svc-{i}"),
            port_name: "http".into(),
            protocol: "tcp".into(),
            cluster_ip: ip(u32::from(Ipv4Addr::new(10, 96, 0, 10)), i),
            port: 80,
            node_port: (i % 10 == 0).then(|| 30000 + (i / 10 % 2768) as u16),
            external_ips: Vec::new(),
            affinity_seconds: None,
            external_local: false,
            internal_local: false,
            endpoints: (0..3)
                .map(|k| Endpoint {
                    ip: ip(u32::from(Ipv4Addr::new(10, 128, 0, 0)), i * 3 + k),
                    port: 8080,
                    ready: true,
                    serving: true,
                    terminating: false,
                    local: false,
                })
                .collect(),
        })
        .collect()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Runs the benchmark for each mode and Service count, printing one line per measurement.
pub async fn run(services: &[usize], modes: &[Mode]) -> anyhow::Result<()> {
    let ns = format!("rkube-bench-{}", std::process::id());
    let host = Runner::default();
    host.run("ip", &["netns", "add", &ns], None).await?;
    let runner = Runner {
        netns: Some(ns.clone()),
    };
    let result = measure(&runner, services, modes).await;
    let _ = host.run("ip", &["netns", "del", &ns], None).await;
    result
}

async fn measure(runner: &Runner, services: &[usize], modes: &[Mode]) -> anyhow::Result<()> {
    let options = Options {
        cluster_cidr: Some("10.128.0.0/9".into()),
        masquerade_all: false,
    };
    for &mode in modes {
        for &n in services {
            let mut proxier =
                Proxier::new(mode, runner.clone(), options.clone(), "rr".into()).await?;
            let mut ports = synthetic(n);
            let full = proxier.sync(&ports, true).await?;
            let mut changes = Vec::new();
            let mut change_bytes = 0;
            for round in 0..7 {
                // One endpoint of one Service replaced, as a rolling update does.
                let k = (n / 2 + round * 7) % n;
                let ep = &mut ports[k].endpoints[round % 3];
                ep.ip = Ipv4Addr::from(u32::from(ep.ip) + 0x0010_0000);
                let s = proxier.sync(&ports, false).await?;
                changes.push(s.render + s.apply);
                change_bytes = s.bytes;
            }
            changes.sort();
            let mut scaled = Vec::new();
            for round in 0..7 {
                // One endpoint added to another Service, as a scale-up does.
                let k = (n / 3 + round * 11) % n;
                let mut extra = ports[k].endpoints[0].clone();
                extra.ip = Ipv4Addr::from(u32::from(extra.ip) + 0x0020_0000);
                ports[k].endpoints.push(extra);
                let s = proxier.sync(&ports, false).await?;
                scaled.push(s.render + s.apply);
            }
            scaled.sort();
            let again = proxier.sync(&ports, true).await?;
            println!(
                "{mode:?}: {n} services x 3 endpoints: full sync {} (render {}, {} KB), one endpoint change {} median of {} ({} bytes), one endpoint added {} median of {}, full resync {}",
                ms(full.render + full.apply),
                ms(full.render),
                full.bytes / 1024,
                ms(changes[changes.len() / 2]),
                changes.len(),
                change_bytes,
                ms(scaled[scaled.len() / 2]),
                scaled.len(),
                ms(again.render + again.apply),
            );
            super::cleanup_all(runner).await;
        }
    }
    Ok(())
}
