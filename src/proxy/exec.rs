//! Running the kernel's tools (`iptables-restore`, `nft`, `conntrack`, `ipset`, `ipvsadm`, `sysctl`),
//! each with a deadline, optionally inside a named network namespace (`--netns`: the proxy talks to
//! the apiserver from its own namespace but programs another one, which is how the tests give each
//! proxy a node of its own without any address outside their namespaces).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::AsyncWriteExt;

/// A rule set of 10,000 Services is tens of megabytes of restore input: generous, but bounded.
const DEADLINE: Duration = Duration::from_secs(120);

/// Runs programs in this proxy's network namespace.
#[derive(Debug, Clone, Default)]
pub struct Runner {
    pub netns: Option<String>,
}

impl Runner {
    fn command(&self, program: &str, args: &[&str]) -> tokio::process::Command {
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = tokio::process::Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => tokio::process::Command::new(program),
        };
        c.args(args).kill_on_drop(true);
        c
    }

    /// Runs `program args` with `stdin`, failing with its stderr when it exits non-zero.
    pub async fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> anyhow::Result<String> {
        let (ok, out, err) = self.output(program, args, stdin).await?;
        if !ok {
            bail!("{program} {}: {}", args.join(" "), err.trim());
        }
        Ok(out)
    }

    /// Runs `program args` with `stdin`: (exited zero, stdout, stderr).
    pub async fn output(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> anyhow::Result<(bool, String, String)> {
        let mut cmd = self.command(program, args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("running {program} (is it installed?)"))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let input = input.as_bytes().to_vec();
            // Written concurrently with reading the output, so a large input cannot deadlock on
            // a full pipe.
            tokio::spawn(async move {
                let _ = pipe.write_all(&input).await;
                let _ = pipe.shutdown().await;
            });
        }
        let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
            .await
            .with_context(|| format!("{program} did not finish within {DEADLINE:?}"))??;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Sets a sysctl (`net/bridge/bridge-nf-call-iptables` style path) in the proxy's namespace.
    pub async fn sysctl(&self, key: &str, value: &str) -> anyhow::Result<()> {
        self.run("sysctl", &["-q", "-w", &format!("{key}={value}")], None)
            .await
            .map(|_| ())
    }
}
