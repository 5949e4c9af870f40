//! Which PersistentVolume a claim gets: upstream's `findBestMatchForClaim` (pkg/controller/volume/
//! persistentvolume/index.go) over `FindMatchingVolume` (component-helpers/storage/volume/pv_helpers.go),
//! and the small helpers both sides of a binding share (a claim's and a volume's class, volumeMode,
//! access modes, whether a volume points at a claim).
//!
//! Start at [`find_best_match`]: volumes are grouped by their set of access modes; the groups that
//! hold every mode the claim asks for are tried fewest modes first (a claim for RWO prefers an RWO
//! volume to an RWO+RWX one), and within a group the smallest volume that fits wins, unless a volume
//! is pre-bound to this claim (its `claimRef` names it), which wins outright.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, NodeSelectorTerm, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;
use kube::core::{Selector, SelectorExt};
use kube::ResourceExt;

use crate::apiserver::wire::quantity::Quantity;
use crate::scheduler::plugins::node_requirement_matches;

/// The class annotation that predates `storageClassName` and still wins over it.
pub const ANN_BETA_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// The access modes in the order upstream's `GetAccessModesAsString` writes them.
const MODES: [&str; 4] = [
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];

/// Upstream's GetPersistentVolumeClaimClass: the beta annotation, else `storageClassName`, else "".
pub fn claim_class(claim: &PersistentVolumeClaim) -> &str {
    claim
        .annotations()
        .get(ANN_BETA_CLASS)
        .map(String::as_str)
        .or_else(|| claim.spec.as_ref()?.storage_class_name.as_deref())
        .unwrap_or("")
}

/// Upstream's PersistentVolumeClaimHasClass: the user asked for a class, even the empty one.
pub fn claim_has_class(claim: &PersistentVolumeClaim) -> bool {
    claim.annotations().contains_key(ANN_BETA_CLASS)
        || claim
            .spec
            .as_ref()
            .is_some_and(|s| s.storage_class_name.is_some())
}

/// Upstream's GetPersistentVolumeClass.
pub fn volume_class(volume: &PersistentVolume) -> &str {
    volume
        .annotations()
        .get(ANN_BETA_CLASS)
        .map(String::as_str)
        .or_else(|| volume.spec.as_ref()?.storage_class_name.as_deref())
        .unwrap_or("")
}

/// Upstream's CheckVolumeModeMismatches: an unset volumeMode on either side is Filesystem.
pub fn volume_mode_mismatch(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    let wanted = claim.spec.as_ref().and_then(|s| s.volume_mode.as_deref());
    let has = volume.spec.as_ref().and_then(|s| s.volume_mode.as_deref());
    wanted.unwrap_or("Filesystem") != has.unwrap_or("Filesystem")
}

fn claim_modes(claim: &PersistentVolumeClaim) -> &[String] {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or(&[])
}

fn volume_modes(volume: &PersistentVolume) -> &[String] {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or(&[])
}

/// Upstream's CheckAccessModes: the volume offers every mode the claim asks for.
pub fn access_modes_satisfied(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    let offered = volume_modes(volume);
    claim_modes(claim).iter().all(|m| offered.contains(m))
}

/// Upstream's IsVolumeBoundToClaim: the volume's claimRef names the claim (and, when it carries a
/// UID, the same UID). A claimRef without UID is an administrator's reservation (pre-binding).
pub fn is_volume_bound_to_claim(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(r) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    if r.name.as_deref() != claim.metadata.name.as_deref()
        || r.namespace.as_deref().unwrap_or("") != claim.metadata.namespace.as_deref().unwrap_or("")
    {
        return false;
    }
    let uid = r.uid.as_deref().unwrap_or("");
    uid.is_empty() || Some(uid) == claim.metadata.uid.as_deref()
}

/// A storage quantity in milli-units (missing or unparsable counts as zero, as an empty
/// resource.Quantity).
pub fn storage_milli(list: Option<&BTreeMap<String, Q>>) -> i128 {
    list.and_then(|l| l.get("storage"))
        .and_then(|q| Quantity::parse(&q.0).ok())
        .map_or(0, |q| q.milli_value())
}

/// The storage a claim requests, in milli-units.
pub fn requested(claim: &PersistentVolumeClaim) -> i128 {
    storage_milli(
        claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref()),
    )
}

/// A volume's storage capacity, in milli-units.
pub fn capacity(volume: &PersistentVolume) -> i128 {
    storage_milli(volume.spec.as_ref().and_then(|s| s.capacity.as_ref()))
}

/// Upstream's CheckNodeAffinity against a node's labels: no required terms, or one of them matches
/// (terms are ORed, a term's requirements ANDed, an empty term matches nothing; field requirements
/// see a node with labels only, as upstream's check builds one).
pub fn node_affinity_matches(volume: &PersistentVolume, labels: &BTreeMap<String, String>) -> bool {
    let Some(required) = volume
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    else {
        return true;
    };
    let fields: BTreeMap<String, String> = [("metadata.name".to_string(), String::new())].into();
    let term_ok = |t: &NodeSelectorTerm| {
        let exprs = t.match_expressions.as_deref().unwrap_or(&[]);
        let field_reqs = t.match_fields.as_deref().unwrap_or(&[]);
        (!exprs.is_empty() || !field_reqs.is_empty())
            && exprs.iter().all(|r| node_requirement_matches(r, labels))
            && field_reqs
                .iter()
                .all(|r| node_requirement_matches(r, &fields))
    };
    required.node_selector_terms.iter().any(term_ok)
}

fn key_of(claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        claim.namespace().unwrap_or_default(),
        claim.name_any()
    )
}

/// Upstream's FindMatchingVolume over one group of volumes (VolumeAttributesClass disabled, as in
/// v1.33 by default). `node` is the scheduler's path (set here only for a claim whose binding waits
/// for a consumer and that has a selected node): the volume's node affinity must match it and its
/// access modes must cover the claim's. With `delay_binding` and no node, only a volume pre-bound to
/// the claim may match.
pub fn find_matching_volume(
    claim: &PersistentVolumeClaim,
    volumes: &[Arc<PersistentVolume>],
    node: Option<&Node>,
    delay_binding: bool,
) -> Result<Option<Arc<PersistentVolume>>, String> {
    let spec = claim.spec.as_ref();
    if spec
        .and_then(|s| s.volume_attributes_class_name.as_deref())
        .is_some_and(|v| !v.is_empty())
    {
        return Err(format!(
            "unsupported volumeAttributesClassName is set on claim {} when the feature-gate VolumeAttributesClass is disabled",
            key_of(claim)
        ));
    }
    let want = requested(claim);
    let class = claim_class(claim);
    let selector = match spec.and_then(|s| s.selector.clone()) {
        None => None,
        Some(s) => Some(Selector::try_from(s).map_err(|e| {
            format!(
                "error creating internal label selector for claim: {}: {e}",
                key_of(claim)
            )
        })?),
    };
    let node_labels = node.map(|n| n.labels().clone());
    let mut smallest: Option<(&Arc<PersistentVolume>, i128)> = None;
    for volume in volumes {
        let vspec = volume.spec.as_ref();
        if vspec.and_then(|s| s.claim_ref.as_ref()).is_some()
            && !is_volume_bound_to_claim(volume, claim)
        {
            continue;
        }
        let size = capacity(volume);
        if size < want || volume_mode_mismatch(claim, volume) {
            continue;
        }
        if vspec
            .and_then(|s| s.volume_attributes_class_name.as_deref())
            .is_some_and(|v| !v.is_empty())
        {
            continue;
        }
        if volume.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let affinity_ok = node_labels
            .as_ref()
            .is_none_or(|l| node_affinity_matches(volume, l));
        if is_volume_bound_to_claim(volume, claim) {
            // A volume reserved for this claim wins outright, unless it cannot serve the node.
            return Ok(affinity_ok.then(|| volume.clone()));
        }
        if node.is_none() && delay_binding {
            continue;
        }
        let available =
            volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Available");
        if !available
            || selector
                .as_ref()
                .is_some_and(|s| !s.matches(volume.labels()))
            || volume_class(volume) != class
            || !affinity_ok
            || (node.is_some() && !access_modes_satisfied(claim, volume))
        {
            continue;
        }
        if smallest.is_none_or(|(_, s)| s > size) {
            smallest = Some((volume, size));
        }
    }
    Ok(smallest.map(|(v, _)| v.clone()))
}

/// The set of known access modes a volume offers (upstream's index key, GetAccessModesAsString).
fn mode_set(modes: &[String]) -> Vec<&'static str> {
    MODES
        .iter()
        .copied()
        .filter(|m| modes.iter().any(|x| x == m))
        .collect()
}

/// Upstream's findBestMatchForClaim: the index's access-mode groups that contain every mode the claim
/// asks for, fewest modes first, each searched with [`find_matching_volume`]; the first match wins.
/// Volumes are taken in name order so that equal sizes pick the same volume every time.
pub fn find_best_match(
    claim: &PersistentVolumeClaim,
    volumes: &[Arc<PersistentVolume>],
    node: Option<&Node>,
    delay_binding: bool,
) -> Result<Option<Arc<PersistentVolume>>, String> {
    let mut sorted: Vec<Arc<PersistentVolume>> = volumes.to_vec();
    sorted.sort_by_key(|v| v.name_any());
    let mut groups: BTreeMap<Vec<&'static str>, Vec<Arc<PersistentVolume>>> = BTreeMap::new();
    for v in sorted {
        groups
            .entry(mode_set(volume_modes(&v)))
            .or_default()
            .push(v);
    }
    let wanted: BTreeSet<&String> = claim_modes(claim).iter().collect();
    let mut candidates: Vec<(&Vec<&'static str>, &Vec<Arc<PersistentVolume>>)> = groups
        .iter()
        .filter(|(modes, _)| wanted.iter().all(|w| modes.contains(&w.as_str())))
        .collect();
    candidates.sort_by_key(|(modes, _)| modes.len());
    for (_, group) in candidates {
        if let Some(v) = find_matching_volume(claim, group, node, delay_binding)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Upstream's checkVolumeSatisfyClaim, for a claim that names its volume: the error says why not.
pub fn check_volume_satisfies_claim(
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> Result<(), String> {
    if volume.metadata.deletion_timestamp.is_some() {
        return Err(format!(
            "the volume is marked for deletion {:?}",
            volume.name_any()
        ));
    }
    // Upstream compares whole units (Quantity.Value rounds up).
    let whole = |m: i128| m.div_euclid(1000) + i128::from(m.rem_euclid(1000) != 0);
    if whole(capacity(volume)) < whole(requested(claim)) {
        return Err("requested PV is too small".into());
    }
    if volume_class(volume) != claim_class(claim) {
        return Err("storageClassName does not match".into());
    }
    if volume_mode_mismatch(claim, volume) {
        return Err("incompatible volumeMode".into());
    }
    if !access_modes_satisfied(claim, volume) {
        return Err("incompatible accessMode".into());
    }
    Ok(())
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        NodeSelector, NodeSelectorRequirement, ObjectReference, PersistentVolumeClaimSpec,
        PersistentVolumeSpec, PersistentVolumeStatus, VolumeNodeAffinity,
        VolumeResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    pub fn pv(name: &str, size: &str, modes: &[&str]) -> PersistentVolume {
        PersistentVolume {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                capacity: Some([("storage".to_string(), Q(size.into()))].into()),
                access_modes: Some(modes.iter().map(|m| m.to_string()).collect()),
                volume_mode: Some("Filesystem".into()),
                persistent_volume_reclaim_policy: Some("Retain".into()),
                ..Default::default()
            }),
            status: Some(PersistentVolumeStatus {
                phase: Some("Available".into()),
                ..Default::default()
            }),
        }
    }

    pub fn pvc(name: &str, size: &str, modes: &[&str]) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(modes.iter().map(|m| m.to_string()).collect()),
                resources: Some(VolumeResourceRequirements {
                    requests: Some([("storage".to_string(), Q(size.into()))].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn best(claim: &PersistentVolumeClaim, vols: Vec<PersistentVolume>) -> Option<String> {
        let vols: Vec<Arc<PersistentVolume>> = vols.into_iter().map(Arc::new).collect();
        find_best_match(claim, &vols, None, false)
            .expect("no error")
            .map(|v| v.name_any())
    }

    const RWO: &[&str] = &["ReadWriteOnce"];

    #[test]
    fn smallest_volume_that_fits_wins() {
        let vols = vec![
            pv("ten", "10Gi", RWO),
            pv("one", "1Gi", RWO),
            pv("five", "5Gi", RWO),
        ];
        assert_eq!(
            best(&pvc("c", "3Gi", RWO), vols.clone()),
            Some("five".into())
        );
        assert_eq!(
            best(&pvc("c", "1Gi", RWO), vols.clone()),
            Some("one".into())
        );
        assert_eq!(best(&pvc("c", "50Gi", RWO), vols), None);
        // Units differ, sizes compare: 1500Mi fits in 2G (2e9 > 1.57e9) but not in 1Gi.
        let vols = vec![pv("a", "1Gi", RWO), pv("b", "2G", RWO)];
        assert_eq!(best(&pvc("c", "1500Mi", RWO), vols), Some("b".into()));
    }

    #[test]
    fn storage_class_must_be_equal() {
        let mut gold = pv("gold", "5Gi", RWO);
        gold.spec.as_mut().expect("spec").storage_class_name = Some("gold".into());
        let plain = pv("plain", "10Gi", RWO);
        // No class on the claim: only volumes without a class.
        assert_eq!(
            best(&pvc("c", "1Gi", RWO), vec![gold.clone(), plain.clone()]),
            Some("plain".into())
        );
        let mut claim = pvc("c", "1Gi", RWO);
        claim.spec.as_mut().expect("spec").storage_class_name = Some("gold".into());
        assert_eq!(
            best(&claim, vec![gold.clone(), plain.clone()]),
            Some("gold".into())
        );
        // The beta annotation wins over the field.
        claim.metadata.annotations = Some([(ANN_BETA_CLASS.to_string(), String::new())].into());
        assert_eq!(best(&claim, vec![gold, plain]), Some("plain".into()));
    }

    #[test]
    fn access_modes_must_be_a_superset_and_fewest_modes_first() {
        let rwx = pv("rwx", "1Gi", &["ReadWriteOnce", "ReadWriteMany"]);
        let rwo = pv("rwo", "10Gi", RWO);
        // An RWO claim prefers the RWO-only group even though its volume is larger.
        assert_eq!(
            best(&pvc("c", "1Gi", RWO), vec![rwx.clone(), rwo.clone()]),
            Some("rwo".into())
        );
        assert_eq!(
            best(
                &pvc("c", "1Gi", &["ReadWriteMany"]),
                vec![rwx.clone(), rwo.clone()]
            ),
            Some("rwx".into())
        );
        assert_eq!(
            best(&pvc("c", "1Gi", &["ReadOnlyMany"]), vec![rwx, rwo]),
            None
        );
    }

    #[test]
    fn selector_must_match_labels() {
        let mut fast = pv("fast", "10Gi", RWO);
        fast.metadata.labels = Some([("tier".to_string(), "fast".to_string())].into());
        let small = pv("small", "1Gi", RWO);
        let mut claim = pvc("c", "1Gi", RWO);
        claim.spec.as_mut().expect("spec").selector = Some(LabelSelector {
            match_labels: Some([("tier".to_string(), "fast".to_string())].into()),
            ..Default::default()
        });
        assert_eq!(best(&claim, vec![fast, small.clone()]), Some("fast".into()));
        assert_eq!(best(&claim, vec![small]), None);
    }

    #[test]
    fn volume_mode_must_be_equal_filesystem_by_default() {
        let mut block = pv("block", "1Gi", RWO);
        block.spec.as_mut().expect("spec").volume_mode = Some("Block".into());
        let mut unset = pv("unset", "5Gi", RWO);
        unset.spec.as_mut().expect("spec").volume_mode = None;
        assert_eq!(
            best(&pvc("c", "1Gi", RWO), vec![block.clone(), unset.clone()]),
            Some("unset".into())
        );
        let mut claim = pvc("c", "1Gi", RWO);
        claim.spec.as_mut().expect("spec").volume_mode = Some("Block".into());
        assert_eq!(best(&claim, vec![block, unset]), Some("block".into()));
    }

    #[test]
    fn prebound_volume_wins_and_others_claims_are_skipped() {
        let claim = pvc("c", "1Gi", RWO);
        let mut reserved = pv("reserved", "100Gi", RWO);
        reserved.spec.as_mut().expect("spec").claim_ref = Some(ObjectReference {
            name: Some("c".into()),
            namespace: Some("ns".into()),
            ..Default::default()
        });
        // Pre-bound volumes match even while not Available.
        reserved.status = None;
        let mut taken = pv("taken", "1Gi", RWO);
        taken.spec.as_mut().expect("spec").claim_ref = Some(ObjectReference {
            name: Some("other".into()),
            namespace: Some("ns".into()),
            uid: Some("uid-other".into()),
            ..Default::default()
        });
        let free = pv("free", "2Gi", RWO);
        assert_eq!(
            best(&claim, vec![reserved.clone(), taken.clone(), free.clone()]),
            Some("reserved".into())
        );
        assert_eq!(best(&claim, vec![taken, free]), Some("free".into()));
        // A claimRef with another UID is another claim of the same name.
        let mut stale = pv("stale", "1Gi", RWO);
        stale.spec.as_mut().expect("spec").claim_ref = Some(ObjectReference {
            name: Some("c".into()),
            namespace: Some("ns".into()),
            uid: Some("gone".into()),
            ..Default::default()
        });
        assert_eq!(best(&claim, vec![stale]), None);
    }

    #[test]
    fn only_available_volumes_not_being_deleted() {
        let mut pending = pv("pending", "1Gi", RWO);
        pending.status.as_mut().expect("status").phase = Some("Pending".into());
        let mut released = pv("released", "1Gi", RWO);
        released.status.as_mut().expect("status").phase = Some("Released".into());
        let mut deleting = pv("deleting", "1Gi", RWO);
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        assert_eq!(
            best(&pvc("c", "1Gi", RWO), vec![pending, released, deleting]),
            None
        );
    }

    #[test]
    fn delayed_binding_matches_only_prebound_without_node_and_follows_node_affinity() {
        let claim = pvc("c", "1Gi", RWO);
        let mut local = pv("local", "1Gi", RWO);
        local.spec.as_mut().expect("spec").node_affinity = Some(VolumeNodeAffinity {
            required: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: "kubernetes.io/hostname".into(),
                        operator: "In".into(),
                        values: Some(vec!["n1".into()]),
                    }]),
                    match_fields: None,
                }],
            }),
        });
        let vols = vec![Arc::new(local)];
        assert!(find_best_match(&claim, &vols, None, true)
            .expect("ok")
            .is_none());
        let node = |name: &str| Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([("kubernetes.io/hostname".to_string(), name.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let n1 = node("n1");
        let n2 = node("n2");
        assert!(find_best_match(&claim, &vols, Some(&n1), true)
            .expect("ok")
            .is_some());
        assert!(find_best_match(&claim, &vols, Some(&n2), true)
            .expect("ok")
            .is_none());
    }

    #[test]
    fn a_named_volume_is_checked_with_upstreams_reasons() {
        let claim = pvc("c", "2Gi", RWO);
        assert_eq!(
            check_volume_satisfies_claim(&pv("v", "1Gi", RWO), &claim),
            Err("requested PV is too small".into())
        );
        assert_eq!(
            check_volume_satisfies_claim(&pv("v", "2Gi", &["ReadOnlyMany"]), &claim),
            Err("incompatible accessMode".into())
        );
        let mut gold = pv("v", "2Gi", RWO);
        gold.spec.as_mut().expect("spec").storage_class_name = Some("gold".into());
        assert_eq!(
            check_volume_satisfies_claim(&gold, &claim),
            Err("storageClassName does not match".into())
        );
        assert_eq!(
            check_volume_satisfies_claim(&pv("v", "2Gi", RWO), &claim),
            Ok(())
        );
    }
}
