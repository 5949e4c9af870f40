//! A container's environment as upstream's kubelet makes it (makeEnvironmentVariables): the Service
//! variables of the pod's namespace (when `enableServiceLinks`, plus the master `kubernetes` Service's
//! always), then `envFrom`, then `env` with `$(VAR)` references expanded against what came before,
//! values from the downward API (fieldRef, resourceFieldRef), ConfigMaps and Secrets.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Pod, ResourceFieldSelector, Secret, Service,
};
use kube::api::{Api, ListParams};
use kube::ResourceExt;

use crate::apiserver::wire::quantity::Quantity;

/// A pod's IP list as the downward API gives it: comma-separated.
fn join_ips(ips: Option<Vec<&str>>) -> String {
    ips.map(|ips| ips.join(",")).unwrap_or_default()
}

/// A value of the downward API's fieldRef (upstream's podFieldSelectorRuntimeValue).
pub fn field_value(pod: &Pod, path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let in_map = |map: &Option<BTreeMap<String, String>>, prefix: &str| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(
            map.as_ref()
                .and_then(|m| m.get(key).cloned())
                .unwrap_or_default(),
        )
    };
    let map_text = |map: &Option<BTreeMap<String, String>>| {
        map.iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => map_text(&meta.labels),
        "metadata.annotations" => map_text(&meta.annotations),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()).unwrap_or_default(),
        "status.hostIPs" => join_ips(
            status
                .and_then(|s| s.host_ips.as_ref())
                .map(|ips| ips.iter().map(|i| i.ip.as_str()).collect()),
        ),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        "status.podIPs" => join_ips(
            status
                .and_then(|s| s.pod_ips.as_ref())
                .map(|ips| ips.iter().map(|i| i.ip.as_str()).collect()),
        ),
        _ => {
            if let Some(v) = in_map(&meta.labels, "metadata.labels['") {
                v
            } else if let Some(v) = in_map(&meta.annotations, "metadata.annotations['") {
                v
            } else {
                return Err(format!("unsupported fieldPath: {path}"));
            }
        }
    })
}

/// A value of the downward API's resourceFieldRef: the container's request or limit divided by the
/// divisor, rounded up (upstream's ExtractContainerResourceValue). An unset limit reads as the
/// node's allocatable in upstream; here it reads as 0 for lack of that number at this point.
pub fn resource_value(c: &Container, r: &ResourceFieldSelector) -> Result<String, String> {
    let res = c.resources.as_ref();
    let (kind, name) = r
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource : {}", r.resource))?;
    let map = match kind {
        "limits" => res.and_then(|x| x.limits.as_ref()),
        "requests" => res.and_then(|x| x.requests.as_ref()),
        _ => return Err(format!("unsupported container resource : {}", r.resource)),
    };
    let value = map
        .and_then(|m| m.get(name))
        .map(|q| Quantity::parse(&q.0))
        .transpose()?
        .map(|q| q.milli_value())
        .unwrap_or(0);
    let divisor = r
        .divisor
        .as_ref()
        .map(|d| Quantity::parse(&d.0))
        .transpose()?
        .map(|q| q.milli_value())
        .filter(|d| *d > 0)
        .unwrap_or(1000);
    let out = (value + divisor - 1) / divisor;
    Ok(out.to_string())
}

/// Expands `$(VAR)` references against `vars` as upstream's expansion does: `$$` escapes, unknown
/// references stay as written.
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let bytes: Vec<char> = input.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == '$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                '$' => {
                    out.push('$');
                    i += 2;
                    continue;
                }
                '(' => {
                    if let Some(end) = bytes[i + 2..].iter().position(|c| *c == ')') {
                        let name: String = bytes[i + 2..i + 2 + end].iter().collect();
                        match vars.get(&name) {
                            Some(v) => out.push_str(v),
                            None => out.push_str(&format!("$({name})")),
                        }
                        i += 3 + end;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Upstream's service environment variables for one Service (FOO_SERVICE_HOST, FOO_PORT_80_TCP, ...).
fn service_vars(svc: &Service, out: &mut Vec<(String, String)>) {
    let Some(spec) = svc.spec.as_ref() else {
        return;
    };
    let Some(ip) = spec
        .cluster_ip
        .clone()
        .filter(|ip| !ip.is_empty() && ip != "None")
    else {
        return;
    };
    let name = svc.name_any().to_uppercase().replace('-', "_");
    let ports = spec.ports.clone().unwrap_or_default();
    let Some(first) = ports.first() else {
        return;
    };
    out.push((format!("{name}_SERVICE_HOST"), ip.clone()));
    out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
    for p in &ports {
        if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((
                format!(
                    "{name}_SERVICE_PORT_{}",
                    pn.to_uppercase().replace('-', "_")
                ),
                p.port.to_string(),
            ));
        }
    }
    let proto = |p: &k8s_openapi::api::core::v1::ServicePort| {
        p.protocol.clone().unwrap_or_else(|| "TCP".into())
    };
    out.push((
        format!("{name}_PORT"),
        format!("{}://{ip}:{}", proto(first).to_lowercase(), first.port),
    ));
    for p in &ports {
        let prefix = format!("{name}_PORT_{}_{}", p.port, proto(p).to_uppercase());
        out.push((
            prefix.clone(),
            format!("{}://{ip}:{}", proto(p).to_lowercase(), p.port),
        ));
        out.push((format!("{prefix}_PROTO"), proto(p).to_lowercase()));
        out.push((format!("{prefix}_PORT"), p.port.to_string()));
        out.push((format!("{prefix}_ADDR"), ip.clone()));
    }
}

/// An environment that could not be made: upstream shows it as CreateContainerConfigError.
#[derive(Debug)]
pub struct EnvError(pub String);

/// The container's environment, in upstream's order.
pub async fn environment(
    client: &kube::Client,
    pod: &Pod,
    c: &Container,
) -> Result<Vec<(String, String)>, EnvError> {
    let ns = pod.namespace().unwrap_or_default();
    let mut vars: Vec<(String, String)> = Vec::new();
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    // The master Service's variables always; the namespace's only with service links.
    let mut services: Vec<Service> = Vec::new();
    if let Ok(Some(k)) = Api::<Service>::namespaced(client.clone(), "default")
        .get_opt("kubernetes")
        .await
    {
        services.push(k);
    }
    if links {
        if let Ok(list) = Api::<Service>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await
        {
            services.extend(
                list.items
                    .into_iter()
                    .filter(|s| !(ns == "default" && s.name_any() == "kubernetes")),
            );
        }
    }
    for s in &services {
        service_vars(s, &mut vars);
    }
    let mut cms: BTreeMap<String, Option<ConfigMap>> = BTreeMap::new();
    let mut secrets: BTreeMap<String, Option<Secret>> = BTreeMap::new();
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match cached(client, &ns, &r.name, &mut cms).await? {
                Some(cm) => {
                    for (k, v) in cm.data.clone().unwrap_or_default() {
                        vars.push((format!("{prefix}{k}"), v));
                    }
                }
                None if r.optional.unwrap_or(false) => {}
                None => return Err(EnvError(format!("configmap {:?} not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            match cached(client, &ns, &r.name, &mut secrets).await? {
                Some(s) => {
                    for (k, v) in s.data.clone().unwrap_or_default() {
                        vars.push((format!("{prefix}{k}"), String::from_utf8_lossy(&v.0).into()));
                    }
                }
                None if r.optional.unwrap_or(false) => {}
                None => return Err(EnvError(format!("secret {:?} not found", r.name))),
            }
        }
    }
    for e in c.env.iter().flatten() {
        let known: BTreeMap<String, String> = vars.iter().cloned().collect();
        let value = if let Some(v) = &e.value {
            expand(v, &known)
        } else if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                field_value(pod, &f.field_path).map_err(EnvError)?
            } else if let Some(r) = &from.resource_field_ref {
                resource_value(c, r).map_err(EnvError)?
            } else if let Some(k) = &from.config_map_key_ref {
                let optional = k.optional.unwrap_or(false);
                match cached(client, &ns, &k.name, &mut cms).await? {
                    Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&k.key)) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError(format!(
                                "couldn't find key {} in ConfigMap {ns}/{}",
                                k.key, k.name
                            )))
                        }
                    },
                    None if optional => continue,
                    None => return Err(EnvError(format!("configmap {:?} not found", k.name))),
                }
            } else if let Some(k) = &from.secret_key_ref {
                let optional = k.optional.unwrap_or(false);
                match cached(client, &ns, &k.name, &mut secrets).await? {
                    Some(s) => match s.data.as_ref().and_then(|d| d.get(&k.key)) {
                        Some(v) => String::from_utf8_lossy(&v.0).into(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError(format!(
                                "couldn't find key {} in Secret {ns}/{}",
                                k.key, k.name
                            )))
                        }
                    },
                    None if optional => continue,
                    None => return Err(EnvError(format!("secret {:?} not found", k.name))),
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        vars.push((e.name.clone(), value));
    }
    // Later definitions win, as in upstream's map; keep the first position of each name.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in vars {
        match seen.get(&k) {
            Some(&i) => out[i].1 = v,
            None => {
                seen.insert(k.clone(), out.len());
                out.push((k, v));
            }
        }
    }
    Ok(out)
}

/// `name` of kind `K` in `ns`, fetched once per environment.
async fn cached<'a, K>(
    client: &kube::Client,
    ns: &str,
    name: &str,
    cache: &'a mut BTreeMap<String, Option<K>>,
) -> Result<&'a Option<K>, EnvError>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    if !cache.contains_key(name) {
        let got = Api::<K>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(|e| EnvError(super::api_message(&e)))?;
        cache.insert(name.to_string(), got);
    }
    Ok(cache.get(name).unwrap_or(&None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_upstream() {
        let vars: BTreeMap<String, String> =
            [("A".to_string(), "1".to_string())].into_iter().collect();
        assert_eq!(expand("x$(A)y", &vars), "x1y");
        assert_eq!(expand("$(B)", &vars), "$(B)");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("$(A", &vars), "$(A");
        assert_eq!(expand("cost $5", &vars), "cost $5");
    }

    #[test]
    fn field_paths() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "n", "labels": {"app": "web"}},
            "spec": {"containers": [], "nodeName": "node1"},
            "status": {"podIP": "10.88.0.2"}
        }))
        .unwrap();
        assert_eq!(field_value(&pod, "metadata.name").unwrap(), "p");
        assert_eq!(field_value(&pod, "metadata.labels['app']").unwrap(), "web");
        assert_eq!(field_value(&pod, "spec.nodeName").unwrap(), "node1");
        assert_eq!(field_value(&pod, "status.podIP").unwrap(), "10.88.0.2");
        assert!(field_value(&pod, "spec.nope").is_err());
    }

    #[test]
    fn resources_round_up_by_divisor() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}}
        }))
        .unwrap();
        let sel = |r: &str, d: Option<&str>| ResourceFieldSelector {
            resource: r.into(),
            divisor: d.map(|d| k8s_openapi::apimachinery::pkg::api::resource::Quantity(d.into())),
            container_name: None,
        };
        assert_eq!(resource_value(&c, &sel("limits.cpu", None)).unwrap(), "1");
        assert_eq!(
            resource_value(&c, &sel("limits.cpu", Some("1m"))).unwrap(),
            "250"
        );
        assert_eq!(
            resource_value(&c, &sel("limits.memory", Some("1Mi"))).unwrap(),
            "64"
        );
    }
}
