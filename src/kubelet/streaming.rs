//! `kubectl exec`, `attach` and `port-forward` on the kubelet's port: the paths upstream's kubelet
//! serves (`/exec/{namespace}/{pod}/{container}`, `/attach/...`, `/portForward/{namespace}/{pod}`,
//! each also with the pod's UID before the container), the query the apiserver sends
//! (`command`, `input`, `output`, `error`, `tty`, `port`), and the answers upstream gives when the pod
//! or container is not there.
//!
//! The kubelet asks the runtime for a streaming URL (CRI `Exec`, `Attach`, `PortForward`) and relays
//! the caller's upgrade request to it ([`crate::upgrade`]): the stream protocol (SPDY or WebSocket,
//! and its version) is negotiated between kubectl and containerd's streaming server, as with
//! upstream's kubelet, which also proxies rather than redirects.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use k8s_cri::v1::{AttachRequest, ExecRequest};

use super::container_status::Run;
use super::pod_workers::Kubelet;
use super::server::{text, Body};

/// Which stream a path asks for.
#[derive(Debug, PartialEq)]
pub enum Kind {
    Exec,
    Attach,
    PortForward,
}

/// A parsed streaming path: kind, namespace, pod and (not for port-forward) container.
#[derive(Debug, PartialEq)]
pub struct Target {
    pub kind: Kind,
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

/// `/exec|attach/{ns}/{pod}[/{uid}]/{container}` and `/portForward/{ns}/{pod}[/{uid}]`.
pub fn parse_path(path: &str) -> Option<Target> {
    let mut parts = path.trim_start_matches('/').split('/');
    let kind = match parts.next()? {
        "exec" => Kind::Exec,
        "attach" => Kind::Attach,
        "portForward" => Kind::PortForward,
        _ => return None,
    };
    let rest: Vec<&str> = parts.collect();
    let (namespace, pod, container) = match (&kind, rest.as_slice()) {
        (Kind::PortForward, [ns, pod] | [ns, pod, _]) => (ns, pod, ""),
        (Kind::Exec | Kind::Attach, [ns, pod, c] | [ns, pod, _, c]) => (ns, pod, *c),
        _ => return None,
    };
    let decode = |s: &str| percent_decode(s).filter(|s| !s.is_empty());
    Some(Target {
        kind,
        namespace: decode(namespace)?,
        pod: decode(pod)?,
        container: if container.is_empty() {
            String::new()
        } else {
            decode(container)?
        },
    })
}

fn percent_decode(s: &str) -> Option<String> {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
}

/// The stream options of the query (upstream's remotecommand NewOptions).
#[derive(Debug, Default, PartialEq)]
pub struct Options {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    pub ports: Vec<i32>,
}

impl Options {
    pub fn parse(query: &str) -> Result<Options, String> {
        let mut o = Options::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let on = v == "1" || v == "true";
            match k.as_ref() {
                "command" => o.command.push(v.into_owned()),
                "input" => o.stdin = on,
                "output" => o.stdout = on,
                "error" => o.stderr = on,
                "tty" => o.tty = on,
                "port" => {
                    for p in v.split(',').filter(|p| !p.is_empty()) {
                        let port: i32 = p
                            .trim()
                            .parse()
                            .ok()
                            .filter(|p| (1..=65535).contains(p))
                            .ok_or_else(|| format!("invalid port {p:?}"))?;
                        o.ports.push(port);
                    }
                }
                _ => {}
            }
        }
        // Upstream bypasses stderr under a TTY (the terminal carries both).
        if o.tty {
            o.stderr = false;
        }
        Ok(o)
    }
}

/// Serves one streaming request: finds the pod and container, asks the runtime for its URL, and
/// relays the request there.
pub async fn handle(
    kubelet: &Kubelet,
    target: Target,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let opts = match Options::parse(req.uri().query().unwrap_or("")) {
        Ok(o) => o,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    if target.kind != Kind::PortForward && !opts.stdin && !opts.stdout && !opts.stderr {
        return text(
            StatusCode::BAD_REQUEST,
            "you must specify at least 1 of stdin, stdout, stderr",
        );
    }
    let Some(uid) = kubelet.runtime_uid(&target.namespace, &target.pod) else {
        return text(StatusCode::NOT_FOUND, "pod does not exist");
    };
    let url = match runtime_url(kubelet, &target, &uid, opts).await {
        Ok(url) => url,
        Err((code, message)) => return text(code, message),
    };
    let method = req.method().clone();
    let client = req.extensions_mut().remove::<OnUpgrade>();
    match relay_to(&url, &method, req.headers(), client).await {
        Ok(answer) => answer.map(|b| b.map_err(std::io::Error::other).boxed()),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("error dialing the runtime's streaming server {url}: {e}"),
        ),
    }
}

/// The runtime's streaming URL for `target`, or the status and message to answer instead.
async fn runtime_url(
    kubelet: &Kubelet,
    target: &Target,
    uid: &str,
    opts: Options,
) -> Result<String, (StatusCode, String)> {
    let internal = |e: super::cri::CriError| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    if target.kind == Kind::PortForward {
        let sandbox = kubelet.ready_sandbox(uid).await.map_err(internal)?;
        let Some(sandbox) = sandbox else {
            return Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "failed to find sandboxID for pod {}_{}({uid})",
                    target.pod, target.namespace
                ),
            ));
        };
        return kubelet
            .cri
            .port_forward(&sandbox, opts.ports)
            .await
            .map_err(internal);
    }
    // Upstream's findContainer looks among running containers only.
    let running = kubelet
        .attempts(uid, &target.container)
        .await
        .map_err(internal)?
        .into_iter()
        .find(|a| a.state == Run::Running);
    let Some(container) = running else {
        return Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("container not found ({:?})", target.container),
        ));
    };
    let url = if target.kind == Kind::Exec {
        kubelet
            .cri
            .exec(ExecRequest {
                container_id: container.id,
                cmd: opts.command,
                tty: opts.tty,
                stdin: opts.stdin,
                stdout: opts.stdout,
                stderr: opts.stderr,
            })
            .await
    } else {
        kubelet
            .cri
            .attach(AttachRequest {
                container_id: container.id,
                stdin: opts.stdin,
                tty: opts.tty,
                stdout: opts.stdout,
                stderr: opts.stderr,
            })
            .await
    };
    url.map_err(internal)
}

/// Relays the request to the runtime's URL (plain HTTP on the loopback address containerd chose).
async fn relay_to(
    url: &str,
    method: &Method,
    headers: &http::HeaderMap,
    client: Option<OnUpgrade>,
) -> anyhow::Result<crate::upgrade::Answer> {
    let uri: http::Uri = url.parse()?;
    if uri.scheme_str() != Some("http") {
        anyhow::bail!("only http:// streaming URLs are supported");
    }
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow::anyhow!("no host in the URL"))?;
    let port = authority.port_u16().unwrap_or(80);
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| anyhow::anyhow!("dial tcp: i/o timeout"))??;
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let req = crate::upgrade::backend_request(method, path, authority.as_str(), headers)?;
    Ok(crate::upgrade::relay(tcp, req, client).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("/exec/default/web/c"),
            Some(Target {
                kind: Kind::Exec,
                namespace: "default".into(),
                pod: "web".into(),
                container: "c".into()
            })
        );
        assert_eq!(
            parse_path("/attach/ns/p/uid-1/c").map(|t| (t.kind, t.container)),
            Some((Kind::Attach, "c".into()))
        );
        assert_eq!(
            parse_path("/portForward/ns/p").map(|t| (t.kind, t.pod)),
            Some((Kind::PortForward, "p".into()))
        );
        assert_eq!(parse_path("/exec/ns/p"), None);
        assert_eq!(parse_path("/exec//p/c"), None);
        assert_eq!(parse_path("/containerLogs/ns/p/c"), None);
    }

    #[test]
    fn options() {
        let o = Options::parse("command=sh&command=-c&command=echo%20hi&input=1&output=1&error=1")
            .unwrap();
        assert_eq!(o.command, ["sh", "-c", "echo hi"]);
        assert!(o.stdin && o.stdout && o.stderr && !o.tty);
        let tty = Options::parse("command=sh&output=1&error=1&tty=1").unwrap();
        assert!(tty.tty && !tty.stderr, "a TTY carries stderr");
        assert_eq!(
            Options::parse("port=8080,9090").unwrap().ports,
            [8080, 9090]
        );
        assert!(Options::parse("port=0").is_err());
    }
}
