//! Registry credentials for image pulls: upstream's docker keyring (pkg/credentialprovider).
//!
//! A pod's `imagePullSecrets` (the ServiceAccount admission has already copied its account's into
//! the pod, as upstream's does) are read as `kubernetes.io/dockerconfigjson` Secrets
//! (`.dockerconfigjson`: `{"auths": {"<registry>": {...}}}`) or `kubernetes.io/dockercfg` ones
//! (`.dockercfg`: `{"<registry>": {...}}`). Each entry's key is a registry host (`*` globs a DNS
//! label), an optional port and an optional path, with or without a scheme; Docker Hub's
//! `https://index.docker.io/v1/` stands for `docker.io`. An image takes every entry whose host and
//! port match its registry's and whose path is a prefix of its repository, most specific first; the
//! kubelet tries them in that order and pulls anonymously when none matches.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_cri::v1::AuthConfig;
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

/// Docker Hub, as image references name it.
const DOCKER_HUB: &str = "docker.io";

/// `<registry host[:port]>/<repository>` of an image reference, normalized as docker does
/// (`busybox` is `docker.io/library/busybox`), without tag or digest.
pub fn repository(image: &str) -> String {
    let name = image.split('@').next().unwrap_or(image);
    // A tag follows the last ':' after the last '/' (a ':' before it is a registry port).
    let name = match (name.rfind(':'), name.rfind('/')) {
        (Some(colon), Some(slash)) if colon > slash => &name[..colon],
        (Some(colon), None) => &name[..colon],
        _ => name,
    };
    let (first, rest) = name.split_once('/').unwrap_or(("", name));
    let is_host = first.contains('.') || first.contains(':') || first == "localhost";
    match (is_host, first.is_empty()) {
        (true, _) => normalize_host(first).to_string() + "/" + rest,
        (false, true) => format!("{DOCKER_HUB}/library/{rest}"),
        (false, false) => format!("{DOCKER_HUB}/{name}"),
    }
}

fn normalize_host(host: &str) -> &str {
    match host {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB,
        h => h,
    }
}

/// A keyring key as upstream stores it: host[:port] plus a path without `/v1/` or `/v2/`.
fn key_of(registry: &str) -> String {
    let rest = registry
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(registry);
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let path = path
        .strip_prefix("/v1/")
        .or_else(|| path.strip_prefix("/v2/"))
        .map(|p| format!("/{p}"))
        .unwrap_or_else(|| path.to_string());
    let path = path.trim_end_matches('/');
    format!("{}{path}", normalize_host(host))
}

/// Upstream's URLsMatch: as many DNS labels, each matching (with `*` globs), the same port, and
/// the key's path a prefix of the image's.
fn matches(key: &str, repository: &str) -> bool {
    let split = |s: &str| -> (String, String) {
        match s.find('/') {
            Some(i) => (s[..i].to_string(), s[i..].to_string()),
            None => (s.to_string(), String::new()),
        }
    };
    let (key_host, key_path) = split(key);
    let (image_host, image_path) = split(repository);
    let host_port = |h: &str| -> (String, String) {
        match h.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.to_string()),
            None => (h.to_string(), String::new()),
        }
    };
    let ((kh, kp), (ih, ip)) = (host_port(&key_host), host_port(&image_host));
    if kp != ip {
        return false;
    }
    let (kl, il): (Vec<&str>, Vec<&str>) = (kh.split('.').collect(), ih.split('.').collect());
    kl.len() == il.len()
        && kl.iter().zip(&il).all(|(k, i)| glob(k, i))
        && image_path.starts_with(&key_path)
}

/// `*` matches any run of characters within one label (filepath.Match without classes).
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|&i| rest.is_char_boundary(i))
                .any(|i| glob(tail, &rest[i..]))
        }
    }
}

/// The entries of one pull Secret, by key; a Secret of another type, or one that does not parse,
/// has none.
fn entries(secret: &Secret) -> Vec<(String, AuthConfig)> {
    let data = |k: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .and_then(|b| serde_json::from_slice::<Value>(&b.0).ok())
    };
    let registries = match secret.type_.as_deref() {
        Some("kubernetes.io/dockerconfigjson") => {
            data(".dockerconfigjson").and_then(|v| v.get("auths").cloned())
        }
        Some("kubernetes.io/dockercfg") => data(".dockercfg"),
        _ => None,
    };
    let Some(Value::Object(registries)) = registries else {
        return Vec::new();
    };
    registries
        .into_iter()
        .map(|(registry, entry)| {
            let field = |k: &str| {
                entry
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let (mut username, mut password) = (field("username"), field("password"));
            // `auth` is base64 of `user:password`, as `docker login` writes it.
            if let Some((u, p)) = base64::engine::general_purpose::STANDARD
                .decode(field("auth"))
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    s.split_once(':')
                        .map(|(u, p)| (u.to_string(), p.to_string()))
                })
            {
                (username, password) = (u, p);
            }
            // No server_address, as upstream's keyring: containerd parses it as a URL and drops
            // the credentials unless its host is the registry's (`127.0.0.1:5000` does not even
            // parse), and the key already chose the registry.
            let auth = AuthConfig {
                username,
                password,
                identity_token: field("identitytoken"),
                registry_token: field("registrytoken"),
                ..Default::default()
            };
            (key_of(&registry), auth)
        })
        .collect()
}

/// The credentials for `image` among `secrets`, most specific key first (upstream sorts its keys in
/// reverse order, so `host/path` precedes `host`); secrets in the order the pod lists them.
pub fn credentials(secrets: &[Secret], image: &str) -> Vec<AuthConfig> {
    let repository = repository(image);
    let mut by_key: BTreeMap<String, Vec<AuthConfig>> = BTreeMap::new();
    for secret in secrets {
        for (key, auth) in entries(secret) {
            if matches(&key, &repository) {
                by_key.entry(key).or_default().push(auth);
            }
        }
    }
    by_key.into_values().rev().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(type_: &str, key: &str, json: Value) -> Secret {
        Secret {
            type_: Some(type_.into()),
            data: Some(
                [(key.to_string(), ByteString(json.to_string().into_bytes()))]
                    .into_iter()
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn images_name_their_registry_as_docker_does() {
        assert_eq!(repository("busybox"), "docker.io/library/busybox");
        assert_eq!(repository("busybox:1.36"), "docker.io/library/busybox");
        assert_eq!(repository("me/app@sha256:ab"), "docker.io/me/app");
        assert_eq!(
            repository("127.0.0.1:5000/rkube/busybox:2"),
            "127.0.0.1:5000/rkube/busybox"
        );
        assert_eq!(repository("localhost/x"), "localhost/x");
        assert_eq!(repository("index.docker.io/me/app:1"), "docker.io/me/app");
        assert_eq!(
            repository("registry.example:443/a"),
            "registry.example:443/a"
        );
    }

    #[test]
    fn keys_match_as_upstream_keyring() {
        assert_eq!(key_of("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(key_of("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(key_of("quay.io/team/"), "quay.io/team");
        assert!(matches("docker.io", "docker.io/library/busybox"));
        assert!(matches("127.0.0.1:5000", "127.0.0.1:5000/rkube/busybox"));
        assert!(!matches("127.0.0.1:5001", "127.0.0.1:5000/rkube/busybox"));
        assert!(!matches("127.0.0.1", "127.0.0.1:5000/rkube/busybox"));
        assert!(matches("*.example.com", "eu.example.com/app"));
        assert!(!matches("*.example.com", "a.eu.example.com/app"));
        assert!(matches("quay.io/team", "quay.io/team/app"));
        assert!(!matches("quay.io/team", "quay.io/other/app"));
        assert!(glob("ab*d", "abcccd") && !glob("ab*d", "abc"));
    }

    #[test]
    fn secrets_give_credentials_most_specific_first() {
        let json = secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            serde_json::json!({"auths": {
                "quay.io": {"username": "broad", "password": "b"},
                "https://quay.io/team/": {"auth": base64::engine::general_purpose::STANDARD.encode("narrow:n")},
                "https://index.docker.io/v1/": {"username": "hub", "password": "h"},
            }}),
        );
        let cfg = secret(
            "kubernetes.io/dockercfg",
            ".dockercfg",
            serde_json::json!({"quay.io": {"username": "old", "password": "o"}}),
        );
        let opaque = secret("Opaque", ".dockerconfigjson", serde_json::json!({}));
        let got = credentials(&[json, cfg, opaque], "quay.io/team/app:1");
        let users: Vec<&str> = got.iter().map(|a| a.username.as_str()).collect();
        assert_eq!(users, ["narrow", "broad", "old"]);
        assert_eq!(
            (got[0].password.as_str(), got[0].server_address.as_str()),
            ("n", "")
        );
        let none: Vec<Secret> = Vec::new();
        assert!(credentials(&none, "busybox").is_empty());
    }

    #[test]
    fn docker_hub_credentials_apply_to_short_names() {
        let s = secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            serde_json::json!({"auths": {"https://index.docker.io/v1/": {"username": "hub", "password": "h"}}}),
        );
        assert_eq!(credentials(std::slice::from_ref(&s), "busybox").len(), 1);
        assert!(credentials(&[s], "quay.io/busybox").is_empty());
    }
}
