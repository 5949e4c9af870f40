//! kube-proxy: turns Services and EndpointSlices into the node's packet rules, so a cluster IP or a
//! node port reaches a ready endpoint.
//!
//! Start at [`run`]: an API client (identity `system:kube-proxy`, bound to `system:node-proxier` by
//! the bootstrap policy) watches Services and EndpointSlices with kube-runtime reflectors; any change
//! wakes one sync loop, which is rate-limited (upstream's `--min-sync-period`, 1 s) and rebuilds the
//! whole model ([`service_map::build`]) from the caches. A mode renders that model into a complete
//! rule set and applies only its difference from the last one applied, atomically
//! ([`iptables`]: `iptables-restore --noflush`; [`nftables`]: one `nft -f` transaction; [`ipvs`]:
//! `ipvsadm -R`, `ipset restore`, `iptables-restore`). After a failure, and every hour, the next sync
//! is a full one. [`conntrack`] clears UDP flows made stale; [`exec`] runs the tools with deadlines.

pub mod bench;
pub mod conntrack;
pub mod exec;
pub mod iptables;
pub mod ipvs;
pub mod nftables;
pub mod service_map;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::Notify;

use exec::Runner;
use service_map::ServicePort;

/// How the proxy programs the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Iptables,
    Nftables,
    Ipvs,
}

/// The proxy's settings (upstream's KubeProxyConfiguration, the part that applies here).
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    /// This node's name: endpoints on it are local for the Local traffic policies.
    pub node_name: String,
    pub options: iptables::Options,
    /// Program this network namespace instead of the proxy's own (see [`exec`]).
    pub netns: Option<String>,
    /// The IPVS scheduler (`rr` by default, as upstream).
    pub ipvs_scheduler: String,
}

/// Upstream's `--min-sync-period`: bursts of changes are applied together.
const MIN_SYNC: Duration = Duration::from_secs(1);
/// Upstream's full resync period for its partial-sync proxiers.
const FULL_SYNC: Duration = Duration::from_secs(3600);
/// How often the proxy checks its rules are still in the kernel (upstream's canary monitor): someone
/// flushing the tables (`iptables -t nat -F`, `nft flush ruleset`, a firewall reload) must not leave
/// Services broken until the next change.
const CANARY_PERIOD: Duration = Duration::from_secs(60);
/// An empty chain whose disappearance means the nat table was flushed.
pub const CANARY: &str = "KUBE-PROXY-CANARY";

/// What a sync did, for logs and the benchmark.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncStats {
    pub full: bool,
    /// Bytes of restore/transaction input sent to the kernel's tools.
    pub bytes: usize,
    pub render: Duration,
    pub apply: Duration,
}

/// The last state each mode applied (`None`: the next sync is full).
enum Applied {
    Iptables(Option<iptables::Ruleset>),
    Nftables(Option<nftables::State>),
    Ipvs(Option<ipvs::State>),
}

/// One mode's programmer: renders a model, applies the difference, remembers what it applied.
pub struct Proxier {
    runner: Runner,
    options: iptables::Options,
    applied: Applied,
    last_ports: Vec<ServicePort>,
    ipvs_scheduler: String,
    jumps_ensured: bool,
}

impl Proxier {
    /// A proxier for `mode`, after checking the kernel can do it and removing what the other
    /// modes left behind (upstream's `CleanupLeftovers` on start).
    pub async fn new(
        mode: Mode,
        runner: Runner,
        options: iptables::Options,
        ipvs_scheduler: String,
    ) -> anyhow::Result<Proxier> {
        let applied = match mode {
            Mode::Iptables => {
                cleanup_nftables(&runner).await;
                Applied::Iptables(None)
            }
            Mode::Nftables => {
                runner
                    .run("nft", &["--version"], None)
                    .await
                    .map_err(|e| anyhow::anyhow!("the nftables mode needs the nft tool: {e:#}"))?;
                cleanup_iptables(&runner).await;
                Applied::Nftables(None)
            }
            Mode::Ipvs => {
                let present = runner
                    .output("test", &["-e", "/proc/net/ip_vs"], None)
                    .await
                    .map(|(ok, _, _)| ok)
                    .unwrap_or(false);
                if let Some(msg) = ipvs::kernel_error(present) {
                    anyhow::bail!(msg);
                }
                cleanup_nftables(&runner).await;
                Applied::Ipvs(None)
            }
        };
        // Pods on a bridge reach a cluster IP whose endpoint is on the same bridge: without this,
        // the reply is bridged straight back and never un-NATed (upstream requires br_netfilter).
        if let Err(e) = runner
            .sysctl("net.bridge.bridge-nf-call-iptables", "1")
            .await
        {
            tracing::debug!("proxy: bridge-nf-call-iptables: {e:#}");
        }
        if let Err(e) = runner.sysctl("net.ipv4.ip_forward", "1").await {
            tracing::warn!("proxy: ip_forward: {e:#}");
        }
        Ok(Proxier {
            runner,
            options,
            applied,
            last_ports: Vec::new(),
            ipvs_scheduler,
            jumps_ensured: false,
        })
    }

    /// Brings the kernel to `ports`: only the difference from the last sync, or everything when
    /// `full` (or after a failure).
    pub async fn sync(&mut self, ports: &[ServicePort], full: bool) -> anyhow::Result<SyncStats> {
        let started = Instant::now();
        let mut stats = SyncStats::default();
        let result = match &mut self.applied {
            Applied::Iptables(last) => {
                let new = iptables::render(ports, &self.options);
                let old = if full { None } else { last.take() };
                stats.full = old.is_none();
                let mut existing = BTreeMap::new();
                if old.is_none() {
                    for table in ["filter", "nat"] {
                        let save = self
                            .runner
                            .run("iptables-save", &["-t", table], None)
                            .await?;
                        existing.insert(table, iptables::saved_chains(&save));
                    }
                }
                let text = iptables::restore_input(&new, old.as_ref(), &existing);
                stats.render = started.elapsed();
                stats.bytes = text.len();
                let r = restore(&self.runner, &text).await;
                if r.is_ok() {
                    *last = Some(new);
                }
                r
            }
            Applied::Nftables(last) => {
                let old = if full { None } else { last.take() };
                stats.full = old.is_none();
                let (new, text) = nftables::sync(ports, &self.options, old);
                stats.render = started.elapsed();
                stats.bytes = text.len();
                let r = if text.is_empty() {
                    Ok(())
                } else {
                    self.runner
                        .run("nft", &["-f", "-"], Some(&text))
                        .await
                        .map(|_| ())
                };
                if r.is_ok() {
                    *last = Some(new);
                }
                r
            }
            Applied::Ipvs(last) => {
                let node_ips = local_addresses(&self.runner).await?;
                let new = ipvs::render(ports, &self.options, &node_ips, &self.ipvs_scheduler);
                let old = if full { None } else { last.take() };
                stats.full = old.is_none();
                let r = apply_ipvs(&self.runner, &new, old.as_ref(), &mut stats).await;
                if r.is_ok() {
                    *last = Some(new);
                }
                r
            }
        };
        stats.apply = started.elapsed().saturating_sub(stats.render);
        result?;
        let uses_iptables = !matches!(self.applied, Applied::Nftables(_));
        if uses_iptables && (stats.full || !self.jumps_ensured) {
            ensure_jumps(&self.runner, matches!(self.applied, Applied::Ipvs(_))).await?;
            self.jumps_ensured = true;
        }
        conntrack::clear(&self.runner, &self.last_ports, ports).await;
        self.last_ports = ports.to_vec();
        Ok(stats)
    }

    /// Whether the rules of the last sync are still in the kernel: the canary chain (iptables and
    /// IPVS modes) or the table's `services` chain (nftables mode).
    pub async fn rules_present(&self) -> bool {
        let check = match self.applied {
            Applied::Nftables(_) => {
                self.runner
                    .output(
                        "nft",
                        &["list", "chain", "ip", "kube-proxy", "services"],
                        None,
                    )
                    .await
            }
            _ => {
                self.runner
                    .output("iptables", &["-w", "5", "-t", "nat", "-S", CANARY], None)
                    .await
            }
        };
        // A tool that cannot run at all says nothing about the rules.
        check.map(|(ok, _, _)| ok).unwrap_or(true)
    }
}

async fn restore(runner: &Runner, text: &str) -> anyhow::Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    runner
        .run("iptables-restore", &["-w", "5", "--noflush"], Some(text))
        .await
        .map(|_| ())
}

/// The `iptables` arguments that check (`-C`), insert (`-I`) or delete (`-D`) one of the jumps.
fn jump_rule<'a>(
    op: &'a str,
    table: &'a str,
    from: &'a str,
    to: &'a str,
    comment: &'a str,
    extra: &'a str,
) -> Vec<&'a str> {
    let mut rule = vec![
        "-w",
        "5",
        "-t",
        table,
        op,
        from,
        "-m",
        "comment",
        "--comment",
        comment,
    ];
    rule.extend(extra.split_whitespace());
    rule.extend(["-j", to]);
    rule
}

/// The jumps from the built-in chains, checked with `-C` and inserted when missing.
async fn ensure_jumps(runner: &Runner, ipvs: bool) -> anyhow::Result<()> {
    for (table, from, to, comment, extra) in iptables::JUMPS {
        if ipvs && *table == "filter" && *to != "KUBE-FORWARD" {
            continue;
        }
        let check = jump_rule("-C", table, from, to, comment, extra);
        if !runner.output("iptables", &check, None).await?.0 {
            let insert = jump_rule("-I", table, from, to, comment, extra);
            runner.run("iptables", &insert, None).await?;
        }
    }
    Ok(())
}

/// Removes the iptables mode's rules: the jumps, then every `KUBE-*` chain (upstream's cleanup when
/// another mode starts, and `rkube proxy --cleanup`).
pub async fn cleanup_iptables(runner: &Runner) {
    for (table, from, to, comment, extra) in iptables::JUMPS {
        let rule = jump_rule("-D", table, from, to, comment, extra);
        // Deleted until absent (an earlier run may have inserted it twice).
        for _ in 0..4 {
            if !matches!(
                runner.output("iptables", &rule, None).await,
                Ok((true, _, _))
            ) {
                break;
            }
        }
    }
    let mut text = String::new();
    for table in ["filter", "nat"] {
        let Ok(save) = runner.run("iptables-save", &["-t", table], None).await else {
            continue;
        };
        let ours: BTreeSet<String> = iptables::saved_chains(&save)
            .into_iter()
            .filter(|c| c.starts_with("KUBE-"))
            .collect();
        if ours.is_empty() {
            continue;
        }
        text.push_str(&format!("*{table}\n"));
        for c in &ours {
            text.push_str(&format!(":{c} - [0:0]\n"));
        }
        for c in &ours {
            text.push_str(&format!("-X {c}\n"));
        }
        text.push_str("COMMIT\n");
    }
    if let Err(e) = restore(runner, &text).await {
        tracing::warn!("proxy: removing iptables rules: {e:#}");
    }
}

/// Removes the nftables mode's table.
pub async fn cleanup_nftables(runner: &Runner) {
    let _ = runner
        .output("nft", &["delete", "table", "ip", "kube-proxy"], None)
        .await;
}

/// Removes what any mode programmed (`rkube proxy --cleanup`).
pub async fn cleanup_all(runner: &Runner) {
    cleanup_iptables(runner).await;
    cleanup_nftables(runner).await;
    // IPVS: only where the kernel and tools have it.
    let _ = runner.output("ipvsadm", &["-C"], None).await;
    let _ = runner
        .output("ip", &["link", "del", ipvs::DUMMY], None)
        .await;
    for (set, _) in ipvs::SETS {
        let _ = runner.output("ipset", &["destroy", set], None).await;
    }
}

/// This node's IPv4 addresses (node ports listen on them), except loopback and the dummy interface.
async fn local_addresses(runner: &Runner) -> anyhow::Result<Vec<Ipv4Addr>> {
    let out = runner
        .run("ip", &["-4", "-o", "addr", "show"], None)
        .await?;
    Ok(out
        .lines()
        .filter(|l| !l.contains(ipvs::DUMMY))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet")?;
            words.next()?.split('/').next()?.parse::<Ipv4Addr>().ok()
        })
        .filter(|ip| !ip.is_loopback())
        .collect())
}

async fn apply_ipvs(
    runner: &Runner,
    new: &ipvs::State,
    old: Option<&ipvs::State>,
    stats: &mut SyncStats,
) -> anyhow::Result<()> {
    let empty = ipvs::State::default();
    let before = old.unwrap_or(&empty);
    let _ = runner
        .output("ip", &["link", "add", ipvs::DUMMY, "type", "dummy"], None)
        .await;
    for ip in new.addresses.difference(&before.addresses) {
        runner
            .run(
                "ip",
                &["addr", "replace", &format!("{ip}/32"), "dev", ipvs::DUMMY],
                None,
            )
            .await?;
    }
    for ip in before.addresses.difference(&new.addresses) {
        let _ = runner
            .output(
                "ip",
                &["addr", "del", &format!("{ip}/32"), "dev", ipvs::DUMMY],
                None,
            )
            .await;
    }
    let sets = ipvs::ipset_restore(new, before);
    runner
        .run("ipset", &["restore", "-exist"], Some(&sets))
        .await?;
    if old.is_none() {
        runner.run("ipvsadm", &["-C"], None).await?;
    }
    let virtual_servers = ipvs::ipvsadm_restore(new, before);
    runner
        .run("ipvsadm", &["-R"], Some(&virtual_servers))
        .await?;
    let existing = BTreeMap::new();
    let rules = iptables::restore_input(&new.rules, old.map(|o| &o.rules), &existing);
    stats.bytes = sets.len() + virtual_servers.len() + rules.len();
    restore(runner, &rules).await
}

/// Runs the proxy until the watches end: every change to Services or EndpointSlices leads to a
/// (rate-limited) sync of the node's rules.
pub async fn run(client: kube::Client, config: Config) -> anyhow::Result<()> {
    let runner = Runner {
        netns: config.netns.clone(),
    };
    let mut proxier = Proxier::new(
        config.mode,
        runner,
        config.options.clone(),
        config.ipvs_scheduler.clone(),
    )
    .await?;
    let changed = Arc::new(Notify::new());
    // Services handed to another proxy and headless Services' slices are never this proxy's
    // (upstream's informers filter them out by label the same way).
    let services = watch::<Service>(
        &client,
        &format!("!{}", service_map::SERVICE_PROXY_NAME),
        changed.clone(),
    );
    let slices = watch::<EndpointSlice>(
        &client,
        &format!("!{}", service_map::HEADLESS),
        changed.clone(),
    );
    services.wait_until_ready().await?;
    slices.wait_until_ready().await?;
    tracing::info!(mode = ?config.mode, node = %config.node_name, "kube-proxy watching Services and EndpointSlices");
    let mut last_full = Instant::now();
    let mut need_full = true;
    let mut backoff = MIN_SYNC;
    loop {
        let svcs = services.state();
        let eps = slices.state();
        let ports = service_map::build(
            &svcs.iter().map(|s| s.as_ref()).collect::<Vec<_>>(),
            &eps.iter().map(|s| s.as_ref()).collect::<Vec<_>>(),
            &config.node_name,
        );
        let full = need_full || last_full.elapsed() > FULL_SYNC;
        if full || proxier.last_ports != ports {
            match proxier.sync(&ports, full).await {
                Ok(stats) => {
                    tracing::debug!(?stats, services = ports.len(), "proxy: synced");
                    if stats.full {
                        last_full = Instant::now();
                    }
                    need_full = false;
                    backoff = MIN_SYNC;
                }
                Err(e) => {
                    tracing::warn!(
                        "proxy: sync failed, retrying with a full sync in {backoff:?}: {e:#}"
                    );
                    need_full = true;
                    changed.notify_one();
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        loop {
            if tokio::time::timeout(CANARY_PERIOD, changed.notified())
                .await
                .is_ok()
            {
                break;
            }
            if !need_full && !proxier.rules_present().await {
                tracing::warn!(
                    "proxy: the rules were removed from the kernel; writing them all again"
                );
                need_full = true;
                break;
            }
            if last_full.elapsed() > FULL_SYNC {
                break;
            }
        }
        tokio::time::sleep(MIN_SYNC).await;
    }
}

/// A reflector of `K` (label selector `labels`) whose every event pokes `changed`.
fn watch<K>(client: &kube::Client, labels: &str, changed: Arc<Notify>) -> reflector::Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let api: Api<K> = Api::all(client.clone());
    let stream = reflector::reflector(
        writer,
        watcher::watcher(api, watcher::Config::default().labels(labels)).default_backoff(),
    );
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changed.notify_one(),
                Err(e) => tracing::warn!("proxy: watch: {e}"),
            }
        }
    });
    store
}
