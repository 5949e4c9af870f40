//! `--encryption-provider-config`: upstream's `EncryptionConfiguration` file
//! (`apiserver.config.k8s.io/v1`), validated with upstream's messages
//! (`apiserver/pkg/apis/apiserver/validation/validation_encryption.go`) and resolved to the storage
//! prefixes it covers.
//!
//! ```yaml
//! apiVersion: apiserver.config.k8s.io/v1
//! kind: EncryptionConfiguration
//! resources:
//!   - resources: [secrets]
//!     providers:
//!       - aescbc: {keys: [{name: key1, secret: <32 bytes, base64>}]}
//!       - identity: {}
//! ```

use std::sync::Arc;

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::providers::{prefix, Cipher, Transformers};
use super::{Matcher, Rules};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    resources: Vec<ResourceConfiguration>,
}

#[derive(Deserialize)]
struct ResourceConfiguration {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<Provider>,
}

#[derive(Deserialize)]
struct Provider {
    aescbc: Option<Keys>,
    aesgcm: Option<Keys>,
    secretbox: Option<Keys>,
    identity: Option<Value>,
    kms: Option<Value>,
}

#[derive(Deserialize)]
struct Keys {
    #[serde(default)]
    keys: Vec<Key>,
}

#[derive(Deserialize)]
struct Key {
    #[serde(default)]
    name: String,
    #[serde(default)]
    secret: String,
}

/// One stored resource the config may name: its API group, plural and storage prefix.
pub struct KnownResource {
    pub group: String,
    pub plural: String,
    pub prefix: String,
}

/// Reads, validates and resolves the config at `path` against the built-in resources `known`.
/// Errors read as kube-apiserver's start-up error.
pub fn load(path: &std::path::Path, known: &[KnownResource]) -> Result<Rules, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!("error reading encryption provider configuration file {path:?}: {e}")
    })?;
    parse(&text, known)
}

/// [`load`] of the file's text.
pub fn parse(text: &str, known: &[KnownResource]) -> Result<Rules, String> {
    let file: File = serde_yaml::from_str(text)
        .map_err(|e| format!("error decoding encryption provider configuration file: {e}"))?;
    if file.api_version != "apiserver.config.k8s.io/v1" || file.kind != "EncryptionConfiguration" {
        return Err(format!(
            "error decoding encryption provider configuration file: no kind \"{}\" is registered for version \"{}\"",
            file.kind, file.api_version
        ));
    }
    let errors = validate(&file);
    if !errors.is_empty() {
        let joined = if errors.len() == 1 {
            errors[0].clone()
        } else {
            format!("[{}]", errors.join(", "))
        };
        return Err(format!("error while parsing file: {joined}"));
    }
    let mut rules = Vec::new();
    for conf in &file.resources {
        let transformers = Arc::new(transformers(&conf.providers)?);
        for r in &conf.resources {
            for m in resolve(r, known) {
                rules.push((m, transformers.clone()));
            }
        }
    }
    Ok(Rules::new(rules))
}

/// The providers in order, each key of a provider in turn (upstream nests them; flat, the first
/// still writes and every later one reads as stale).
fn transformers(providers: &[Provider]) -> Result<Transformers, String> {
    let mut entries = Vec::new();
    for p in providers {
        let (name, keys) = match (&p.aescbc, &p.aesgcm, &p.secretbox) {
            (Some(k), _, _) => ("aescbc", k),
            (_, Some(k), _) => ("aesgcm", k),
            (_, _, Some(k)) => ("secretbox", k),
            _ => {
                entries.push((Vec::new(), Cipher::Identity));
                continue;
            }
        };
        for k in &keys.keys {
            let secret = base64::engine::general_purpose::STANDARD
                .decode(&k.secret)
                .map_err(|_| "secrets must be base64 encoded".to_string())?;
            entries.push((prefix(name, &k.name), Cipher::new(name, &secret)?));
        }
    }
    Ok(Transformers::new(entries))
}

/// The storage prefixes `resource` (`secrets`, `deployments.apps`, `*.apps`, `*.`, `*.*`) covers.
/// A custom resource's prefix is `/registry/<group>/<plural>/`, so a group's CRDs are covered
/// whether they exist yet or not; an unknown core resource covers nothing, as upstream.
fn resolve(resource: &str, known: &[KnownResource]) -> Vec<Matcher> {
    let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
    if plural == "*" && group == "*" {
        return vec![Matcher::All];
    }
    let mut out: Vec<Matcher> = known
        .iter()
        .filter(|k| k.group == group && (plural == "*" || k.plural == plural))
        .map(|k| Matcher::Prefix(k.prefix.clone()))
        .collect();
    if !group.is_empty() {
        let custom = if plural == "*" {
            format!("/registry/{group}/")
        } else {
            format!("/registry/{group}/{plural}/")
        };
        if !out
            .iter()
            .any(|m| matches!(m, Matcher::Prefix(p) if *p == custom))
        {
            out.push(Matcher::Prefix(custom));
        }
    }
    out
}

/// Upstream's validation, in its order and words; each entry is one `field.Error`.
fn validate(file: &File) -> Vec<String> {
    let mut errs = Vec::new();
    if file.resources.is_empty() {
        errs.push(required("resources", "at least one resources is required"));
        return errs;
    }
    for (i, conf) in file.resources.iter().enumerate() {
        let r = format!("resources[{i}].resources");
        let p = format!("resources[{i}].providers");
        if conf.resources.is_empty() {
            errs.push(required(&r, &format!("at least one {r} is required")));
        }
        errs.extend(overlap(&conf.resources, &r));
        errs.extend(names(&conf.resources, &r));
        if conf.providers.is_empty() {
            errs.push(required(&p, &format!("at least one {p} is required")));
        }
        for (j, provider) in conf.providers.iter().enumerate() {
            let path = format!("{p}[{j}]");
            let found = [
                provider.kms.is_some(),
                provider.aesgcm.is_some(),
                provider.aescbc.is_some(),
                provider.secretbox.is_some(),
                provider.identity.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if found == 0 {
                errs.push(format!(
                    "{path}: Invalid value: {{}}: provider does not contain any of the expected providers: KMS, AESGCM, AESCBC, Secretbox, Identity"
                ));
                continue;
            }
            if found > 1 {
                errs.push(format!(
                    "{path}: Invalid value: {{}}: more than one provider specified in a single element, should split into different list elements"
                ));
                continue;
            }
            if provider.kms.is_some() {
                // No KMS plugin API here: refusing is better than storing Secrets in the clear.
                errs.push(format!(
                    "{path}.kms: Unsupported value: \"kms\": rkube has no KMS plugin support; use aescbc, aesgcm or secretbox"
                ));
            }
            for (name, keys, sizes) in [
                ("aesgcm", &provider.aesgcm, &[16usize, 24, 32][..]),
                ("aescbc", &provider.aescbc, &[16, 24, 32][..]),
                ("secretbox", &provider.secretbox, &[32][..]),
            ] {
                if let Some(keys) = keys {
                    errs.extend(validate_keys(
                        &keys.keys,
                        &format!("{path}.{name}.keys"),
                        sizes,
                    ));
                }
            }
        }
    }
    errs
}

fn required(path: &str, detail: &str) -> String {
    format!("{path}: Required value: {detail}")
}

fn invalid_list(path: &str, list: &[String], detail: &str) -> String {
    let items: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!(
        "{path}: Invalid value: []string{{{}}}: {detail}",
        items.join(", ")
    )
}

fn validate_keys(keys: &[Key], path: &str, sizes: &[usize]) -> Vec<String> {
    if keys.is_empty() {
        return vec![required(path, "at least one keys is required")];
    }
    let mut errs = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if key.name.is_empty() {
            errs.push(required(
                &format!("{at}.name"),
                "name is a mandatory field for a key",
            ));
        }
        if key.secret.is_empty() {
            errs.push(required(
                &format!("{at}.secret"),
                "secret is a mandatory field for a key",
            ));
            continue;
        }
        match base64::engine::general_purpose::STANDARD.decode(&key.secret) {
            Err(_) => errs.push(format!(
                "{at}.secret: Invalid value: \"REDACTED\": secrets must be base64 encoded"
            )),
            Ok(secret) if !sizes.contains(&secret.len()) => {
                let expected: Vec<String> = sizes.iter().map(usize::to_string).collect();
                errs.push(format!(
                    "{at}.secret: Invalid value: \"REDACTED\": secret is not of the expected length, got {}, expected one of [{}]",
                    secret.len(),
                    expected.join(" ")
                ));
            }
            Ok(_) => {}
        }
    }
    errs
}

/// Duplicates, and wildcards that mask another entry of the same list.
fn overlap(resources: &[String], path: &str) -> Vec<String> {
    if resources.len() < 2 {
        return Vec::new();
    }
    let parsed: Vec<(&str, &str)> = resources
        .iter()
        .map(|r| {
            let (res, group) = r.split_once('.').unwrap_or((r, ""));
            (group, res)
        })
        .collect();
    let (mut duplicate, mut overlapping) = (false, false);
    for (i, a) in parsed.iter().enumerate() {
        for (j, b) in parsed.iter().enumerate() {
            if i == j {
                continue;
            }
            if a == b {
                duplicate = true;
                continue;
            }
            if *a == ("*", "*") || (a.0 == b.0 && (a.1 == "*" || b.1 == "*")) {
                overlapping = true;
            }
        }
    }
    let mut errs = Vec::new();
    if duplicate {
        errs.push(invalid_list(
            path,
            resources,
            "the same resource cannot be specified multiple times",
        ));
    }
    if overlapping {
        errs.push(invalid_list(
            path,
            resources,
            "using overlapping resources such as 'secrets' and '*.' in the same resource list is not allowed as they will be masked",
        ));
    }
    errs
}

fn names(resources: &[String], path: &str) -> Vec<String> {
    let mut errs = Vec::new();
    for (j, res) in resources.iter().enumerate() {
        let why = if res.to_lowercase() != *res {
            "resource name should not contain capital letters"
        } else if res == "*" {
            "use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources"
        } else if [
            "apiserveripinfo",
            "serviceipallocations",
            "servicenodeportallocations",
        ]
        .contains(&res.as_str())
        {
            "resources which do not have REST API/s cannot be encrypted"
        } else {
            let (plural, group) = res.split_once('.').unwrap_or((res, ""));
            if group == "events.k8s.io" {
                "'*.events.k8s.io' objects are stored using the 'events' API group in etcd. Use 'events' instead in the config file"
            } else if group == "extensions" {
                "'extensions' group has been removed and cannot be used for encryption"
            } else if group == "*" && plural != "*" {
                "encrypting the same resource across groups is not supported"
            } else {
                continue;
            }
        };
        errs.push(format!("{path}[{j}]: Invalid value: {res:?}: {why}"));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<KnownResource> {
        [
            ("", "secrets", "/registry/secrets/"),
            ("", "configmaps", "/registry/configmaps/"),
            ("apps", "deployments", "/registry/deployments/"),
            ("apps", "replicasets", "/registry/replicasets/"),
        ]
        .iter()
        .map(|(g, p, pre)| KnownResource {
            group: g.to_string(),
            plural: p.to_string(),
            prefix: pre.to_string(),
        })
        .collect()
    }

    const KEY32: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes: "0123456789abcdef" twice

    fn config(resources: &str, providers: &str) -> String {
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: {resources}\n  providers: {providers}\n"
        )
    }

    #[test]
    fn resources_resolve_to_storage_prefixes_first_rule_wins() {
        let text = format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
             - resources: [secrets, '*.apps', crontabs.stable.example.com]\n  providers: [{{aescbc: {{keys: [{{name: k1, secret: {KEY32}}}]}}}}]\n\
             - resources: ['*.*']\n  providers: [{{identity: {{}}}}]\n"
        );
        let rules = parse(&text, &known()).unwrap();
        let enc = |key: &str| {
            rules.for_key(key).map(|t| {
                t.to_storage(b"x", key)
                    .unwrap()
                    .starts_with(b"k8s:enc:aescbc:v1:k1:")
            })
        };
        assert_eq!(enc("/registry/secrets/ns/a"), Some(true));
        assert_eq!(enc("/registry/deployments/ns/a"), Some(true));
        assert_eq!(
            enc("/registry/apps/widgets/ns/a"),
            Some(true),
            "a CRD of group apps"
        );
        assert_eq!(
            enc("/registry/stable.example.com/crontabs/ns/a"),
            Some(true)
        );
        // `*.*` catches the rest with identity.
        assert_eq!(enc("/registry/configmaps/ns/a"), Some(false));
        assert_eq!(enc("/registry/stable.example.com/other/ns/a"), Some(false));
    }

    #[test]
    fn upstreams_validation_messages() {
        let err = |resources: &str, providers: &str| {
            parse(&config(resources, providers), &known()).unwrap_err()
        };
        assert_eq!(
            err("[secrets]", "[{aescbc: {keys: [{name: k1, secret: c2hvcnQ=}]}}]"),
            "error while parsing file: resources[0].providers[0].aescbc.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the expected length, got 5, expected one of [16 24 32]"
        );
        assert_eq!(
            err("[secrets]", "[{secretbox: {keys: [{name: k1, secret: 'c2hvcnQ='}]}}]"),
            "error while parsing file: resources[0].providers[0].secretbox.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the expected length, got 5, expected one of [32]"
        );
        assert_eq!(
            err("[secrets, secrets]", "[{identity: {}}]"),
            "error while parsing file: resources[0].resources: Invalid value: []string{\"secrets\", \"secrets\"}: the same resource cannot be specified multiple times"
        );
        assert_eq!(
            err("['*', Secrets]", "[{identity: {}}]"),
            "error while parsing file: [resources[0].resources: Invalid value: []string{\"*\", \"Secrets\"}: using overlapping resources such as 'secrets' and '*.' in the same resource list is not allowed as they will be masked, resources[0].resources[0]: Invalid value: \"*\": use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources, resources[0].resources[1]: Invalid value: \"Secrets\": resource name should not contain capital letters]"
        );
        assert_eq!(
            err("[secrets]", "[{aescbc: {keys: [{name: k, secret: '!!'}]}}]"),
            "error while parsing file: resources[0].providers[0].aescbc.keys[0].secret: Invalid value: \"REDACTED\": secrets must be base64 encoded"
        );
        assert_eq!(
            err("[secrets]", "[{identity: {}, aescbc: {keys: []}}]"),
            "error while parsing file: resources[0].providers[0]: Invalid value: {}: more than one provider specified in a single element, should split into different list elements"
        );
        assert!(
            err("[secrets]", "[{kms: {name: x, endpoint: 'unix:///k'}}]")
                .contains("no KMS plugin support")
        );
        assert!(parse("apiVersion: v1\nkind: ConfigMap\n", &known())
            .unwrap_err()
            .contains("no kind \"ConfigMap\" is registered"));
    }
}
