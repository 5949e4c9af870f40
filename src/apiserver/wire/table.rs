//! Server-side Table output (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`).
//!
//! This module reproduces what upstream's kube-apiserver prints for every
//! built-in resource (the behaviour of `pkg/printers/internalversion`, the
//! kube-aggregator's APIService convertor and apiserver's default table
//! convertor): the column definitions (name, type, format, description and
//! priority, where priority 1 marks the `-o wide` columns) and the cells of
//! one row per object.
//!
//! Upstream's server always generates the wide form (kubectl drops the
//! priority-1 columns itself), so [`row_cells`] always returns every cell.
//! Objects are plain JSON (`serde_json::Value`): any field may be missing or
//! of the wrong shape, in which case the cell falls back to the value
//! upstream would print for the Go zero value.
//!
//! Resources without a printer (roles, clusterroles, limitranges,
//! customresourcedefinitions, csistoragecapacities and anything unknown) get
//! upstream's default table: `Name` and `Created At` (type `date`, RFC 3339).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};

// Column descriptions. Upstream takes most of them from the generated
// swagger docs of the API types (`SwaggerDoc()`); these are the same texts.
pub const META_NAME: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
pub const META_CREATION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const POD_IP: &str = "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.";
const POD_NODE_NAME: &str = "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename";
const POD_NOMINATED: &str = "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.";
const POD_READINESS_GATES: &str = "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates";
const POD_NODE_SELECTOR: &str = "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/";
const RC_SPEC_REPLICAS: &str = "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller";
const RC_SPEC_SELECTOR: &str = "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const RC_STATUS_REPLICAS: &str = "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller";
const RC_STATUS_READY: &str = "The number of ready replicas for this replication controller.";
const RS_SPEC_REPLICAS: &str = "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset";
const RS_SPEC_SELECTOR: &str = "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const RS_STATUS_REPLICAS: &str = "Replicas is the most recently observed number of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset";
const RS_STATUS_READY: &str =
    "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.";
const DS_DESIRED: &str = "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
const DS_CURRENT: &str = "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
const DS_READY: &str = "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.";
const DS_UPDATED: &str = "The total number of nodes that are running updated daemon pod";
const DS_AVAILABLE: &str = "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)";
const DS_SELECTOR: &str = "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const JOB_SUCCEEDED: &str = "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.";
const JOB_SELECTOR: &str = "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const CJ_SCHEDULE: &str = "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.";
const CJ_TIMEZONE: &str = "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones";
const CJ_SUSPEND: &str = "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.";
const CJ_ACTIVE: &str = "A list of pointers to currently running jobs.";
const CJ_LAST_SCHEDULE: &str =
    "Information when was the last time the job was successfully scheduled.";
const SVC_TYPE: &str = "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types";
const SVC_CLUSTER_IP: &str = "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
const SVC_EXTERNAL_IPS: &str = "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.";
const SVC_PORTS: &str = "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
const SVC_SELECTOR: &str = "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/";
const EP_SUBSETS: &str = "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.";
const NODE_KUBELET: &str = "Kubelet Version reported by the node.";
const NODE_OS_IMAGE: &str =
    "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).";
const NODE_KERNEL: &str =
    "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).";
const NODE_CRI: &str = "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).";
const NODE_ADDRESSES: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";
const EV_LAST: &str = "The time at which the most recent occurrence of this event was recorded.";
const EV_FIRST: &str =
    "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)";
const EV_COUNT: &str = "The number of times this event has occurred.";
const EV_TYPE: &str =
    "Type of this event (Normal, Warning), new types could be added in the future";
const EV_REASON: &str = "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.";
const EV_INVOLVED: &str = "The object that this event is about.";
const EV_SOURCE: &str =
    "The component reporting this event. Should be a short machine understandable string.";
const EV_MESSAGE: &str = "A human-readable description of the status of this operation.";
const OBJREF_FIELD_PATH: &str = "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.";
const SECRET_TYPE: &str = "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types";
const SECRET_DATA: &str = "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4";
const SA_SECRETS: &str = "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret";
const CM_DATA: &str = "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.";
const PV_CAPACITY: &str = "capacity is the description of the persistent volume's resources and capacity. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity";
const PV_ACCESS: &str = "accessModes contains all ways the volume can be mounted. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes";
const PV_RECLAIM: &str = "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim. Valid options are Retain (default for manually created PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), and Recycle (deprecated). Recycle must be supported by the volume plugin underlying this PersistentVolume. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming";
const PV_CLAIM: &str = "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the authoritative bind between PV and PVC. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding";
const PV_MODE: &str = "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state. Value of Filesystem is implied when not included in spec.";
const PV_PHASE: &str = "phase indicates if a volume is available, bound to a claim, or released by a claim. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase";
const PV_REASON: &str = "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.";
const PVC_PHASE: &str = "phase represents the current phase of PersistentVolumeClaim.";
const PVC_CAPACITY: &str = "capacity represents the actual resources of the underlying volume.";
const PVC_ACCESS: &str = "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1";
const PVC_VOLUME: &str =
    "volumeName is the binding reference to the PersistentVolume backing this claim.";
const PVC_MODE: &str = "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.";
const DEP_UPDATED: &str = "Total number of non-terminating pods targeted by this deployment that have the desired template spec.";
const DEP_AVAILABLE: &str = "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.";
const DEP_SELECTOR: &str = "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.";
const HPA_REF: &str = "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count.";
const HPA_METRICS: &str = "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).  The desired replica count is calculated multiplying the ratio between the target value and the current value by the current number of pods.  Ergo, metrics used must decrease as the pod count is increased, and vice-versa.  See the individual metric source types for more information about how each type of metric must respond. If not set, the default metric will be set to 80% average CPU utilization.";
const HPA_MIN: &str = "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature gate HPAScaleToZero is enabled and at least one Object or External metric is configured.  Scaling is active as long as at least one metric value is available.";
const HPA_MAX: &str = "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up. It cannot be less that minReplicas.";
const HPA_CURRENT: &str = "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler.";
const NP_POD_SELECTOR: &str = "podSelector selects the pods to which this NetworkPolicy object applies. The array of ingress rules is applied to any pods selected by this field. Multiple network policies can select the same set of pods. In this case, the ingress rules for each are combined additively. This field is NOT optional and follows standard label selector semantics. An empty podSelector matches all pods in this namespace.";
const RB_ROLE_REF: &str = "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.";
const CRB_ROLE_REF: &str = "RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.";
const CSR_SIGNER: &str = "signerName indicates the requested signer, and is a qualified name.\n\nList/watch requests for CertificateSigningRequests can filter on this field using a \"spec.signerName=NAME\" fieldSelector.\n\nWell-known Kubernetes signers are:\n 1. \"kubernetes.io/kube-apiserver-client\": issues client certificates that can be used to authenticate to kube-apiserver.\n  Requests for this signer are never auto-approved by kube-controller-manager, can be issued by the \"csrsigning\" controller in kube-controller-manager.\n 2. \"kubernetes.io/kube-apiserver-client-kubelet\": issues client certificates that kubelets use to authenticate to kube-apiserver.\n  Requests for this signer can be auto-approved by the \"csrapproving\" controller in kube-controller-manager, and can be issued by the \"csrsigning\" controller in kube-controller-manager.\n 3. \"kubernetes.io/kubelet-serving\" issues serving certificates that kubelets use to serve TLS endpoints, which kube-apiserver can connect to securely.\n  Requests for this signer are never auto-approved by kube-controller-manager, and can be issued by the \"csrsigning\" controller in kube-controller-manager.\n\nMore details are available at https://k8s.io/docs/reference/access-authn-authz/certificate-signing-requests/#kubernetes-signers\n\nCustom signerNames can also be specified. The signer defines:\n 1. Trust distribution: how trust (CA bundles) are distributed.\n 2. Permitted subjects: and behavior when a disallowed subject is requested.\n 3. Required, permitted, or forbidden x509 extensions in the request (including whether subjectAltNames are allowed, which types, restrictions on allowed values) and behavior when a disallowed extension is requested.\n 4. Required, permitted, or forbidden key usages / extended key usages.\n 5. Expiration/certificate lifetime: whether it is fixed by the signer, configurable by the admin.\n 6. Whether or not requests for CA certificates are allowed.";
const CSR_REQUEST: &str = "request contains an x509 certificate signing request encoded in a \"CERTIFICATE REQUEST\" PEM block. When serialized as JSON or YAML, the data is additionally base64-encoded.";
const CSR_EXPIRATION: &str = "expirationSeconds is the requested duration of validity of the issued certificate. The certificate signer may issue a certificate with a different validity duration so a client must check the delta between the notBefore and and notAfter fields in the issued certificate to determine the actual duration.\n\nThe v1.22+ in-tree implementations of the well-known Kubernetes signers will honor this field as long as the requested duration is not greater than the maximum duration they will honor per the --cluster-signing-duration CLI flag to the Kubernetes controller manager.\n\nCertificate signers may not honor this field for various reasons:\n\n  1. Old signer that is unaware of the field (such as the in-tree\n     implementations prior to v1.22)\n  2. Signer whose configured maximum is shorter than the requested duration\n  3. Signer whose configured minimum is longer than the requested duration\n\nThe minimum valid value for expirationSeconds is 600, i.e. 10 minutes.";
const CSR_CONDITIONS: &str = "conditions applied to the request. Known conditions are \"Approved\", \"Denied\", and \"Failed\".";
const CTB_SIGNER: &str = "signerName indicates the associated signer, if any.\n\nIn order to create or update a ClusterTrustBundle that sets signerName, you must have the following cluster-scoped permission: group=certificates.k8s.io resource=signers resourceName=<the signer name> verb=attest.\n\nIf signerName is not empty, then the ClusterTrustBundle object must be named with the signer name as a prefix (translating slashes to colons). For example, for the signer name `example.com/foo`, valid ClusterTrustBundle object names include `example.com:foo:abc` and `example.com:foo:v1`.\n\nIf signerName is empty, then the ClusterTrustBundle object's name must not have such a prefix.\n\nList/watch requests for ClusterTrustBundles can filter on this field using a `spec.signerName=NAME` field selector.";
const LEASE_HOLDER: &str = "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.";
const LC_LEASE_NAME: &str = "LeaseName is the name of the lease for which this candidate is contending. This field is immutable.";
const SC_PROVISIONER: &str = "provisioner indicates the type of the provisioner.";
const SC_RECLAIM: &str = "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete.";
const SC_BINDING: &str = "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling feature.";
const SC_EXPANSION: &str =
    "allowVolumeExpansion shows whether the storage class allow volume expand.";
const VAC_DRIVER: &str = "Name of the CSI driver This field is immutable.";
const CR_REVISION: &str = "Revision indicates the revision of the state represented by Data.";
const PC_VALUE: &str = "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec.";
const PC_GLOBAL: &str = "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority.";
const PC_PREEMPTION: &str = "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset.";
const VA_ATTACHER: &str = "attacher indicates the name of the volume driver that MUST handle this request. This is the name returned by GetPluginName().";
const VA_PV: &str = "persistentVolumeName represents the name of the persistent volume to attach.";
const VA_NODE: &str = "nodeName represents the node that the volume should be attached to.";
const VA_ATTACHED: &str = "attached indicates the volume is successfully attached. This field must only be set by the entity completing the attach operation, i.e. the external-attacher.";
const ES_ADDRESS_TYPE: &str = "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name. (Deprecated) The EndpointSlice controller only generates, and kube-proxy only processes, slices of addressType \"IPv4\" and \"IPv6\". No semantics are defined for the \"FQDN\" type.";
const ES_PORTS: &str = "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. Each slice may include a maximum of 100 ports. Services always have at least 1 port, so EndpointSlices generated by the EndpointSlice controller will likewise always have at least 1 port. EndpointSlices used for other purposes may have an empty ports list.";
const ES_ENDPOINTS: &str = "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.";
const CSID_ATTACH: &str = "attachRequired indicates this CSI volume driver requires an attach operation (because it implements the CSI ControllerPublishVolume() method), and that the Kubernetes attach detach controller should call the attach volume interface which checks the volumeattachment status and waits until the volume is attached before proceeding to mounting. The CSI external-attacher coordinates with CSI volume driver and updates the volumeattachment status when the attach operation is complete. If the CSIDriverRegistry feature gate is enabled and the value is specified to false, the attach operation will be skipped. Otherwise the attach operation will be called.\n\nThis field is immutable.";
const CSID_PODINFO: &str = "podInfoOnMount indicates this CSI volume driver requires additional pod information (like podName, podUID, etc.) during mount operations, if set to true. If set to false, pod information will not be passed on mount. Default is false.\n\nThe CSI driver specifies podInfoOnMount as part of driver deployment. If true, Kubelet will pass pod information as VolumeContext in the CSI NodePublishVolume() calls. The CSI driver is responsible for parsing and validating the information passed in as VolumeContext.\n\nThe following VolumeContext will be passed if podInfoOnMount is set to true. This list might grow, but the prefix will be used. \"csi.storage.k8s.io/pod.name\": pod.Name \"csi.storage.k8s.io/pod.namespace\": pod.Namespace \"csi.storage.k8s.io/pod.uid\": string(pod.UID) \"csi.storage.k8s.io/ephemeral\": \"true\" if the volume is an ephemeral inline volume\n                                defined by a CSIVolumeSource, otherwise \"false\"\n\n\"csi.storage.k8s.io/ephemeral\" is a new feature in Kubernetes 1.16. It is only required for drivers which support both the \"Persistent\" and \"Ephemeral\" VolumeLifecycleMode. Other drivers can leave pod info disabled and/or ignore this field. As Kubernetes 1.15 doesn't support this field, drivers can only support one mode when deployed on such a cluster and the deployment determines which mode that is, for example via a command line parameter of the driver.\n\nThis field was immutable in Kubernetes < 1.29 and now is mutable.";
const CSID_CAPACITY: &str = "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider the storage capacity that the driver deployment will report by creating CSIStorageCapacity objects with capacity information, if set to true.\n\nThe check can be enabled immediately when deploying a driver. In that case, provisioning new volumes with late binding will pause until the driver deployment has published some suitable CSIStorageCapacity object.\n\nAlternatively, the driver can be deployed with the field unset or false and it can be flipped later when storage capacity information has been published.\n\nThis field was immutable in Kubernetes <= 1.22 and now is mutable.";
const CSID_TOKENS: &str = "tokenRequests indicates the CSI driver needs pods' service account tokens it is mounting volume for to do necessary authentication. Kubelet will pass the tokens in VolumeContext in the CSI NodePublishVolume calls. The CSI driver should parse and validate the following VolumeContext: \"csi.storage.k8s.io/serviceAccount.tokens\": {\n  \"<audience>\": {\n    \"token\": <token>,\n    \"expirationTimestamp\": <expiration timestamp in RFC3339>,\n  },\n  ...\n}\n\nNote: Audience in each TokenRequest should be different and at most one token is empty string. To receive a new token after expiry, RequiresRepublish can be used to trigger NodePublishVolume periodically.";
const CSID_REPUBLISH: &str = "requiresRepublish indicates the CSI driver wants `NodePublishVolume` being periodically called to reflect any possible change in the mounted volume. This field defaults to false.\n\nNote: After a successful initial NodePublishVolume call, subsequent calls to NodePublishVolume should only update the contents of the volume. New mount points will not be seen by a running container.";
const CSID_MODES: &str = "volumeLifecycleModes defines what kind of volumes this CSI volume driver supports. The default if the list is empty is \"Persistent\", which is the usage defined by the CSI specification and implemented in Kubernetes via the usual PV/PVC mechanism.\n\nThe other mode is \"Ephemeral\". In this mode, volumes are defined inline inside the pod spec with CSIVolumeSource and their lifecycle is tied to the lifecycle of that pod. A driver has to be aware of this because it is only going to get a NodePublishVolume call for such a volume.\n\nFor more information about implementing this mode, see https://kubernetes-csi.github.io/docs/ephemeral-local-volumes.html A driver can support one or more of these modes and more modes may be added in the future.\n\nThis field is beta. This field is immutable.";
const FS_PL: &str =
    "`name` is the name of the priority level configuration being referenced Required.";
const FS_PRECEDENCE: &str = "`matchingPrecedence` is used to choose among the FlowSchemas that match a given request. The chosen FlowSchema is among those with the numerically lowest (which we take to be logically highest) MatchingPrecedence.  Each MatchingPrecedence value must be ranged in [1,10000]. Note that if the precedence is not specified, it will be set to 1000 as default.";
const FS_DISTINGUISHER: &str = "`distinguisherMethod` defines how to compute the flow distinguisher for requests that match this schema. `nil` specifies that the distinguisher is disabled and thus will always be the empty string.";
const PLC_TYPE: &str = "`type` indicates whether this priority level is subject to limitation on request execution.  A value of `\"Exempt\"` means that requests of this priority level are not subject to a limit (and thus are never queued) and do not detract from the capacity made available to other priority levels.  A value of `\"Limited\"` means that (a) requests of this priority level _are_ subject to limits and (b) some of the server's limited capacity is made available exclusively to this priority level. Required.";
const PLC_NCS: &str = "`nominalConcurrencyShares` (NCS) contributes to the computation of the NominalConcurrencyLimit (NominalCL) of this level. This is the number of execution seats available at this priority level. This is used both for requests dispatched from this priority level as well as requests dispatched from other priority levels borrowing seats from this level. The server's concurrency limit (ServerCL) is divided among the Limited priority levels in proportion to their NCS values:\n\nNominalCL(i)  = ceil( ServerCL * NCS(i) / sum_ncs ) sum_ncs = sum[priority level k] NCS(k)\n\nBigger numbers mean a larger nominal concurrency limit, at the expense of every other priority level.\n\nIf not specified, this field defaults to a value of 30.\n\nSetting this field to zero supports the construction of a \"jail\" for this priority level that is used to hold some request(s)";
const PLC_QUEUES: &str = "`queues` is the number of queues for this priority level. The queues exist independently at each apiserver. The value must be positive.  Setting it to 1 effectively precludes shufflesharding and thus makes the distinguisher method of associated flow schemas irrelevant.  This field has a default value of 64.";
const PLC_HANDSIZE: &str = "`handSize` is a small positive number that configures the shuffle sharding of requests into queues.  When enqueuing a request at this priority level the request's flow identifier (a string pair) is hashed and the hash value is used to shuffle the list of queues and deal a hand of the size specified here.  The request is put into one of the shortest queues in that hand. `handSize` must be no larger than `queues`, and should be significantly smaller (so that a few heavy flows do not saturate most of the queues).  See the user-facing documentation for more extensive guidance on setting this field.  This field has a default value of 8.";
const PLC_QLL: &str = "`queueLengthLimit` is the maximum number of requests allowed to be waiting in a given queue of this priority level at a time; excess requests are rejected.  This value must be positive.  If not specified, it will be defaulted to 50.";
const SV_COMMON: &str = "If all API server instances agree on the same encoding storage version, then this field is set to that version. Otherwise this field is left empty. API servers should finish updating its storageVersionStatus entry before serving write operations, so that this field will be in sync with the reality.";
const SV_VERSIONS: &str = "The reported versions per API server instance.";
const RSL_NODE: &str = "NodeName identifies the node which provides the resources in this pool. A field selector can be used to list only ResourceSlice objects belonging to a certain node.\n\nThis field can be used to limit access from nodes to ResourceSlices with the same node name. It also indicates to autoscalers that adding new nodes of the same type as some old node might also make new resources available.\n\nExactly one of NodeName, NodeSelector, AllNodes, and PerDeviceNodeSelection must be set. This field is immutable.";
const RSL_DRIVER: &str = "Driver identifies the DRA driver providing the capacity information. A field selector can be used to list only ResourceSlice objects with a certain driver name.\n\nMust be a DNS subdomain and should end with a DNS domain owned by the vendor of the driver. This field is immutable.";
const RSL_POOL: &str = "Name is used to identify the pool. For node-local devices, this is often the node name, but this is not required.\n\nIt must not be longer than 253 characters and must consist of one or more DNS sub-domains separated by slashes. This field is immutable.";
const SCIDR_CIDRS: &str = "CIDRs defines the IP blocks in CIDR notation (e.g. \"192.168.0.0/24\" or \"2001:db8::/64\") from which to assign service cluster IPs. Max of two CIDRs is allowed, one of each IP family. This field is immutable.";
const IPA_PARENT: &str = "ParentRef references the resource that an IPAddress is attached to. An IPAddress must reference a parent object.";

const CONTAINERS_DESC: &str = "Names of each container in the template.";
const IMAGES_DESC: &str = "Images referenced by each container in the template.";

/// The printers upstream has; resources are mapped onto one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Printer {
    Pod,
    PodTemplate,
    PodDisruptionBudget,
    ReplicationController,
    ReplicaSet,
    DaemonSet,
    Job,
    CronJob,
    Service,
    Ingress,
    IngressClass,
    StatefulSet,
    Endpoints,
    Node,
    Event,
    Namespace,
    Secret,
    ServiceAccount,
    PersistentVolume,
    PersistentVolumeClaim,
    ComponentStatus,
    Deployment,
    HorizontalPodAutoscaler,
    ConfigMap,
    NetworkPolicy,
    RoleBinding,
    ClusterRoleBinding,
    CertificateSigningRequest,
    ClusterTrustBundle,
    Lease,
    LeaseCandidate,
    StorageClass,
    VolumeAttributesClass,
    ControllerRevision,
    ResourceQuota,
    PriorityClass,
    RuntimeClass,
    VolumeAttachment,
    EndpointSlice,
    CsiNode,
    CsiDriver,
    MutatingWebhook,
    ValidatingWebhook,
    ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding,
    MutatingAdmissionPolicy,
    MutatingAdmissionPolicyBinding,
    FlowSchema,
    PriorityLevelConfiguration,
    StorageVersion,
    DeviceClass,
    ResourceClaim,
    ResourceClaimTemplate,
    ResourceSlice,
    ServiceCidr,
    IpAddress,
    StorageVersionMigration,
    ApiService,
    /// metrics-server's NodeMetrics and PodMetrics: Name, cpu, memory, Window.
    ResourceMetrics,
    /// apiserver's `rest.NewDefaultTableConvertor`: Name, Created At.
    Default,
}

fn col(name: &str, ty: &str, format: &str, description: &str, priority: i32) -> Value {
    json!({
        "name": name,
        "type": ty,
        "format": format,
        "description": description,
        "priority": priority,
    })
}

fn name_col() -> Value {
    col("Name", "string", "name", META_NAME, 0)
}

fn age_col() -> Value {
    col("Age", "string", "", META_CREATION, 0)
}

fn s(name: &str, desc: &str) -> Value {
    col(name, "string", "", desc, 0)
}

fn wide(name: &str, desc: &str) -> Value {
    col(name, "string", "", desc, 1)
}

fn int(name: &str, desc: &str) -> Value {
    col(name, "integer", "", desc, 0)
}

fn boolean(name: &str, desc: &str) -> Value {
    col(name, "boolean", "", desc, 0)
}

/// Column definitions (metav1.TableColumnDefinition as JSON: name, type, format, description, priority) for a resource.
pub fn column_definitions(printer: Printer) -> Vec<Value> {
    use Printer::*;
    match printer {
        Pod => vec![
            name_col(),
            s("Ready", "The aggregate readiness state of this pod for accepting traffic."),
            s("Status", "The aggregate status of the containers in this pod."),
            s("Restarts", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            age_col(),
            wide("IP", POD_IP),
            wide("Node", POD_NODE_NAME),
            wide("Nominated Node", POD_NOMINATED),
            wide("Readiness Gates", POD_READINESS_GATES),
        ],
        PodTemplate => vec![
            name_col(),
            s("Containers", CONTAINERS_DESC),
            s("Images", IMAGES_DESC),
            s("Pod Labels", "The labels for the pod template."),
        ],
        PodDisruptionBudget => vec![
            name_col(),
            s("Min Available", "The minimum number of pods that must be available."),
            s("Max Unavailable", "The maximum number of pods that may be unavailable."),
            int("Allowed Disruptions", "Calculated number of pods that may be disrupted at this time."),
            age_col(),
        ],
        ReplicationController => vec![
            name_col(),
            int("Desired", RC_SPEC_REPLICAS),
            int("Current", RC_STATUS_REPLICAS),
            int("Ready", RC_STATUS_READY),
            age_col(),
            wide("Containers", CONTAINERS_DESC),
            wide("Images", IMAGES_DESC),
            wide("Selector", RC_SPEC_SELECTOR),
        ],
        ReplicaSet => vec![
            name_col(),
            int("Desired", RS_SPEC_REPLICAS),
            int("Current", RS_STATUS_REPLICAS),
            int("Ready", RS_STATUS_READY),
            age_col(),
            wide("Containers", CONTAINERS_DESC),
            wide("Images", IMAGES_DESC),
            wide("Selector", RS_SPEC_SELECTOR),
        ],
        DaemonSet => vec![
            name_col(),
            int("Desired", DS_DESIRED),
            int("Current", DS_CURRENT),
            int("Ready", DS_READY),
            int("Up-to-date", DS_UPDATED),
            int("Available", DS_AVAILABLE),
            s("Node Selector", POD_NODE_SELECTOR),
            age_col(),
            wide("Containers", CONTAINERS_DESC),
            wide("Images", IMAGES_DESC),
            wide("Selector", DS_SELECTOR),
        ],
        Job => vec![
            name_col(),
            s("Status", "Status of the job."),
            s("Completions", JOB_SUCCEEDED),
            s("Duration", "Time required to complete the job."),
            age_col(),
            wide("Containers", CONTAINERS_DESC),
            wide("Images", IMAGES_DESC),
            wide("Selector", JOB_SELECTOR),
        ],
        CronJob => vec![
            name_col(),
            s("Schedule", CJ_SCHEDULE),
            s("Timezone", CJ_TIMEZONE),
            boolean("Suspend", CJ_SUSPEND),
            int("Active", CJ_ACTIVE),
            s("Last Schedule", CJ_LAST_SCHEDULE),
            age_col(),
            wide("Containers", CONTAINERS_DESC),
            wide("Images", IMAGES_DESC),
            wide("Selector", JOB_SELECTOR),
        ],
        Service => vec![
            name_col(),
            s("Type", SVC_TYPE),
            s("Cluster-IP", SVC_CLUSTER_IP),
            s("External-IP", SVC_EXTERNAL_IPS),
            s("Port(s)", SVC_PORTS),
            age_col(),
            wide("Selector", SVC_SELECTOR),
        ],
        Ingress => vec![
            name_col(),
            s("Class", "The name of the IngressClass resource that should be used for additional configuration"),
            s("Hosts", "Hosts that incoming requests are matched against before the ingress rule"),
            s("Address", "Address is a list containing ingress points for the load-balancer"),
            s("Ports", "Ports of TLS configurations that open"),
            age_col(),
        ],
        IngressClass => vec![
            name_col(),
            s("Controller", "Controller that is responsible for handling this class"),
            s("Parameters", "A reference to a resource with additional parameters"),
            age_col(),
        ],
        StatefulSet => vec![
            name_col(),
            s("Ready", "Number of the pod with ready state"),
            age_col(),
            wide("Containers", CONTAINERS_DESC),
            wide("Images", IMAGES_DESC),
        ],
        Endpoints => vec![name_col(), s("Endpoints", EP_SUBSETS), age_col()],
        Node => vec![
            name_col(),
            s("Status", "The status of the node"),
            s("Roles", "The roles of the node"),
            age_col(),
            s("Version", NODE_KUBELET),
            wide("Internal-IP", NODE_ADDRESSES),
            wide("External-IP", NODE_ADDRESSES),
            wide("OS-Image", NODE_OS_IMAGE),
            wide("Kernel-Version", NODE_KERNEL),
            wide("Container-Runtime", NODE_CRI),
        ],
        Event => vec![
            s("Last Seen", EV_LAST),
            s("Type", EV_TYPE),
            s("Reason", EV_REASON),
            s("Object", EV_INVOLVED),
            wide("Subobject", OBJREF_FIELD_PATH),
            wide("Source", EV_SOURCE),
            s("Message", EV_MESSAGE),
            wide("First Seen", EV_FIRST),
            wide("Count", EV_COUNT),
            col("Name", "string", "name", META_NAME, 1),
        ],
        Namespace => vec![name_col(), s("Status", "The status of the namespace"), age_col()],
        Secret => vec![name_col(), s("Type", SECRET_TYPE), s("Data", SECRET_DATA), age_col()],
        ServiceAccount => vec![name_col(), s("Secrets", SA_SECRETS), age_col()],
        PersistentVolume => vec![
            name_col(),
            s("Capacity", PV_CAPACITY),
            s("Access Modes", PV_ACCESS),
            s("Reclaim Policy", PV_RECLAIM),
            s("Status", PV_PHASE),
            s("Claim", PV_CLAIM),
            s("StorageClass", "StorageClass of the pv"),
            s("VolumeAttributesClass", "VolumeAttributesClass of the pv"),
            s("Reason", PV_REASON),
            age_col(),
            wide("VolumeMode", PV_MODE),
        ],
        PersistentVolumeClaim => vec![
            name_col(),
            s("Status", PVC_PHASE),
            s("Volume", PVC_VOLUME),
            s("Capacity", PVC_CAPACITY),
            s("Access Modes", PVC_ACCESS),
            s("StorageClass", "StorageClass of the pvc"),
            s("VolumeAttributesClass", "VolumeAttributesClass of the pvc"),
            age_col(),
            wide("VolumeMode", PVC_MODE),
        ],
        ComponentStatus => vec![
            name_col(),
            s("Status", "Status of the component conditions"),
            s("Message", "Message of the component conditions"),
            s("Error", "Error of the component conditions"),
        ],
        Deployment => vec![
            name_col(),
            s("Ready", "Number of the pod with ready state"),
            s("Up-to-date", DEP_UPDATED),
            s("Available", DEP_AVAILABLE),
            age_col(),
            wide("Containers", CONTAINERS_DESC),
            wide("Images", IMAGES_DESC),
            wide("Selector", DEP_SELECTOR),
        ],
        HorizontalPodAutoscaler => vec![
            name_col(),
            s("Reference", HPA_REF),
            s("Targets", HPA_METRICS),
            s("MinPods", HPA_MIN),
            s("MaxPods", HPA_MAX),
            s("Replicas", HPA_CURRENT),
            age_col(),
        ],
        ConfigMap => vec![name_col(), s("Data", CM_DATA), age_col()],
        NetworkPolicy => vec![name_col(), s("Pod-Selector", NP_POD_SELECTOR), age_col()],
        RoleBinding => vec![
            name_col(),
            s("Role", RB_ROLE_REF),
            age_col(),
            wide("Users", "Users in the roleBinding"),
            wide("Groups", "Groups in the roleBinding"),
            wide("ServiceAccounts", "ServiceAccounts in the roleBinding"),
        ],
        ClusterRoleBinding => vec![
            name_col(),
            s("Role", CRB_ROLE_REF),
            age_col(),
            wide("Users", "Users in the clusterRoleBinding"),
            wide("Groups", "Groups in the clusterRoleBinding"),
            wide("ServiceAccounts", "ServiceAccounts in the clusterRoleBinding"),
        ],
        CertificateSigningRequest => vec![
            name_col(),
            age_col(),
            s("SignerName", CSR_SIGNER),
            s("Requestor", CSR_REQUEST),
            s("RequestedDuration", CSR_EXPIRATION),
            s("Condition", CSR_CONDITIONS),
        ],
        ClusterTrustBundle => vec![name_col(), s("SignerName", CTB_SIGNER)],
        Lease => vec![name_col(), s("Holder", LEASE_HOLDER), age_col()],
        LeaseCandidate => vec![
            name_col(),
            s("LeaseName", LC_LEASE_NAME),
            // Upstream looks these up in ObjectMeta's docs, which lack them.
            s("BinaryVersion", ""),
            s("EmulationVersion", ""),
            age_col(),
        ],
        StorageClass => vec![
            name_col(),
            s("Provisioner", SC_PROVISIONER),
            s("ReclaimPolicy", SC_RECLAIM),
            s("VolumeBindingMode", SC_BINDING),
            s("AllowVolumeExpansion", SC_EXPANSION),
            age_col(),
        ],
        VolumeAttributesClass => vec![name_col(), s("DriverName", VAC_DRIVER), age_col()],
        ControllerRevision => vec![
            name_col(),
            s("Controller", "Controller of the object"),
            s("Revision", CR_REVISION),
            age_col(),
        ],
        ResourceQuota => vec![
            name_col(),
            s("Request", "Request represents a minimum amount of cpu/memory that a container may consume."),
            s("Limit", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
            age_col(),
        ],
        PriorityClass => vec![
            name_col(),
            int("Value", PC_VALUE),
            boolean("Global-Default", PC_GLOBAL),
            age_col(),
            s("PreemptionPolicy", PC_PREEMPTION),
        ],
        // Upstream looks "handler" up in ObjectMeta's docs, which lack it.
        RuntimeClass => vec![name_col(), s("Handler", ""), age_col()],
        VolumeAttachment => vec![
            name_col(),
            col("Attacher", "string", "name", VA_ATTACHER, 0),
            s("PV", VA_PV),
            s("Node", VA_NODE),
            boolean("Attached", VA_ATTACHED),
            age_col(),
        ],
        EndpointSlice => vec![
            name_col(),
            s("AddressType", ES_ADDRESS_TYPE),
            s("Ports", ES_PORTS),
            s("Endpoints", ES_ENDPOINTS),
            age_col(),
        ],
        CsiNode => vec![
            name_col(),
            int("Drivers", "Drivers indicates the number of CSI drivers registered on the node"),
            age_col(),
        ],
        CsiDriver => vec![
            name_col(),
            boolean("AttachRequired", CSID_ATTACH),
            boolean("PodInfoOnMount", CSID_PODINFO),
            boolean("StorageCapacity", CSID_CAPACITY),
            s("TokenRequests", CSID_TOKENS),
            boolean("RequiresRepublish", CSID_REPUBLISH),
            s("Modes", CSID_MODES),
            age_col(),
        ],
        MutatingWebhook | ValidatingWebhook => vec![
            name_col(),
            int("Webhooks", "Webhooks indicates the number of webhooks registered in this configuration"),
            age_col(),
        ],
        ValidatingAdmissionPolicy => vec![
            name_col(),
            int("Validations", "Validations indicates the number of validation rules defined in this configuration"),
            s("ParamKind", "ParamKind specifies the kind of resources used to parameterize this policy"),
            age_col(),
        ],
        MutatingAdmissionPolicy => vec![
            name_col(),
            int("Mutations", "Mutation indicates the number of mutations rules defined in this configuration"),
            s("ParamKind", "ParamKind specifies the kind of resources used to parameterize this policy"),
            age_col(),
        ],
        ValidatingAdmissionPolicyBinding | MutatingAdmissionPolicyBinding => vec![
            name_col(),
            s("PolicyName", "PolicyName indicates the policy definition which the policy binding binded to"),
            s("ParamRef", "ParamRef indicates the param resource which sets the configration param"),
            age_col(),
        ],
        FlowSchema => vec![
            name_col(),
            s("PriorityLevel", FS_PL),
            s("MatchingPrecedence", FS_PRECEDENCE),
            s("DistinguisherMethod", FS_DISTINGUISHER),
            age_col(),
            s("MissingPL", "references a broken or non-existent PriorityLevelConfiguration"),
        ],
        PriorityLevelConfiguration => vec![
            name_col(),
            s("Type", PLC_TYPE),
            s("NominalConcurrencyShares", PLC_NCS),
            s("Queues", PLC_QUEUES),
            s("HandSize", PLC_HANDSIZE),
            s("QueueLengthLimit", PLC_QLL),
            age_col(),
        ],
        StorageVersion => vec![
            name_col(),
            s("CommonEncodingVersion", SV_COMMON),
            s("StorageVersions", SV_VERSIONS),
            age_col(),
        ],
        DeviceClass | ResourceClaimTemplate => vec![name_col(), age_col()],
        ResourceClaim => vec![
            name_col(),
            s("State", "A summary of the current state (allocated, pending, reserved, etc.)."),
            age_col(),
        ],
        ResourceSlice => vec![
            name_col(),
            s("Node", RSL_NODE),
            s("Driver", RSL_DRIVER),
            s("Pool", RSL_POOL),
            age_col(),
        ],
        ServiceCidr => vec![name_col(), s("CIDRs", SCIDR_CIDRS), age_col()],
        // Upstream defines no Age column here although its rows carry the
        // age as a third cell.
        IpAddress => vec![name_col(), s("ParentRef", IPA_PARENT)],
        StorageVersionMigration => vec![
            // Upstream gives this Name column no "name" format.
            s("Name", META_NAME),
            s("Resource", "Fully qualified resource to migrate"),
        ],
        ApiService => vec![
            name_col(),
            s("Service", "The reference to the service that hosts this API endpoint."),
            s("Available", "Whether this service is available."),
            age_col(),
        ],
        ResourceMetrics => vec![
            col("Name", "string", "name", "Name of the resource", 0),
            col("cpu", "string", "quantity", "", 0),
            col("memory", "string", "quantity", "", 0),
            col("Window", "string", "duration", "", 0),
        ],
        Default => vec![name_col(), col("Created At", "date", "", META_CREATION, 0)],
    }
}

// ---------------------------------------------------------------------------
// JSON access helpers: never panic, fall back to Go zero values.

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.as_object()?.get(*key)?;
    }
    if cur.is_null() {
        None
    } else {
        Some(cur)
    }
}

/// A string field, "" when missing or not a string.
fn gs<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}

/// An optional string field (present and a string).
fn gos<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path).and_then(Value::as_str)
}

fn as_int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
        .or_else(|| v.as_f64().map(|f| f as i64))
}

/// An integer field, 0 when missing.
fn gi(v: &Value, path: &[&str]) -> i64 {
    get(v, path).and_then(as_int).unwrap_or(0)
}

fn goi(v: &Value, path: &[&str]) -> Option<i64> {
    get(v, path).and_then(as_int)
}

fn gb(v: &Value, path: &[&str]) -> Option<bool> {
    get(v, path).and_then(Value::as_bool)
}

fn ga<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn gm<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Map<String, Value>> {
    get(v, path).and_then(Value::as_object)
}

/// Number of entries of a map (or array) field.
fn glen(v: &Value, path: &[&str]) -> i64 {
    let n = match get(v, path) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    };
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A value printed the way Go's `%v`/`String()` would print a scalar
/// (quantities and int-or-strings may be JSON numbers or strings).
fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let s = v?.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// upstream's translateTimestampSince: "<unknown>" for a zero timestamp.
fn since(v: Option<&Value>, now: DateTime<Utc>) -> String {
    match parse_time(v) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".to_string(),
    }
}

fn name_of(obj: &Value) -> String {
    gs(obj, &["metadata", "name"]).to_string()
}

fn age_of(obj: &Value, now: DateTime<Utc>) -> String {
    since(get(obj, &["metadata", "creationTimestamp"]), now)
}

fn deleting(obj: &Value) -> bool {
    get(obj, &["metadata", "deletionTimestamp"]).is_some()
}

fn or_str(s: &str, fallback: &str) -> String {
    if s.is_empty() {
        fallback.to_string()
    } else {
        s.to_string()
    }
}

// ---------------------------------------------------------------------------
// Formatting helpers shared by several printers.

/// apimachinery's duration.HumanDuration ("5s", "3m20s", "2d4h", "<invalid>"...).
pub fn human_duration(d: Duration) -> String {
    // Up to 2 seconds (excluded) into the future counts as "now".
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d.num_minutes();
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d.num_hours();
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        format!("{hours}h{m}m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        format!("{}d{}h", hours / 24, h)
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        format!("{}y{}d", hours / 24 / 365, dy)
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// labels.FormatLabels: sorted `k=v` pairs, "<none>" when empty.
fn format_labels(m: Option<&Map<String, Value>>) -> String {
    let sorted: BTreeMap<&str, String> = m
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), scalar_string(v)))
                .collect()
        })
        .unwrap_or_default();
    if sorted.is_empty() {
        return "<none>".to_string();
    }
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// metav1.LabelSelectorAsSelector(sel).String(); Err for an invalid selector.
fn selector_string(sel: Option<&Value>) -> Result<String, ()> {
    let Some(sel) = sel else {
        // labels.Nothing() prints as "".
        return Ok(String::new());
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(m) = gm(sel, &["matchLabels"]) {
        for (k, v) in m {
            reqs.push((k.clone(), format!("{k}={}", scalar_string(v))));
        }
    }
    for expr in ga(sel, &["matchExpressions"]) {
        let key = gs(expr, &["key"]);
        let mut values: Vec<String> = ga(expr, &["values"]).iter().map(scalar_string).collect();
        values.sort();
        let text = match gs(expr, &["operator"]) {
            "In" | "NotIn" if values.is_empty() => return Err(()),
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" | "DoesNotExist" if !values.is_empty() => return Err(()),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return Err(()),
        };
        reqs.push((key.to_string(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(reqs
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(","))
}

/// metav1.FormatLabelSelector: "<error>" when invalid, "<none>" when empty.
fn format_label_selector(sel: Option<&Value>) -> String {
    match selector_string(sel) {
        Err(()) => "<error>".to_string(),
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s,
    }
}

/// gogo-protobuf's `(*metav1.LabelSelector).String()` debug form.
fn label_selector_debug_string(sel: &Value) -> String {
    let labels: BTreeMap<&str, String> = gm(sel, &["matchLabels"])
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), scalar_string(v)))
                .collect()
        })
        .unwrap_or_default();
    let mut out = String::from("&LabelSelector{MatchLabels:map[string]string{");
    for (k, v) in &labels {
        out.push_str(&format!("{k}: {v},"));
    }
    out.push_str("},MatchExpressions:[]LabelSelectorRequirement{");
    for expr in ga(sel, &["matchExpressions"]) {
        let values: Vec<String> = ga(expr, &["values"]).iter().map(scalar_string).collect();
        out.push_str(&format!(
            "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
            gs(expr, &["key"]),
            gs(expr, &["operator"]),
            values.join(" ")
        ));
    }
    out.push_str("},}");
    out
}

/// layoutContainerCells: comma-joined container names and images.
fn container_cells(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| gs(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| gs(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// The "+ N more..." list used by several printers ("<unset>" when empty).
fn list_with_more(list: &[String], more: bool, count: usize, max: usize) -> String {
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", count.saturating_sub(max));
    }
    if ret.is_empty() {
        return "<unset>".to_string();
    }
    ret
}

/// net.JoinHostPort.
fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Sorted, de-duplicated load-balancer ingress IPs (or hostnames).
fn load_balancer_string(status: Option<&Value>) -> String {
    let mut set = BTreeSet::new();
    if let Some(status) = status {
        for ing in ga(status, &["ingress"]) {
            let ip = gs(ing, &["ip"]);
            let host = gs(ing, &["hostname"]);
            if !ip.is_empty() {
                set.insert(ip.to_string());
            } else if !host.is_empty() {
                set.insert(host.to_string());
            }
        }
    }
    // The server always prints the wide form, which is never truncated.
    set.into_iter().collect::<Vec<_>>().join(",")
}

/// Pod/job-style condition lookup: the first condition of the type decides.
fn condition_true(conditions: &[Value], ty: &str) -> bool {
    conditions
        .iter()
        .find(|c| gs(c, &["type"]) == ty)
        .is_some_and(|c| gs(c, &["status"]) == "True")
}

/// helper.GetAccessModesAsString.
fn access_modes_string(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    let mut out = Vec::new();
    for (mode, short) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if has(mode) {
            out.push(short);
        }
    }
    out.join(",")
}

/// A resource quantity printed as upstream would (missing means zero).
fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(v) => {
            let s = scalar_string(v);
            if s.is_empty() {
                "0".to_string()
            } else {
                s
            }
        }
        None => "0".to_string(),
    }
}

fn bool_cell(b: bool) -> Value {
    Value::Bool(b)
}

// ---------------------------------------------------------------------------
// Rows.

/// The cells of one row for `obj`, matching column_definitions, computed at time `now`.
pub fn row_cells(printer: Printer, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    use Printer::*;
    let name = || Value::from(name_of(obj));
    let age = || Value::from(age_of(obj, now));
    match printer {
        Pod => pod_cells(obj, now),
        PodTemplate => {
            let (names, images) = container_cells(ga(obj, &["template", "spec", "containers"]));
            vec![
                name(),
                names.into(),
                images.into(),
                format_labels(gm(obj, &["template", "metadata", "labels"])).into(),
            ]
        }
        PodDisruptionBudget => {
            let bound = |field: &str| {
                get(obj, &["spec", field])
                    .map(scalar_string)
                    .unwrap_or_else(|| "N/A".to_string())
            };
            vec![
                name(),
                bound("minAvailable").into(),
                bound("maxUnavailable").into(),
                gi(obj, &["status", "disruptionsAllowed"]).into(),
                age(),
            ]
        }
        ReplicationController | ReplicaSet => {
            let (names, images) =
                container_cells(ga(obj, &["spec", "template", "spec", "containers"]));
            // The two differ only in their selector: a plain label map, or a LabelSelector.
            let selector = if printer == ReplicaSet {
                format_label_selector(get(obj, &["spec", "selector"]))
            } else {
                format_labels(gm(obj, &["spec", "selector"]))
            };
            vec![
                name(),
                goi(obj, &["spec", "replicas"]).unwrap_or(1).into(),
                gi(obj, &["status", "replicas"]).into(),
                gi(obj, &["status", "readyReplicas"]).into(),
                age(),
                names.into(),
                images.into(),
                selector.into(),
            ]
        }
        DaemonSet => {
            let (names, images) =
                container_cells(ga(obj, &["spec", "template", "spec", "containers"]));
            vec![
                name(),
                gi(obj, &["status", "desiredNumberScheduled"]).into(),
                gi(obj, &["status", "currentNumberScheduled"]).into(),
                gi(obj, &["status", "numberReady"]).into(),
                gi(obj, &["status", "updatedNumberScheduled"]).into(),
                gi(obj, &["status", "numberAvailable"]).into(),
                format_labels(gm(obj, &["spec", "template", "spec", "nodeSelector"])).into(),
                age(),
                names.into(),
                images.into(),
                format_label_selector(get(obj, &["spec", "selector"])).into(),
            ]
        }
        Job => job_cells(obj, now),
        CronJob => {
            let last = match get(obj, &["status", "lastScheduleTime"]) {
                Some(t) => since(Some(t), now),
                None => "<none>".to_string(),
            };
            let suspend = match gb(obj, &["spec", "suspend"]) {
                Some(true) => "True",
                Some(false) => "False",
                None => "<unset>",
            };
            let (names, images) = container_cells(ga(
                obj,
                &[
                    "spec",
                    "jobTemplate",
                    "spec",
                    "template",
                    "spec",
                    "containers",
                ],
            ));
            vec![
                name(),
                gs(obj, &["spec", "schedule"]).into(),
                gos(obj, &["spec", "timeZone"]).unwrap_or("<none>").into(),
                suspend.into(),
                glen(obj, &["status", "active"]).into(),
                last.into(),
                age(),
                names.into(),
                images.into(),
                format_label_selector(get(obj, &["spec", "jobTemplate", "spec", "selector"]))
                    .into(),
            ]
        }
        Service => service_cells(obj, now),
        Ingress => {
            let rules = ga(obj, &["spec", "rules"]);
            let max = 3;
            let mut hosts: Vec<String> = Vec::new();
            let mut more = false;
            for rule in rules {
                if hosts.len() == max {
                    more = true;
                }
                let host = gs(rule, &["host"]);
                if !more && !host.is_empty() {
                    hosts.push(host.to_string());
                }
            }
            let hosts = if hosts.is_empty() {
                "*".to_string()
            } else if more {
                format!("{} + {} more...", hosts.join(","), rules.len() - max)
            } else {
                hosts.join(",")
            };
            let ports = if ga(obj, &["spec", "tls"]).is_empty() {
                "80"
            } else {
                "80, 443"
            };
            vec![
                name(),
                gos(obj, &["spec", "ingressClassName"])
                    .unwrap_or("<none>")
                    .into(),
                hosts.into(),
                load_balancer_string(get(obj, &["status", "loadBalancer"])).into(),
                ports.into(),
                age(),
            ]
        }
        IngressClass => {
            let parameters = match get(obj, &["spec", "parameters"]) {
                Some(p) => {
                    let mut out = gs(p, &["kind"]).to_string();
                    if let Some(g) = gos(p, &["apiGroup"]) {
                        out = format!("{out}.{g}");
                    }
                    format!("{out}/{}", gs(p, &["name"]))
                }
                None => "<none>".to_string(),
            };
            vec![
                name(),
                gs(obj, &["spec", "controller"]).into(),
                parameters.into(),
                age(),
            ]
        }
        StatefulSet => {
            let (names, images) =
                container_cells(ga(obj, &["spec", "template", "spec", "containers"]));
            vec![
                name(),
                format!(
                    "{}/{}",
                    gi(obj, &["status", "readyReplicas"]),
                    goi(obj, &["spec", "replicas"]).unwrap_or(1)
                )
                .into(),
                age(),
                names.into(),
                images.into(),
            ]
        }
        Endpoints => vec![name(), format_endpoints(obj).into(), age()],
        Node => node_cells(obj, now),
        Event => event_cells(obj, now),
        Namespace => vec![name(), gs(obj, &["status", "phase"]).into(), age()],
        Secret => vec![
            name(),
            gs(obj, &["type"]).into(),
            glen(obj, &["data"]).into(),
            age(),
        ],
        ServiceAccount => vec![name(), glen(obj, &["secrets"]).into(), age()],
        PersistentVolume => {
            let claim = match get(obj, &["spec", "claimRef"]) {
                Some(c) => format!("{}/{}", gs(c, &["namespace"]), gs(c, &["name"])),
                None => String::new(),
            };
            let phase = if deleting(obj) {
                "Terminating"
            } else {
                gs(obj, &["status", "phase"])
            };
            let class = gos(
                obj,
                &[
                    "metadata",
                    "annotations",
                    "volume.beta.kubernetes.io/storage-class",
                ],
            )
            .unwrap_or_else(|| gs(obj, &["spec", "storageClassName"]));
            vec![
                name(),
                quantity(get(obj, &["spec", "capacity", "storage"])).into(),
                access_modes_string(ga(obj, &["spec", "accessModes"])).into(),
                gs(obj, &["spec", "persistentVolumeReclaimPolicy"]).into(),
                phase.into(),
                claim.into(),
                class.into(),
                gos(obj, &["spec", "volumeAttributesClassName"])
                    .unwrap_or("<unset>")
                    .into(),
                gs(obj, &["status", "reason"]).into(),
                age(),
                gos(obj, &["spec", "volumeMode"])
                    .unwrap_or("<unset>")
                    .into(),
            ]
        }
        PersistentVolumeClaim => {
            let phase = if deleting(obj) {
                "Terminating"
            } else {
                gs(obj, &["status", "phase"])
            };
            let volume = gs(obj, &["spec", "volumeName"]);
            let (capacity, modes) = if volume.is_empty() {
                (String::new(), String::new())
            } else {
                (
                    quantity(get(obj, &["status", "capacity", "storage"])),
                    access_modes_string(ga(obj, &["status", "accessModes"])),
                )
            };
            let class = gos(
                obj,
                &[
                    "metadata",
                    "annotations",
                    "volume.beta.kubernetes.io/storage-class",
                ],
            )
            .unwrap_or_else(|| gs(obj, &["spec", "storageClassName"]));
            vec![
                name(),
                phase.into(),
                volume.into(),
                capacity.into(),
                modes.into(),
                class.into(),
                gos(obj, &["spec", "volumeAttributesClassName"])
                    .unwrap_or("<unset>")
                    .into(),
                age(),
                gos(obj, &["spec", "volumeMode"])
                    .unwrap_or("<unset>")
                    .into(),
            ]
        }
        ComponentStatus => {
            let mut status = "Unknown";
            let mut message = "";
            let mut error = "";
            if let Some(c) = ga(obj, &["conditions"])
                .iter()
                .find(|c| gs(c, &["type"]) == "Healthy")
            {
                status = if gs(c, &["status"]) == "True" {
                    "Healthy"
                } else {
                    "Unhealthy"
                };
                message = gs(c, &["message"]);
                error = gs(c, &["error"]);
            }
            vec![name(), status.into(), message.into(), error.into()]
        }
        Deployment => {
            let (names, images) =
                container_cells(ga(obj, &["spec", "template", "spec", "containers"]));
            let selector = selector_string(get(obj, &["spec", "selector"]))
                .unwrap_or_else(|()| "<invalid>".to_string());
            vec![
                name(),
                format!(
                    "{}/{}",
                    gi(obj, &["status", "readyReplicas"]),
                    goi(obj, &["spec", "replicas"]).unwrap_or(1)
                )
                .into(),
                gi(obj, &["status", "updatedReplicas"]).into(),
                gi(obj, &["status", "availableReplicas"]).into(),
                age(),
                names.into(),
                images.into(),
                selector.into(),
            ]
        }
        HorizontalPodAutoscaler => {
            let reference = format!(
                "{}/{}",
                gs(obj, &["spec", "scaleTargetRef", "kind"]),
                gs(obj, &["spec", "scaleTargetRef", "name"])
            );
            let min = goi(obj, &["spec", "minReplicas"])
                .map(|m| m.to_string())
                .unwrap_or_else(|| "<unset>".to_string());
            vec![
                name(),
                reference.into(),
                hpa_metrics(obj).into(),
                min.into(),
                gi(obj, &["spec", "maxReplicas"]).into(),
                gi(obj, &["status", "currentReplicas"]).into(),
                age(),
            ]
        }
        ConfigMap => vec![
            name(),
            (glen(obj, &["data"]) + glen(obj, &["binaryData"])).into(),
            age(),
        ],
        NetworkPolicy => {
            // The pod selector is a struct upstream, so it is never nil.
            let empty = json!({});
            let sel = get(obj, &["spec", "podSelector"]).unwrap_or(&empty);
            vec![name(), format_label_selector(Some(sel)).into(), age()]
        }
        RoleBinding | ClusterRoleBinding => {
            let role = format!(
                "{}/{}",
                gs(obj, &["roleRef", "kind"]),
                gs(obj, &["roleRef", "name"])
            );
            let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
            for subject in ga(obj, &["subjects"]) {
                let n = gs(subject, &["name"]);
                match gs(subject, &["kind"]) {
                    "ServiceAccount" => {
                        sas.push(format!("{}/{n}", gs(subject, &["namespace"])));
                    }
                    "User" => users.push(n.to_string()),
                    "Group" => groups.push(n.to_string()),
                    _ => {}
                }
            }
            vec![
                name(),
                role.into(),
                age(),
                users.join(", ").into(),
                groups.join(", ").into(),
                sas.join(", ").into(),
            ]
        }
        CertificateSigningRequest => {
            let duration = match goi(obj, &["spec", "expirationSeconds"]) {
                Some(secs) => human_duration(Duration::seconds(secs)),
                None => "<none>".to_string(),
            };
            vec![
                name(),
                age(),
                or_str(gs(obj, &["spec", "signerName"]), "<none>").into(),
                gs(obj, &["spec", "username"]).into(),
                duration.into(),
                csr_status(obj).into(),
            ]
        }
        ClusterTrustBundle => vec![
            name(),
            or_str(gs(obj, &["spec", "signerName"]), "<none>").into(),
        ],
        Lease => vec![name(), gs(obj, &["spec", "holderIdentity"]).into(), age()],
        LeaseCandidate => vec![
            name(),
            gs(obj, &["spec", "leaseName"]).into(),
            gs(obj, &["spec", "binaryVersion"]).into(),
            gs(obj, &["spec", "emulationVersion"]).into(),
            age(),
        ],
        StorageClass => {
            let annotation = |k: &str| gs(obj, &["metadata", "annotations", k]) == "true";
            let mut n = name_of(obj);
            if annotation("storageclass.kubernetes.io/is-default-class")
                || annotation("storageclass.beta.kubernetes.io/is-default-class")
            {
                n.push_str(" (default)");
            }
            vec![
                n.into(),
                gs(obj, &["provisioner"]).into(),
                gos(obj, &["reclaimPolicy"]).unwrap_or("Delete").into(),
                gos(obj, &["volumeBindingMode"])
                    .unwrap_or("Immediate")
                    .into(),
                bool_cell(gb(obj, &["allowVolumeExpansion"]).unwrap_or(false)),
                age(),
            ]
        }
        VolumeAttributesClass => vec![name(), gs(obj, &["driverName"]).into(), age()],
        ControllerRevision => {
            let controller = ga(obj, &["metadata", "ownerReferences"])
                .iter()
                .find(|r| gb(r, &["controller"]) == Some(true))
                .map(|r| {
                    let api_version = gs(r, &["apiVersion"]);
                    let group = match api_version.split_once('/') {
                        Some((g, _)) => g,
                        None => "",
                    };
                    let kind = gs(r, &["kind"]);
                    let n = gs(r, &["name"]);
                    if kind.is_empty() && group.is_empty() {
                        n.to_string()
                    } else if group.is_empty() {
                        format!("{}/{n}", kind.to_lowercase())
                    } else {
                        format!("{}.{}/{n}", kind.to_lowercase(), group.to_lowercase())
                    }
                })
                .unwrap_or_else(|| "<none>".to_string());
            vec![
                name(),
                controller.into(),
                gi(obj, &["revision"]).into(),
                age(),
            ]
        }
        ResourceQuota => {
            let mut request = Vec::new();
            let mut limit = Vec::new();
            if let Some(hard) = gm(obj, &["status", "hard"]) {
                let sorted: BTreeMap<&String, &Value> = hard.iter().collect();
                for (resource, hard_q) in sorted {
                    let used = quantity(get(obj, &["status", "used", resource.as_str()]));
                    let entry = format!("{resource}: {used}/{}", quantity(Some(hard_q)));
                    let pieces: Vec<&str> = resource.split('.').collect();
                    if pieces.len() > 1 && pieces[0] == "limits" {
                        limit.push(entry);
                    } else {
                        request.push(entry);
                    }
                }
            }
            vec![
                name(),
                request.join(", ").into(),
                limit.join(", ").into(),
                age(),
            ]
        }
        PriorityClass => vec![
            name(),
            gi(obj, &["value"]).into(),
            bool_cell(gb(obj, &["globalDefault"]).unwrap_or(false)),
            age(),
            gs(obj, &["preemptionPolicy"]).into(),
        ],
        RuntimeClass => vec![name(), gs(obj, &["handler"]).into(), age()],
        VolumeAttachment => vec![
            name(),
            gs(obj, &["spec", "attacher"]).into(),
            gs(obj, &["spec", "source", "persistentVolumeName"]).into(),
            gs(obj, &["spec", "nodeName"]).into(),
            bool_cell(gb(obj, &["status", "attached"]).unwrap_or(false)),
            age(),
        ],
        EndpointSlice => {
            let max = 3;
            let ports = ga(obj, &["ports"]);
            let port_list: Vec<String> = ports
                .iter()
                .take(max)
                .map(|p| match (goi(p, &["port"]), gos(p, &["name"])) {
                    (Some(n), _) => n.to_string(),
                    (None, Some(n)) => n.to_string(),
                    (None, None) => "*".to_string(),
                })
                .collect();
            let addresses: Vec<String> = ga(obj, &["endpoints"])
                .iter()
                .flat_map(|e| ga(e, &["addresses"]).iter().map(scalar_string))
                .collect();
            let addr_list: Vec<String> = addresses.iter().take(max).cloned().collect();
            vec![
                name(),
                gs(obj, &["addressType"]).into(),
                list_with_more(&port_list, ports.len() > max, ports.len(), max).into(),
                list_with_more(&addr_list, addresses.len() > max, addresses.len(), max).into(),
                age(),
            ]
        }
        CsiNode => vec![name(), glen(obj, &["spec", "drivers"]).into(), age()],
        CsiDriver => {
            let tokens = match get(obj, &["spec", "tokenRequests"]) {
                Some(t) => t
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|t| gs(t, &["audience"]))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default(),
                None => "<unset>".to_string(),
            };
            let modes: Vec<String> = ga(obj, &["spec", "volumeLifecycleModes"])
                .iter()
                .map(scalar_string)
                .collect();
            vec![
                name(),
                bool_cell(gb(obj, &["spec", "attachRequired"]).unwrap_or(true)),
                bool_cell(gb(obj, &["spec", "podInfoOnMount"]).unwrap_or(false)),
                bool_cell(gb(obj, &["spec", "storageCapacity"]).unwrap_or(false)),
                tokens.into(),
                bool_cell(gb(obj, &["spec", "requiresRepublish"]).unwrap_or(false)),
                or_str(&modes.join(","), "<none>").into(),
                age(),
            ]
        }
        MutatingWebhook | ValidatingWebhook => {
            vec![name(), glen(obj, &["webhooks"]).into(), age()]
        }
        ValidatingAdmissionPolicy | MutatingAdmissionPolicy => {
            let rules = if printer == ValidatingAdmissionPolicy {
                "validations"
            } else {
                "mutations"
            };
            let param_kind = match get(obj, &["spec", "paramKind"]) {
                Some(p) => format!("{}/{}", gs(p, &["apiVersion"]), gs(p, &["kind"])),
                None => "<unset>".to_string(),
            };
            vec![
                name(),
                glen(obj, &["spec", rules]).into(),
                param_kind.into(),
                age(),
            ]
        }
        ValidatingAdmissionPolicyBinding | MutatingAdmissionPolicyBinding => {
            let mut param = "<unset>".to_string();
            if let Some(pr) = get(obj, &["spec", "paramRef"]) {
                let n = gs(pr, &["name"]);
                let ns = gs(pr, &["namespace"]);
                if !n.is_empty() {
                    param = if ns.is_empty() {
                        format!("*/{n}")
                    } else {
                        format!("{ns}/{n}")
                    };
                } else if let Some(sel) = get(pr, &["selector"]) {
                    param = label_selector_debug_string(sel);
                }
            }
            vec![
                name(),
                gs(obj, &["spec", "policyName"]).into(),
                param.into(),
                age(),
            ]
        }
        FlowSchema => {
            let distinguisher = gos(obj, &["spec", "distinguisherMethod", "type"])
                .map(str::to_string)
                .or_else(|| get(obj, &["spec", "distinguisherMethod"]).map(|_| String::new()))
                .unwrap_or_else(|| "<none>".to_string());
            let missing = ga(obj, &["status", "conditions"])
                .iter()
                .find(|c| gs(c, &["type"]) == "Dangling")
                .map(|c| gs(c, &["status"]).to_string())
                .unwrap_or_else(|| "?".to_string());
            vec![
                name(),
                gs(obj, &["spec", "priorityLevelConfiguration", "name"]).into(),
                gi(obj, &["spec", "matchingPrecedence"]).into(),
                distinguisher.into(),
                age(),
                missing.into(),
            ]
        }
        PriorityLevelConfiguration => {
            let none = || Value::from("<none>");
            let (mut ncs, mut queues, mut hand, mut qll) = (none(), none(), none(), none());
            if let Some(limited) = get(obj, &["spec", "limited"]) {
                ncs = gi(limited, &["nominalConcurrencyShares"]).into();
                if let Some(q) = get(limited, &["limitResponse", "queuing"]) {
                    queues = gi(q, &["queues"]).into();
                    hand = gi(q, &["handSize"]).into();
                    qll = gi(q, &["queueLengthLimit"]).into();
                }
            }
            vec![
                name(),
                gs(obj, &["spec", "type"]).into(),
                ncs,
                queues,
                hand,
                qll,
                age(),
            ]
        }
        StorageVersion => {
            let max = 3;
            let versions = ga(obj, &["status", "storageVersions"]);
            let list: Vec<String> = versions
                .iter()
                .take(max)
                .map(|v| {
                    format!(
                        "{}={}",
                        gs(v, &["apiServerID"]),
                        gs(v, &["encodingVersion"])
                    )
                })
                .collect();
            vec![
                name(),
                gos(obj, &["status", "commonEncodingVersion"])
                    .unwrap_or("<unset>")
                    .into(),
                list_with_more(&list, versions.len() > max, versions.len(), max).into(),
                age(),
            ]
        }
        DeviceClass | ResourceClaimTemplate => vec![name(), age()],
        ResourceClaim => {
            let mut states = Vec::new();
            let deleted = deleting(obj);
            if deleted {
                states.push("deleted");
            }
            if get(obj, &["status", "allocation"]).is_none() {
                if !deleted {
                    states.push("pending");
                }
            } else {
                states.push("allocated");
                if !ga(obj, &["status", "reservedFor"]).is_empty() {
                    states.push("reserved");
                }
            }
            vec![name(), states.join(",").into(), age()]
        }
        ResourceSlice => vec![
            name(),
            gs(obj, &["spec", "nodeName"]).into(),
            gs(obj, &["spec", "driver"]).into(),
            gs(obj, &["spec", "pool", "name"]).into(),
            age(),
        ],
        ServiceCidr => {
            let cidrs: Vec<String> = ga(obj, &["spec", "cidrs"])
                .iter()
                .map(scalar_string)
                .collect();
            vec![name(), cidrs.join(",").into(), age()]
        }
        IpAddress => {
            let parent = match get(obj, &["spec", "parentRef"]) {
                Some(p) => {
                    let resource = gs(p, &["resource"]);
                    let g = gs(p, &["group"]);
                    let mut out = if g.is_empty() {
                        resource.to_lowercase()
                    } else {
                        format!("{resource}.{g}").to_lowercase()
                    };
                    let ns = gs(p, &["namespace"]);
                    if !ns.is_empty() {
                        out = format!("{out}/{ns}");
                    }
                    format!("{out}/{}", gs(p, &["name"]))
                }
                None => "<none>".to_string(),
            };
            // Upstream emits the age although it defines no column for it.
            vec![name(), parent.into(), age()]
        }
        StorageVersionMigration => vec![
            name(),
            format!(
                "{}.{}.{}",
                gs(obj, &["spec", "resource", "resource"]),
                gs(obj, &["spec", "resource", "version"]),
                gs(obj, &["spec", "resource", "group"])
            )
            .into(),
        ],
        ApiService => {
            let service = match get(obj, &["spec", "service"]) {
                Some(svc) => format!("{}/{}", gs(svc, &["namespace"]), gs(svc, &["name"])),
                None => "Local".to_string(),
            };
            let available = match ga(obj, &["status", "conditions"])
                .iter()
                .find(|c| gs(c, &["type"]) == "Available")
            {
                None => "Unknown".to_string(),
                Some(c) => {
                    let status = gs(c, &["status"]);
                    let reason = gs(c, &["reason"]);
                    if status != "True" && !reason.is_empty() {
                        format!("{status} ({reason})")
                    } else {
                        status.to_string()
                    }
                }
            };
            vec![name(), service.into(), available.into(), age()]
        }
        ResourceMetrics => {
            // A pod's row sums its containers, as metrics-server's table does.
            let usages: Vec<&Value> = match get(obj, &["usage"]) {
                Some(u) => vec![u],
                None => ga(obj, &["containers"])
                    .iter()
                    .filter_map(|c| get(c, &["usage"]))
                    .collect(),
            };
            let sum = |resource: &str| {
                usages
                    .iter()
                    .filter_map(|u| u.get(resource).and_then(Value::as_str))
                    .filter_map(|q| crate::apiserver::wire::quantity::Quantity::parse(q).ok())
                    .reduce(|a, b| a.plus(b))
                    .map(|q| q.to_string())
                    .unwrap_or_else(|| "0".into())
            };
            vec![
                name(),
                sum("cpu").into(),
                sum("memory").into(),
                gs(obj, &["window"]).into(),
            ]
        }
        Default => {
            let created = parse_time(get(obj, &["metadata", "creationTimestamp"]))
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
            vec![name(), created.into()]
        }
    }
}

fn pod_cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let init_specs = ga(pod, &["spec", "initContainers"]);
    let restartable = |name: &str| {
        init_specs
            .iter()
            .any(|c| gs(c, &["name"]) == name && gs(c, &["restartPolicy"]) == "Always")
    };
    let mut total = ga(pod, &["spec", "containers"]).len();
    total += init_specs
        .iter()
        .filter(|c| gs(c, &["restartPolicy"]) == "Always")
        .count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut restartable_restarts = 0i64;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_restartable_restart: Option<DateTime<Utc>> = None;

    let phase = gs(pod, &["status", "phase"]);
    let status_reason = gs(pod, &["status", "reason"]);
    let mut reason = or_str(status_reason, phase);
    let conditions = ga(pod, &["status", "conditions"]);
    if conditions
        .iter()
        .any(|c| gs(c, &["type"]) == "PodScheduled" && gs(c, &["reason"]) == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }

    let later = |cur: Option<DateTime<Utc>>, t: Option<DateTime<Utc>>| match (cur, t) {
        (Some(c), Some(t)) if t > c => Some(t),
        (None, Some(t)) => Some(t),
        (c, _) => c,
    };

    let mut initializing = false;
    for (i, st) in ga(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        let count = gi(st, &["restartCount"]);
        restarts += count;
        let finished = parse_time(get(st, &["lastState", "terminated", "finishedAt"]));
        last_restart = later(last_restart, finished);
        let is_restartable = restartable(gs(st, &["name"]));
        if is_restartable {
            restartable_restarts += count;
            last_restartable_restart = later(last_restartable_restart, finished);
        }
        let terminated = get(st, &["state", "terminated"]);
        let waiting_reason = gs(st, &["state", "waiting", "reason"]);
        match terminated {
            Some(t) if gi(t, &["exitCode"]) == 0 => continue,
            _ if is_restartable && gb(st, &["started"]) == Some(true) => {
                if gb(st, &["ready"]) == Some(true) {
                    ready += 1;
                }
                continue;
            }
            Some(t) => {
                let r = gs(t, &["reason"]);
                reason = if !r.is_empty() {
                    format!("Init:{r}")
                } else if gi(t, &["signal"]) != 0 {
                    format!("Init:Signal:{}", gi(t, &["signal"]))
                } else {
                    format!("Init:ExitCode:{}", gi(t, &["exitCode"]))
                };
            }
            None if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" => {
                reason = format!("Init:{waiting_reason}");
            }
            None => {
                reason = format!("Init:{i}/{}", init_specs.len());
            }
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(conditions, "Initialized") {
        restarts = restartable_restarts;
        last_restart = last_restartable_restart;
        let mut has_running = false;
        for st in ga(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += gi(st, &["restartCount"]);
            let finished = parse_time(get(st, &["lastState", "terminated", "finishedAt"]));
            last_restart = later(last_restart, finished);
            let waiting_reason = gs(st, &["state", "waiting", "reason"]);
            let terminated = get(st, &["state", "terminated"]);
            if get(st, &["state", "waiting"]).is_some() && !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                let r = gs(t, &["reason"]);
                reason = if !r.is_empty() {
                    r.to_string()
                } else if gi(t, &["signal"]) != 0 {
                    format!("Signal:{}", gi(t, &["signal"]))
                } else {
                    format!("ExitCode:{}", gi(t, &["exitCode"]))
                };
            } else if gb(st, &["ready"]) == Some(true) && get(st, &["state", "running"]).is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true_strict(conditions, "Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    if deleting(pod) && status_reason == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting(pod) && phase != "Failed" && phase != "Succeeded" {
        reason = "Terminating".to_string();
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", human_duration(now - t)),
        _ => restarts.to_string(),
    };

    let pod_ip = ga(pod, &["status", "podIPs"])
        .first()
        .map(|p| gs(p, &["ip"]))
        .unwrap_or_else(|| gs(pod, &["status", "podIP"]));
    let gates = ga(pod, &["spec", "readinessGates"]);
    let gates_cell = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let ok = gates
            .iter()
            .filter(|g| condition_true(conditions, gs(g, &["conditionType"])))
            .count();
        format!("{ok}/{}", gates.len())
    };
    vec![
        name_of(pod).into(),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts_cell.into(),
        age_of(pod, now).into(),
        or_str(pod_ip, "<none>").into(),
        or_str(gs(pod, &["spec", "nodeName"]), "<none>").into(),
        or_str(gs(pod, &["status", "nominatedNodeName"]), "<none>").into(),
        gates_cell.into(),
    ]
}

/// hasPodReadyCondition: any Ready condition with status True.
fn condition_true_strict(conditions: &[Value], ty: &str) -> bool {
    conditions
        .iter()
        .any(|c| gs(c, &["type"]) == ty && gs(c, &["status"]) == "True")
}

fn job_cells(job: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let succeeded = gi(job, &["status", "succeeded"]);
    let completions = match goi(job, &["spec", "completions"]) {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let parallelism = gi(job, &["spec", "parallelism"]);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let start = parse_time(get(job, &["status", "startTime"]));
    let completion = parse_time(get(job, &["status", "completionTime"]));
    let duration = match (start, completion) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration(now - s),
        (Some(s), Some(c)) => human_duration(c - s),
    };
    let conditions = ga(job, &["status", "conditions"]);
    let status = if condition_true(conditions, "Complete") {
        "Complete"
    } else if condition_true(conditions, "Failed") {
        "Failed"
    } else if deleting(job) {
        "Terminating"
    } else if condition_true(conditions, "Suspended") {
        "Suspended"
    } else if condition_true(conditions, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = container_cells(ga(job, &["spec", "template", "spec", "containers"]));
    vec![
        name_of(job).into(),
        status.into(),
        completions.into(),
        duration.into(),
        age_of(job, now).into(),
        names.into(),
        images.into(),
        format_label_selector(get(job, &["spec", "selector"])).into(),
    ]
}

fn service_cells(svc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ty = gs(svc, &["spec", "type"]);
    let cluster_ip = ga(svc, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .or_else(|| gos(svc, &["spec", "clusterIP"]).filter(|s| !s.is_empty()))
        .unwrap_or("<none>");
    let external: Vec<String> = ga(svc, &["spec", "externalIPs"])
        .iter()
        .map(scalar_string)
        .collect();
    let external_ip = match ty {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".to_string()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer_string(get(svc, &["status", "loadBalancer"]));
            if !external.is_empty() {
                let mut all: Vec<String> = Vec::new();
                if !lb.is_empty() {
                    all.extend(lb.split(',').map(str::to_string));
                }
                all.extend(external);
                all.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => gs(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = ga(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let port = gi(p, &["port"]);
            let protocol = gos(p, &["protocol"]).unwrap_or("TCP");
            let node_port = gi(p, &["nodePort"]);
            if node_port > 0 {
                format!("{port}:{node_port}/{protocol}")
            } else {
                format!("{port}/{protocol}")
            }
        })
        .collect();
    vec![
        name_of(svc).into(),
        ty.into(),
        cluster_ip.into(),
        external_ip.into(),
        or_str(&ports.join(","), "<none>").into(),
        age_of(svc, now).into(),
        format_labels(gm(svc, &["spec", "selector"])).into(),
    ]
}

/// formatEndpoints with all ports.
fn format_endpoints(ep: &Value) -> String {
    let subsets = ga(ep, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let max = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for ss in subsets {
        let addresses = ga(ss, &["addresses"]);
        let ports = ga(ss, &["ports"]);
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            for addr in addresses {
                if list.len() == max {
                    more = true;
                    break;
                }
                list.push(gs(addr, &["ip"]).to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for addr in addresses {
                if list.len() == max {
                    more = true;
                    break;
                }
                list.push(join_host_port(
                    gs(addr, &["ip"]),
                    &gi(port, &["port"]).to_string(),
                ));
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count.saturating_sub(max))
    } else {
        ret
    }
}

fn node_cells(node: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut status: Vec<String> = Vec::new();
    // Only the last Ready condition counts (upstream keys them by type).
    if let Some(c) = ga(node, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| gs(c, &["type"]) == "Ready")
    {
        if gs(c, &["status"]) == "True" {
            status.push("Ready".to_string());
        } else {
            status.push("NotReady".to_string());
        }
    }
    if status.is_empty() {
        status.push("Unknown".to_string());
    }
    if gb(node, &["spec", "unschedulable"]) == Some(true) {
        status.push("SchedulingDisabled".to_string());
    }
    let address = |ty: &str| {
        ga(node, &["status", "addresses"])
            .iter()
            .find(|a| gs(a, &["type"]) == ty)
            .map(|a| gs(a, &["address"]).to_string())
            .unwrap_or_else(|| "<none>".to_string())
    };
    let info = |k: &str| or_str(gs(node, &["status", "nodeInfo", k]), "<unknown>");
    vec![
        name_of(node).into(),
        status.join(",").into(),
        or_str(&node_roles(node).join(","), "<none>").into(),
        age_of(node, now).into(),
        gs(node, &["status", "nodeInfo", "kubeletVersion"]).into(),
        address("InternalIP").into(),
        address("ExternalIP").into(),
        info("osImage").into(),
        info("kernelVersion").into(),
        info("containerRuntimeVersion").into(),
    ]
}

/// findNodeRoles: `node-role.kubernetes.io/<role>` label keys and the
/// `kubernetes.io/role` label value, sorted and de-duplicated.
fn node_roles(node: &Value) -> Vec<String> {
    let mut roles = BTreeSet::new();
    if let Some(labels) = gm(node, &["metadata", "labels"]) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if k == "kubernetes.io/role" {
                let v = scalar_string(v);
                if !v.is_empty() {
                    roles.insert(v);
                }
            }
        }
    }
    roles.into_iter().collect()
}

/// Events of both core/v1 and events.k8s.io/v1 (whose fields carry other
/// names; upstream converts them to the same internal type).
fn event_cells(ev: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let pick = |core: &str, events: &str| get(ev, &[core]).or_else(|| get(ev, &[events]));
    let first = match parse_time(pick("firstTimestamp", "deprecatedFirstTimestamp")) {
        Some(t) => human_duration(now - t),
        None => since(get(ev, &["eventTime"]), now),
    };
    let mut last = match parse_time(pick("lastTimestamp", "deprecatedLastTimestamp")) {
        Some(t) => human_duration(now - t),
        None => first.clone(),
    };
    let mut count = pick("count", "deprecatedCount")
        .and_then(as_int)
        .unwrap_or(0);
    if let Some(series) = get(ev, &["series"]) {
        last = since(get(series, &["lastObservedTime"]), now);
        count = gi(series, &["count"]);
    } else if count == 0 {
        count = 1;
    }
    let empty = json!({});
    let involved = pick("involvedObject", "regarding").unwrap_or(&empty);
    let kind = gs(involved, &["kind"]).to_lowercase();
    let obj_name = gs(involved, &["name"]);
    let target = if obj_name.is_empty() {
        kind
    } else {
        format!("{kind}/{obj_name}")
    };
    let source = pick("source", "deprecatedSource").unwrap_or(&empty);
    let component = or_str(gs(source, &["component"]), gs(ev, &["reportingController"]));
    let host = or_str(gs(source, &["host"]), gs(ev, &["reportingInstance"]));
    let source = if host.is_empty() {
        component
    } else {
        format!("{component}, {host}")
    };
    let message = pick("message", "note")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim();
    vec![
        last.into(),
        gs(ev, &["type"]).into(),
        gs(ev, &["reason"]).into(),
        target.into(),
        gs(involved, &["fieldPath"]).into(),
        source.into(),
        message.into(),
        first.into(),
        count.into(),
        name_of(ev).into(),
    ]
}

/// extractCSRStatus.
fn csr_status(csr: &Value) -> String {
    let conditions = ga(csr, &["status", "conditions"]);
    let has = |t: &str| conditions.iter().any(|c| gs(c, &["type"]) == t);
    let mut status = if has("Denied") {
        "Denied".to_string()
    } else if has("Approved") {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if has("Failed") {
        status.push_str(",Failed");
    }
    if !gs(csr, &["status", "certificate"]).is_empty() {
        status.push_str(",Issued");
    }
    status
}

/// formatHPAMetrics (autoscaling/v2 shape; autoscaling/v1's CPU target is
/// converted the way upstream converts it).
fn hpa_metrics(hpa: &Value) -> String {
    let mut specs: Vec<Value> = ga(hpa, &["spec", "metrics"]).to_vec();
    let mut statuses: Vec<Value> = ga(hpa, &["status", "currentMetrics"]).to_vec();
    if specs.is_empty() {
        if let Some(target) = goi(hpa, &["spec", "targetCPUUtilizationPercentage"]) {
            specs.push(json!({"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": target}}}));
            if let Some(cur) = goi(hpa, &["status", "currentCPUUtilizationPercentage"]) {
                statuses.push(json!({"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": cur}}}));
            }
        }
    }
    if specs.is_empty() {
        return "<none>".to_string();
    }
    let q = |v: &Value, path: &[&str]| {
        get(v, path)
            .map(scalar_string)
            .unwrap_or_else(|| "<nil>".to_string())
    };
    let mut list: Vec<String> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let status = statuses.get(i);
        // The status entry of the same index, if it has the given source.
        let st = |source: &str| status.and_then(|s| get(s, &[source]));
        let entry = match gs(spec, &["type"]) {
            source @ ("External" | "Object") => {
                let key = if source == "External" {
                    "external"
                } else {
                    "object"
                };
                if get(spec, &[key, "target", "averageValue"]).is_some() {
                    let current = st(key)
                        .and_then(|s| get(s, &["current", "averageValue"]))
                        .map(scalar_string)
                        .unwrap_or_else(|| "<unknown>".to_string());
                    format!(
                        "{current}/{} (avg)",
                        q(spec, &[key, "target", "averageValue"])
                    )
                } else {
                    let current = st(key)
                        .map(|s| q(s, &["current", "value"]))
                        .unwrap_or_else(|| "<unknown>".to_string());
                    format!("{current}/{}", q(spec, &[key, "target", "value"]))
                }
            }
            "Pods" => {
                let current = st("pods")
                    .map(|s| q(s, &["current", "averageValue"]))
                    .unwrap_or_else(|| "<unknown>".to_string());
                format!("{current}/{}", q(spec, &["pods", "target", "averageValue"]))
            }
            source @ ("Resource" | "ContainerResource") => {
                let key = if source == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let rname = gs(spec, &[key, "name"]);
                if get(spec, &[key, "target", "averageValue"]).is_some() {
                    let current = st(key)
                        .map(|s| q(s, &["current", "averageValue"]))
                        .unwrap_or_else(|| "<unknown>".to_string());
                    format!(
                        "{rname}: {current}/{}",
                        q(spec, &[key, "target", "averageValue"])
                    )
                } else {
                    let current = st(key)
                        .and_then(|s| goi(s, &["current", "averageUtilization"]))
                        .map(|u| format!("{u}%"))
                        .unwrap_or_else(|| "<unknown>".to_string());
                    let target = goi(spec, &[key, "target", "averageUtilization"])
                        .map(|u| format!("{u}%"))
                        .unwrap_or_else(|| "<auto>".to_string());
                    format!("{rname}: {current}/{target}")
                }
            }
            _ => "<unknown type>".to_string(),
        };
        list.push(entry);
    }
    let max = 2;
    let count = list.len();
    if count > max {
        list.truncate(max);
        return format!("{} + {} more...", list.join(", "), count - max);
    }
    list.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-06-01T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn ago(secs: i64) -> String {
        (now() - Duration::seconds(secs))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    }

    /// The printer the built-in catalog gives `group`/`plural` (so these tests also pin the rows).
    fn printer_of(group: &str, plural: &str) -> Printer {
        crate::apiserver::catalog::builtin_resources()
            .into_iter()
            .find(|r| r.group == group && r.plural == plural)
            .map_or(Printer::Default, |r| r.strategy.printer())
    }

    fn names(group: &str, plural: &str) -> Vec<String> {
        column_definitions(printer_of(group, plural))
            .iter()
            .map(|c| c["name"].as_str().unwrap_or("").to_string())
            .collect()
    }

    fn cells(group: &str, plural: &str, obj: &Value) -> Vec<Value> {
        row_cells(printer_of(group, plural), obj, now())
    }

    #[test]
    fn human_duration_cases() {
        let cases: &[(i64, &str)] = &[
            (-5, "<invalid>"),
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (599, "9m59s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60 * 25, "3h25m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (52 * 3600, "2d4h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (800 * 86400, "2y70d"),
            (8 * 365 * 86400, "8y"),
            (20 * 365 * 86400, "20y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(Duration::seconds(*secs)), *want, "{secs}s");
        }
        assert_eq!(human_duration(Duration::milliseconds(-1500)), "0s");
    }

    #[test]
    fn every_printer_has_matching_cells_and_never_panics() {
        let resources = [
            ("", "pods"),
            ("", "podtemplates"),
            ("", "replicationcontrollers"),
            ("", "services"),
            ("", "endpoints"),
            ("", "nodes"),
            ("", "events"),
            ("events.k8s.io", "events"),
            ("", "namespaces"),
            ("", "secrets"),
            ("", "serviceaccounts"),
            ("", "persistentvolumes"),
            ("", "persistentvolumeclaims"),
            ("", "componentstatuses"),
            ("", "configmaps"),
            ("", "resourcequotas"),
            ("", "limitranges"),
            ("apps", "deployments"),
            ("apps", "replicasets"),
            ("apps", "statefulsets"),
            ("apps", "daemonsets"),
            ("apps", "controllerrevisions"),
            ("batch", "jobs"),
            ("batch", "cronjobs"),
            ("autoscaling", "horizontalpodautoscalers"),
            ("policy", "poddisruptionbudgets"),
            ("rbac.authorization.k8s.io", "roles"),
            ("rbac.authorization.k8s.io", "rolebindings"),
            ("rbac.authorization.k8s.io", "clusterrolebindings"),
            ("networking.k8s.io", "ingresses"),
            ("networking.k8s.io", "ingressclasses"),
            ("networking.k8s.io", "networkpolicies"),
            ("networking.k8s.io", "servicecidrs"),
            ("storage.k8s.io", "storageclasses"),
            ("storage.k8s.io", "volumeattributesclasses"),
            ("storage.k8s.io", "volumeattachments"),
            ("storage.k8s.io", "csinodes"),
            ("storage.k8s.io", "csidrivers"),
            ("storage.k8s.io", "csistoragecapacities"),
            ("certificates.k8s.io", "certificatesigningrequests"),
            ("certificates.k8s.io", "clustertrustbundles"),
            ("coordination.k8s.io", "leases"),
            ("coordination.k8s.io", "leasecandidates"),
            ("discovery.k8s.io", "endpointslices"),
            ("scheduling.k8s.io", "priorityclasses"),
            ("node.k8s.io", "runtimeclasses"),
            (
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
            ),
            (
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
            ),
            (
                "admissionregistration.k8s.io",
                "validatingadmissionpolicies",
            ),
            (
                "admissionregistration.k8s.io",
                "validatingadmissionpolicybindings",
            ),
            ("admissionregistration.k8s.io", "mutatingadmissionpolicies"),
            (
                "admissionregistration.k8s.io",
                "mutatingadmissionpolicybindings",
            ),
            ("flowcontrol.apiserver.k8s.io", "flowschemas"),
            (
                "flowcontrol.apiserver.k8s.io",
                "prioritylevelconfigurations",
            ),
            ("internal.apiserver.k8s.io", "storageversions"),
            ("resource.k8s.io", "deviceclasses"),
            ("resource.k8s.io", "resourceclaims"),
            ("resource.k8s.io", "resourceclaimtemplates"),
            ("resource.k8s.io", "resourceslices"),
            ("storagemigration.k8s.io", "storageversionmigrations"),
            ("apiregistration.k8s.io", "apiservices"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
            ("example.com", "widgets"),
        ];
        let shapes = [
            json!({}),
            json!(null),
            json!("x"),
            json!({"metadata": 5, "spec": [], "status": "bad"}),
            json!({"metadata": {"name": "n", "labels": {"a": 1}}, "spec": {"ports": [1, {}],
                "containers": "x", "selector": {"matchExpressions": [{}]}},
                "status": {"conditions": [null, 3], "containerStatuses": [{}, 7]}}),
        ];
        for (g, p) in resources {
            let cols = column_definitions(printer_of(g, p));
            assert!(!cols.is_empty());
            for c in &cols {
                for key in ["name", "type", "format", "description", "priority"] {
                    assert!(c.get(key).is_some(), "{g}/{p} missing {key}");
                }
            }
            for obj in &shapes {
                let row = row_cells(printer_of(g, p), obj, now());
                // Upstream's IPAddress rows carry an extra age cell.
                assert_eq!(row.len(), cols.len(), "{g}/{p}");
            }
        }
        let ip_row = row_cells(
            printer_of("networking.k8s.io", "ipaddresses"),
            &json!({}),
            now(),
        );
        assert_eq!(ip_row.len(), 3);
        assert_eq!(
            names("networking.k8s.io", "ipaddresses"),
            ["Name", "ParentRef"]
        );
    }

    #[test]
    fn name_column_first_with_upstream_description() {
        let cols = column_definitions(printer_of("", "pods"));
        assert_eq!(cols[0]["name"], "Name");
        assert_eq!(cols[0]["format"], "name");
        assert!(cols[0]["description"]
            .as_str()
            .unwrap_or("")
            .starts_with("Name must be unique within a namespace."));
        assert_eq!(cols[4]["name"], "Age");
        assert!(cols[4]["description"]
            .as_str()
            .unwrap_or("")
            .starts_with("CreationTimestamp is a timestamp"));
    }

    #[test]
    fn default_columns_for_unknown_resource() {
        let cols = column_definitions(printer_of("example.com", "widgets"));
        assert_eq!(cols.len(), 2);
        assert_eq!(cols[0]["name"], "Name");
        assert_eq!(cols[0]["format"], "name");
        assert_eq!(cols[1]["name"], "Created At");
        assert_eq!(cols[1]["type"], "date");
        let obj = json!({"metadata": {"name": "w", "creationTimestamp": "2024-01-02T03:04:05Z"}});
        assert_eq!(
            cells("example.com", "widgets", &obj),
            vec![json!("w"), json!("2024-01-02T03:04:05Z")]
        );
        assert_eq!(
            cells("example.com", "widgets", &json!({}))[1],
            "0001-01-01T00:00:00Z"
        );
        for (g, p) in [
            ("rbac.authorization.k8s.io", "roles"),
            ("rbac.authorization.k8s.io", "clusterroles"),
            ("", "limitranges"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
        ] {
            assert_eq!(names(g, p), ["Name", "Created At"]);
        }
    }

    #[test]
    fn pod_columns() {
        assert_eq!(
            names("", "pods"),
            [
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ]
        );
        let prio: Vec<i64> = column_definitions(printer_of("", "pods"))
            .iter()
            .map(|c| c["priority"].as_i64().unwrap_or(-1))
            .collect();
        assert_eq!(prio, [0, 0, 0, 0, 0, 1, 1, 1, 1]);
    }

    #[test]
    fn pod_running() {
        let pod = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(300)},
            "spec": {"nodeName": "node-1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {
                "phase": "Running",
                "podIP": "10.0.0.5",
                "podIPs": [{"ip": "10.0.0.5"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                    {"name": "b", "ready": false, "restartCount": 0, "state": {"running": {}}}
                ]
            }
        });
        assert_eq!(
            cells("", "pods", &pod),
            vec![
                json!("web"),
                json!("1/2"),
                json!("Running"),
                json!("0"),
                json!("5m"),
                json!("10.0.0.5"),
                json!("node-1"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn pod_status_variants() {
        let status = |pod: Value| cells("", "pods", &pod)[2].clone();
        // Waiting reason wins.
        assert_eq!(
            status(
                json!({"spec": {"containers": [{}]}, "status": {"phase": "Running",
                "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}})
            ),
            "CrashLoopBackOff"
        );
        // Pending with no statuses.
        assert_eq!(status(json!({"status": {"phase": "Pending"}})), "Pending");
        // Pod-level reason.
        assert_eq!(
            status(json!({"status": {"phase": "Failed", "reason": "Evicted"}})),
            "Evicted"
        );
        // Terminated without reason: signal, then exit code.
        assert_eq!(
            status(json!({"status": {"phase": "Running", "containerStatuses": [
                {"state": {"terminated": {"exitCode": 137, "signal": 9}}}]}})),
            "Signal:9"
        );
        assert_eq!(
            status(json!({"status": {"phase": "Running", "containerStatuses": [
                {"state": {"terminated": {"exitCode": 2}}}]}})),
            "ExitCode:2"
        );
        // Completed.
        assert_eq!(
            status(
                json!({"status": {"phase": "Succeeded", "containerStatuses": [
                {"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}})
            ),
            "Completed"
        );
        // Completed but another container still running: Running / NotReady.
        let mixed = |ready: &str| {
            json!({"status": {"phase": "Running",
                "conditions": [{"type": "Ready", "status": ready}],
                "containerStatuses": [
                    {"ready": true, "state": {"running": {}}},
                    {"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}})
        };
        assert_eq!(status(mixed("True")), "Running");
        assert_eq!(status(mixed("False")), "NotReady");
        // Terminating.
        assert_eq!(
            status(json!({"metadata": {"deletionTimestamp": ago(1)},
                "status": {"phase": "Running"}})),
            "Terminating"
        );
        // Terminal pods are not shown as Terminating.
        assert_eq!(
            status(json!({"metadata": {"deletionTimestamp": ago(1)},
                "status": {"phase": "Succeeded"}})),
            "Succeeded"
        );
        // NodeLost.
        assert_eq!(
            status(json!({"metadata": {"deletionTimestamp": ago(1)},
                "status": {"phase": "Running", "reason": "NodeLost"}})),
            "Unknown"
        );
        // Scheduling gated.
        assert_eq!(
            status(json!({"status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}})),
            "SchedulingGated"
        );
    }

    #[test]
    fn pod_init_containers() {
        let spec = json!({"initContainers": [{"name": "i1"}, {"name": "i2"}],
            "containers": [{"name": "c"}]});
        let status = |init: Value| {
            let pod = json!({"spec": spec.clone(), "status": {"phase": "Pending",
                "initContainerStatuses": init,
                "containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "PodInitializing"}}}]}});
            cells("", "pods", &pod)[2].clone()
        };
        assert_eq!(
            status(json!([{"name": "i1", "state": {"running": {}}}])),
            "Init:0/2"
        );
        assert_eq!(
            status(
                json!([{"name": "i1", "state": {"terminated": {"exitCode": 0}}},
                {"name": "i2", "state": {"running": {}}}])
            ),
            "Init:1/2"
        );
        assert_eq!(
            status(
                json!([{"name": "i1", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}])
            ),
            "Init:Error"
        );
        assert_eq!(
            status(json!([{"name": "i1", "state": {"terminated": {"exitCode": 3}}}])),
            "Init:ExitCode:3"
        );
        assert_eq!(
            status(json!([{"name": "i1", "state": {"waiting": {"reason": "ImagePullBackOff"}}}])),
            "Init:ImagePullBackOff"
        );
        // All init containers done: the regular containers decide.
        assert_eq!(
            status(
                json!([{"name": "i1", "state": {"terminated": {"exitCode": 0}}},
                {"name": "i2", "state": {"terminated": {"exitCode": 0}}}])
            ),
            "PodInitializing"
        );
    }

    #[test]
    fn pod_sidecar_counts_and_restarts() {
        let pod = json!({
            "metadata": {"name": "p", "creationTimestamp": ago(7200)},
            "spec": {"initContainers": [{"name": "side", "restartPolicy": "Always"}],
                "containers": [{"name": "c"}],
                "readinessGates": [{"conditionType": "www.example.com/gate"}]},
            "status": {"phase": "Running",
                "conditions": [{"type": "Initialized", "status": "True"},
                    {"type": "www.example.com/gate", "status": "True"}],
                "initContainerStatuses": [{"name": "side", "started": true, "ready": true,
                    "restartCount": 1, "state": {"running": {}},
                    "lastState": {"terminated": {"finishedAt": ago(600)}}}],
                "containerStatuses": [{"name": "c", "ready": true, "restartCount": 2,
                    "state": {"running": {}},
                    "lastState": {"terminated": {"finishedAt": ago(125)}}}]}
        });
        let row = cells("", "pods", &pod);
        assert_eq!(row[1], "2/2");
        assert_eq!(row[2], "Running");
        assert_eq!(row[3], "3 (2m5s ago)");
        assert_eq!(row[4], "120m");
        assert_eq!(row[5], "<none>");
        assert_eq!(row[8], "1/1");
    }

    #[test]
    fn service_rows() {
        let svc = |spec: Value, status: Value| {
            cells(
                "",
                "services",
                &json!({"metadata": {"name": "s"}, "spec": spec, "status": status}),
            )
        };
        let row = svc(
            json!({"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                "selector": {"b": "2", "a": "1"}}),
            json!({}),
        );
        assert_eq!(row[1], "ClusterIP");
        assert_eq!(row[2], "10.96.0.1");
        assert_eq!(row[3], "<none>");
        assert_eq!(row[4], "80/TCP,53/UDP");
        assert_eq!(row[5], "<unknown>");
        assert_eq!(row[6], "a=1,b=2");

        let row = svc(
            json!({"type": "NodePort", "clusterIPs": ["10.96.0.2"], "externalIPs": ["1.2.3.4"],
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}),
            json!({}),
        );
        assert_eq!(row[3], "1.2.3.4");
        assert_eq!(row[4], "80:30080/TCP");
        assert_eq!(row[6], "<none>");

        let row = svc(json!({"type": "LoadBalancer", "ports": []}), json!({}));
        assert_eq!(row[2], "<none>");
        assert_eq!(row[3], "<pending>");
        assert_eq!(row[4], "<none>");

        let row = svc(
            json!({"type": "LoadBalancer", "externalIPs": ["9.9.9.9"]}),
            json!({"loadBalancer": {"ingress": [{"ip": "5.5.5.5"}, {"hostname": "lb.example.com"},
                {"ip": "5.5.5.5"}]}}),
        );
        assert_eq!(row[3], "5.5.5.5,lb.example.com,9.9.9.9");

        let row = svc(
            json!({"type": "ExternalName", "externalName": "db.example.com"}),
            json!({}),
        );
        assert_eq!(row[3], "db.example.com");
        let row = svc(json!({"clusterIPs": ["None"]}), json!({}));
        assert_eq!(row[2], "None");
        assert_eq!(row[3], "<unknown>");
    }

    #[test]
    fn deployment_rows() {
        assert_eq!(
            names("apps", "deployments"),
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        let dep = json!({
            "metadata": {"name": "d", "creationTimestamp": ago(90)},
            "spec": {"replicas": 3,
                "selector": {"matchLabels": {"app": "web"},
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]},
                        {"key": "zz", "operator": "DoesNotExist"}]},
                "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1"},
                    {"name": "side", "image": "busybox"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
        });
        assert_eq!(
            cells("apps", "deployments", &dep),
            vec![
                json!("d"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("90s"),
                json!("nginx,side"),
                json!("nginx:1,busybox"),
                json!("app=web,tier in (a,b),!zz")
            ]
        );
        // Missing replicas default to 1; no status means zeros.
        let row = cells("apps", "deployments", &json!({"metadata": {"name": "x"}}));
        assert_eq!(row[1], "0/1");
        assert_eq!(row[2], 0);
        assert_eq!(row[7], "");
        let bad = json!({"spec": {"selector": {"matchExpressions": [{"key": "k", "operator": "Bogus"}]}}});
        assert_eq!(cells("apps", "deployments", &bad)[7], "<invalid>");
        assert_eq!(cells("apps", "replicasets", &bad)[7], "<error>");
        assert_eq!(cells("apps", "replicasets", &json!({}))[7], "<none>");
    }

    #[test]
    fn job_rows() {
        assert_eq!(
            names("batch", "jobs"),
            [
                "Name",
                "Status",
                "Completions",
                "Duration",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        let job = json!({
            "metadata": {"name": "j", "creationTimestamp": ago(600)},
            "spec": {"completions": 3, "parallelism": 2,
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
                "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
            "status": {"succeeded": 3, "startTime": ago(600), "completionTime": ago(375),
                "conditions": [{"type": "Complete", "status": "True"}]}
        });
        assert_eq!(
            cells("batch", "jobs", &job),
            vec![
                json!("j"),
                json!("Complete"),
                json!("3/3"),
                json!("3m45s"),
                json!("10m"),
                json!("pi"),
                json!("perl"),
                json!("batch.kubernetes.io/controller-uid=u")
            ]
        );
        let running = json!({"spec": {"parallelism": 4}, "status": {"startTime": ago(30)}});
        let row = cells("batch", "jobs", &running);
        assert_eq!(row[1], "Running");
        assert_eq!(row[2], "0/1 of 4");
        assert_eq!(row[3], "30s");
        let row = cells("batch", "jobs", &json!({}));
        assert_eq!(row[2], "0/1");
        assert_eq!(row[3], "");
        let status = |conds: Value, deleting: bool| {
            let mut j = json!({"status": {"conditions": conds}});
            if deleting {
                j["metadata"] = json!({"deletionTimestamp": ago(1)});
            }
            cells("batch", "jobs", &j)[1].clone()
        };
        assert_eq!(
            status(json!([{"type": "Failed", "status": "True"}]), true),
            "Failed"
        );
        assert_eq!(status(json!([]), true), "Terminating");
        assert_eq!(
            status(json!([{"type": "Suspended", "status": "True"}]), false),
            "Suspended"
        );
        assert_eq!(
            status(json!([{"type": "FailureTarget", "status": "True"}]), false),
            "FailureTarget"
        );
        assert_eq!(
            status(json!([{"type": "Complete", "status": "False"}]), false),
            "Running"
        );
    }

    #[test]
    fn cronjob_rows() {
        let cj = json!({"metadata": {"name": "c", "creationTimestamp": ago(60)},
            "spec": {"schedule": "*/5 * * * *", "suspend": false,
                "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "x", "image": "y"}]}}}}},
            "status": {"active": [{}, {}], "lastScheduleTime": ago(45)}});
        assert_eq!(
            cells("batch", "cronjobs", &cj),
            vec![
                json!("c"),
                json!("*/5 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(2),
                json!("45s"),
                json!("60s"),
                json!("x"),
                json!("y"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn node_rows_and_roles() {
        let node = json!({
            "metadata": {"name": "n1", "creationTimestamp": ago(3 * 86400),
                "labels": {"node-role.kubernetes.io/control-plane": "",
                    "node-role.kubernetes.io/worker": "", "kubernetes.io/role": "master",
                    "node-role.kubernetes.io/": "x", "other": "y"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "n1"},
                    {"type": "InternalIP", "address": "192.168.0.2"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian",
                    "kernelVersion": "6.1", "containerRuntimeVersion": "containerd://2.0"}}
        });
        assert_eq!(
            cells("", "nodes", &node),
            vec![
                json!("n1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,master,worker"),
                json!("3d"),
                json!("v1.33.0"),
                json!("192.168.0.2"),
                json!("<none>"),
                json!("Debian"),
                json!("6.1"),
                json!("containerd://2.0")
            ]
        );
        let row = cells(
            "",
            "nodes",
            &json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
        );
        assert_eq!(row[1], "NotReady");
        assert_eq!(row[2], "<none>");
        assert_eq!(row[7], "<unknown>");
        assert_eq!(cells("", "nodes", &json!({}))[1], "Unknown");
    }

    #[test]
    fn event_rows() {
        assert_eq!(
            names("", "events"),
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name"
            ]
        );
        let ev = json!({"metadata": {"name": "e1"}, "type": "Normal", "reason": "Pulled",
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{a}"},
            "source": {"component": "kubelet", "host": "n1"}, "message": " done \n",
            "firstTimestamp": ago(600), "lastTimestamp": ago(30), "count": 4});
        assert_eq!(
            cells("", "events", &ev),
            vec![
                json!("30s"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web"),
                json!("spec.containers{a}"),
                json!("kubelet, n1"),
                json!("done"),
                json!("10m"),
                json!(4),
                json!("e1")
            ]
        );
        let new = json!({"metadata": {"name": "e2"}, "type": "Warning", "reason": "X",
            "regarding": {"kind": "Node"}, "note": "n", "eventTime": "2024-06-01T11:59:00.000000Z",
            "reportingController": "ctl", "series": {"count": 7, "lastObservedTime": ago(5)}});
        let row = cells("events.k8s.io", "events", &new);
        assert_eq!(row[0], "5s");
        assert_eq!(row[3], "node");
        assert_eq!(row[5], "ctl");
        assert_eq!(row[6], "n");
        assert_eq!(row[7], "60s");
        assert_eq!(row[8], 7);
        let row = cells("", "events", &json!({}));
        assert_eq!(row[0], "<unknown>");
        assert_eq!(row[8], 1);
    }

    #[test]
    fn misc_core_rows() {
        let ep = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}],
            "ports": [{"port": 80}, {"port": 443}]}]});
        assert_eq!(
            cells("", "endpoints", &ep)[1],
            "10.0.0.1:80,[fd00::1]:80,10.0.0.1:443 + 1 more..."
        );
        assert_eq!(cells("", "endpoints", &json!({}))[1], "<none>");
        let cm = json!({"data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}});
        assert_eq!(cells("", "configmaps", &cm)[1], 3);
        let secret = json!({"type": "Opaque", "data": {"a": ""}});
        assert_eq!(
            cells("", "secrets", &secret)[1..3],
            [json!("Opaque"), json!(1)]
        );
        assert_eq!(cells("", "serviceaccounts", &json!({}))[1], 0);
        assert_eq!(
            cells("", "namespaces", &json!({"status": {"phase": "Active"}}))[1],
            "Active"
        );
        let pvc = json!({"metadata": {"name": "c"}, "spec": {"volumeName": "pv1", "storageClassName": "std"},
            "status": {"phase": "Bound", "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteMany", "ReadWriteOnce"]}});
        assert_eq!(
            cells("", "persistentvolumeclaims", &pvc),
            vec![
                json!("c"),
                json!("Bound"),
                json!("pv1"),
                json!("1Gi"),
                json!("RWO,RWX"),
                json!("std"),
                json!("<unset>"),
                json!("<unknown>"),
                json!("<unset>")
            ]
        );
        let pv = json!({"spec": {"claimRef": {"namespace": "ns", "name": "c"},
            "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem"},
            "metadata": {"deletionTimestamp": ago(1)}, "status": {"phase": "Bound"}});
        let row = cells("", "persistentvolumes", &pv);
        assert_eq!(row[1], "0");
        assert_eq!(row[4], "Terminating");
        assert_eq!(row[5], "ns/c");
        assert_eq!(row[10], "Filesystem");
        let rq = json!({"status": {"hard": {"pods": "10", "limits.cpu": "2", "requests.cpu": "1"},
            "used": {"pods": "3"}}});
        let row = cells("", "resourcequotas", &rq);
        assert_eq!(row[1], "pods: 3/10, requests.cpu: 0/1");
        assert_eq!(row[2], "limits.cpu: 0/2");
        let cs = json!({"conditions": [{"type": "Healthy", "status": "True", "message": "ok"}]});
        assert_eq!(
            cells("", "componentstatuses", &cs)[1..],
            [json!("Healthy"), json!("ok"), json!("")]
        );
    }

    #[test]
    fn misc_group_rows() {
        let rb = json!({"roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "g"},
                {"kind": "ServiceAccount", "namespace": "ns", "name": "sa"},
                {"kind": "User", "name": "bob"}]});
        let row = cells("rbac.authorization.k8s.io", "rolebindings", &rb);
        assert_eq!(row[1], "ClusterRole/view");
        assert_eq!(row[3..], [json!("alice, bob"), json!("g"), json!("ns/sa")]);
        let pdb = json!({"spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 1}});
        assert_eq!(
            cells("policy", "poddisruptionbudgets", &pdb)[1..4],
            [json!("2"), json!("N/A"), json!(1)]
        );
        let sts = json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 1}});
        assert_eq!(cells("apps", "statefulsets", &sts)[1], "1/3");
        let hpa = json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "maxReplicas": 5, "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
                {"type": "Pods", "pods": {"target": {"averageValue": "1k"}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {"averageValue": "1Gi"}}}]},
            "status": {"currentReplicas": 2, "currentMetrics": [
                {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 12}}}]}});
        assert_eq!(
            cells("autoscaling", "horizontalpodautoscalers", &hpa)[1..6],
            [
                json!("Deployment/web"),
                json!("cpu: 12%/80%, <unknown>/1k + 1 more..."),
                json!("<unset>"),
                json!(5),
                json!(2)
            ]
        );
        let hpa_v1 = json!({"spec": {"targetCPUUtilizationPercentage": 50, "minReplicas": 1}});
        assert_eq!(
            cells("autoscaling", "horizontalpodautoscalers", &hpa_v1)[2..4],
            [json!("cpu: <unknown>/50%"), json!("1")]
        );
        assert_eq!(
            cells("autoscaling", "horizontalpodautoscalers", &json!({}))[2],
            "<none>"
        );
        let sc = json!({"metadata": {"name": "std", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "p"});
        assert_eq!(
            cells("storage.k8s.io", "storageclasses", &sc)[..5],
            [
                json!("std (default)"),
                json!("p"),
                json!("Delete"),
                json!("Immediate"),
                json!(false)
            ]
        );
        let ing = json!({"spec": {"rules": [{"host": "a"}, {}, {"host": "b"}], "tls": [{}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "1.1.1.1"}]}}});
        assert_eq!(
            cells("networking.k8s.io", "ingresses", &ing)[1..5],
            [
                json!("<none>"),
                json!("a,b"),
                json!("1.1.1.1"),
                json!("80, 443")
            ]
        );
        let np = json!({"spec": {}});
        assert_eq!(
            cells("networking.k8s.io", "networkpolicies", &np)[1],
            "<none>"
        );
        let csr = json!({"spec": {"signerName": "kubernetes.io/kube-apiserver-client",
            "username": "alice", "expirationSeconds": 86400},
            "status": {"conditions": [{"type": "Approved"}], "certificate": "Zm9v"}});
        assert_eq!(
            cells("certificates.k8s.io", "certificatesigningrequests", &csr)[2..],
            [
                json!("kubernetes.io/kube-apiserver-client"),
                json!("alice"),
                json!("24h"),
                json!("Approved,Issued")
            ]
        );
        let cr = json!({"revision": 3, "metadata": {"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "controller": true}]}});
        assert_eq!(
            cells("apps", "controllerrevisions", &cr)[1..3],
            [json!("statefulset.apps/db"), json!(3)]
        );
        let es = json!({"addressType": "IPv4", "ports": [{"port": 80}, {"name": "x"}, {}],
            "endpoints": [{"addresses": ["10.0.0.1", "10.0.0.2"]}]});
        assert_eq!(
            cells("discovery.k8s.io", "endpointslices", &es)[1..4],
            [json!("IPv4"), json!("80,x,*"), json!("10.0.0.1,10.0.0.2")]
        );
        let api = json!({"spec": {"service": {"namespace": "kube-system", "name": "metrics"}},
            "status": {"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints"}]}});
        assert_eq!(
            cells("apiregistration.k8s.io", "apiservices", &api)[1..3],
            [
                json!("kube-system/metrics"),
                json!("False (MissingEndpoints)")
            ]
        );
        assert_eq!(
            cells("apiregistration.k8s.io", "apiservices", &json!({}))[1..3],
            [json!("Local"), json!("Unknown")]
        );
        let plc = json!({"spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 30,
            "limitResponse": {"queuing": {"queues": 64, "handSize": 6, "queueLengthLimit": 50}}}}});
        assert_eq!(
            cells(
                "flowcontrol.apiserver.k8s.io",
                "prioritylevelconfigurations",
                &plc
            )[1..6],
            [json!("Limited"), json!(30), json!(64), json!(6), json!(50)]
        );
        let vapb = json!({"spec": {"policyName": "p", "paramRef": {"selector": {"matchLabels": {"a": "b"}}}}});
        assert_eq!(
            cells("admissionregistration.k8s.io", "validatingadmissionpolicybindings", &vapb)[2],
            "&LabelSelector{MatchLabels:map[string]string{a: b,},MatchExpressions:[]LabelSelectorRequirement{},}"
        );
    }
}
