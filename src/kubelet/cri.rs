//! The kubelet's connection to its container runtime: CRI v1 over gRPC on a unix socket, as
//! upstream's kubelet speaks it to containerd (`--container-runtime-endpoint unix:///run/containerd/containerd.sock`).
//!
//! [`Cri`] wraps the generated RuntimeService and ImageService clients with a deadline on every call
//! (upstream's default runtime request timeout is 2 minutes; pulls get longer) and turns gRPC
//! statuses into errors that carry the runtime's message, which is what a pod's waiting state shows.

use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::{Channel, Endpoint, Uri};

/// Upstream's --runtime-request-timeout default.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Image pulls may take longer than other calls.
const PULL_TIMEOUT: Duration = Duration::from_secs(600);

/// An error from the runtime: the gRPC status code and the runtime's own message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CriError {
    pub code: tonic::Code,
    pub message: String,
}

impl From<tonic::Status> for CriError {
    fn from(s: tonic::Status) -> Self {
        CriError {
            code: s.code(),
            message: format!("rpc error: code = {:?} desc = {}", s.code(), s.message()),
        }
    }
}

type Result<T> = std::result::Result<T, CriError>;

/// A CRI runtime: cheap to clone (the channel multiplexes calls over one connection).
#[derive(Clone)]
pub struct Cri {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

fn request<T>(msg: T, timeout: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(timeout);
    r
}

impl Cri {
    /// Connects to `endpoint` (`unix:///path` or a bare path) and checks that it speaks CRI v1.
    pub async fn connect(endpoint: &str) -> anyhow::Result<Cri> {
        let path = endpoint
            .strip_prefix("unix://")
            .unwrap_or(endpoint)
            .to_string();
        if !endpoint.starts_with("unix://") && !endpoint.starts_with('/') {
            anyhow::bail!("container runtime endpoint {endpoint:?}: only unix sockets are supported (unix:///path)");
        }
        // The URI is unused: every connection goes to the socket.
        let channel = Endpoint::try_from("http://[::]:0")?
            .connect_timeout(Duration::from_secs(10))
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .map_err(|e| anyhow::anyhow!("connecting to {endpoint}: {e}"))?;
        let cri = Cri {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        };
        cri.version()
            .await
            .map_err(|e| anyhow::anyhow!("{endpoint} does not answer CRI v1: {e}"))?;
        Ok(cri)
    }

    /// `<runtime name>://<version>` as nodeInfo.containerRuntimeVersion shows it.
    pub async fn version(&self) -> Result<String> {
        let v = self
            .runtime
            .clone()
            .version(request(
                VersionRequest {
                    version: "v1".into(),
                },
                REQUEST_TIMEOUT,
            ))
            .await?
            .into_inner();
        Ok(format!("{}://{}", v.runtime_name, v.runtime_version))
    }

    /// Tells the runtime the node's pod CIDR (containerd renders its CNI config template with it).
    pub async fn update_pod_cidr(&self, cidr: &str) -> Result<()> {
        self.runtime
            .clone()
            .update_runtime_config(request(
                UpdateRuntimeConfigRequest {
                    runtime_config: Some(RuntimeConfig {
                        network_config: Some(NetworkConfig {
                            pod_cidr: cidr.into(),
                        }),
                    }),
                },
                REQUEST_TIMEOUT,
            ))
            .await?;
        Ok(())
    }

    pub async fn run_sandbox(&self, config: PodSandboxConfig) -> Result<String> {
        Ok(self
            .runtime
            .clone()
            .run_pod_sandbox(request(
                RunPodSandboxRequest {
                    config: Some(config),
                    runtime_handler: String::new(),
                },
                REQUEST_TIMEOUT,
            ))
            .await?
            .into_inner()
            .pod_sandbox_id)
    }

    pub async fn stop_sandbox(&self, id: &str) -> Result<()> {
        self.runtime
            .clone()
            .stop_pod_sandbox(request(
                StopPodSandboxRequest {
                    pod_sandbox_id: id.into(),
                },
                REQUEST_TIMEOUT,
            ))
            .await?;
        Ok(())
    }

    pub async fn remove_sandbox(&self, id: &str) -> Result<()> {
        self.runtime
            .clone()
            .remove_pod_sandbox(request(
                RemovePodSandboxRequest {
                    pod_sandbox_id: id.into(),
                },
                REQUEST_TIMEOUT,
            ))
            .await?;
        Ok(())
    }

    pub async fn sandbox_status(&self, id: &str) -> Result<Option<PodSandboxStatus>> {
        Ok(self
            .runtime
            .clone()
            .pod_sandbox_status(request(
                PodSandboxStatusRequest {
                    pod_sandbox_id: id.into(),
                    verbose: false,
                },
                REQUEST_TIMEOUT,
            ))
            .await?
            .into_inner()
            .status)
    }

    pub async fn list_sandboxes(&self) -> Result<Vec<PodSandbox>> {
        Ok(self
            .runtime
            .clone()
            .list_pod_sandbox(request(
                ListPodSandboxRequest { filter: None },
                REQUEST_TIMEOUT,
            ))
            .await?
            .into_inner()
            .items)
    }

    pub async fn list_containers(&self) -> Result<Vec<Container>> {
        Ok(self
            .runtime
            .clone()
            .list_containers(request(
                ListContainersRequest { filter: None },
                REQUEST_TIMEOUT,
            ))
            .await?
            .into_inner()
            .containers)
    }

    /// The usage of every container that has a task (`ListContainerStats`).
    pub async fn container_stats(&self) -> Result<Vec<ContainerStats>> {
        Ok(self
            .runtime
            .clone()
            .list_container_stats(request(
                ListContainerStatsRequest { filter: None },
                REQUEST_TIMEOUT,
            ))
            .await?
            .into_inner()
            .stats)
    }

    pub async fn container_status(&self, id: &str) -> Result<Option<ContainerStatus>> {
        Ok(self
            .runtime
            .clone()
            .container_status(request(
                ContainerStatusRequest {
                    container_id: id.into(),
                    verbose: false,
                },
                REQUEST_TIMEOUT,
            ))
            .await?
            .into_inner()
            .status)
    }

    pub async fn create_container(
        &self,
        sandbox_id: &str,
        config: ContainerConfig,
        sandbox: PodSandboxConfig,
    ) -> Result<String> {
        Ok(self
            .runtime
            .clone()
            .create_container(request(
                CreateContainerRequest {
                    pod_sandbox_id: sandbox_id.into(),
                    config: Some(config),
                    sandbox_config: Some(sandbox),
                },
                REQUEST_TIMEOUT,
            ))
            .await?
            .into_inner()
            .container_id)
    }

    pub async fn start_container(&self, id: &str) -> Result<()> {
        self.runtime
            .clone()
            .start_container(request(
                StartContainerRequest {
                    container_id: id.into(),
                },
                REQUEST_TIMEOUT,
            ))
            .await?;
        Ok(())
    }

    /// Stops a container: SIGTERM, then SIGKILL after `grace` (the runtime does both).
    pub async fn stop_container(&self, id: &str, grace: i64) -> Result<()> {
        let wait = Duration::from_secs(grace.max(0) as u64) + REQUEST_TIMEOUT;
        self.runtime
            .clone()
            .stop_container(request(
                StopContainerRequest {
                    container_id: id.into(),
                    timeout: grace.max(0),
                },
                wait,
            ))
            .await?;
        Ok(())
    }

    pub async fn remove_container(&self, id: &str) -> Result<()> {
        self.runtime
            .clone()
            .remove_container(request(
                RemoveContainerRequest {
                    container_id: id.into(),
                },
                REQUEST_TIMEOUT,
            ))
            .await?;
        Ok(())
    }

    /// Runs `cmd` in a container and waits for it (exec probes), up to `timeout`.
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecSyncResponse> {
        Ok(self
            .runtime
            .clone()
            .exec_sync(request(
                ExecSyncRequest {
                    container_id: id.into(),
                    cmd,
                    timeout: timeout.as_secs().max(1) as i64,
                },
                timeout + Duration::from_secs(5),
            ))
            .await?
            .into_inner())
    }

    /// A streaming URL for running `cmd` in a container (`kubectl exec`), served by the runtime.
    pub async fn exec(&self, req: ExecRequest) -> Result<String> {
        Ok(self
            .runtime
            .clone()
            .exec(request(req, REQUEST_TIMEOUT))
            .await?
            .into_inner()
            .url)
    }

    /// A streaming URL for attaching to a container's own streams (`kubectl attach`).
    pub async fn attach(&self, req: AttachRequest) -> Result<String> {
        Ok(self
            .runtime
            .clone()
            .attach(request(req, REQUEST_TIMEOUT))
            .await?
            .into_inner()
            .url)
    }

    /// A streaming URL for forwarding ports into a sandbox's network namespace (`kubectl port-forward`).
    pub async fn port_forward(&self, sandbox_id: &str, ports: Vec<i32>) -> Result<String> {
        Ok(self
            .runtime
            .clone()
            .port_forward(request(
                PortForwardRequest {
                    pod_sandbox_id: sandbox_id.into(),
                    port: ports,
                },
                REQUEST_TIMEOUT,
            ))
            .await?
            .into_inner()
            .url)
    }

    /// The image's ID if the runtime has it (`None`: not present).
    pub async fn image_id(&self, image: &str) -> Result<Option<String>> {
        Ok(self
            .images
            .clone()
            .image_status(request(
                ImageStatusRequest {
                    image: Some(ImageSpec {
                        image: image.into(),
                        ..Default::default()
                    }),
                    verbose: false,
                },
                REQUEST_TIMEOUT,
            ))
            .await?
            .into_inner()
            .image
            .map(|i| i.id))
    }

    /// Where the runtime keeps its images (CRI `ImageFsInfo`: the first image filesystem's mount
    /// point), for the eviction manager's `imagefs.*` signals.
    pub async fn image_fs(&self) -> Result<Option<String>> {
        Ok(self
            .images
            .clone()
            .image_fs_info(request(k8s_cri::v1::ImageFsInfoRequest {}, REQUEST_TIMEOUT))
            .await?
            .into_inner()
            .image_filesystems
            .into_iter()
            .find_map(|f| f.fs_id.map(|id| id.mountpoint))
            .filter(|m| !m.is_empty()))
    }

    /// Every image the runtime has.
    pub async fn list_images(&self) -> Result<Vec<Image>> {
        Ok(self
            .images
            .clone()
            .list_images(request(ListImagesRequest { filter: None }, REQUEST_TIMEOUT))
            .await?
            .into_inner()
            .images)
    }

    /// Removes an image (by ID or reference); an image already gone is not an error (CRI's contract).
    pub async fn remove_image(&self, image: &str) -> Result<()> {
        self.images
            .clone()
            .remove_image(request(
                RemoveImageRequest {
                    image: Some(ImageSpec {
                        image: image.into(),
                        ..Default::default()
                    }),
                },
                REQUEST_TIMEOUT,
            ))
            .await?;
        Ok(())
    }

    /// The sandbox ("pause") image the runtime starts pods with, when it says (containerd's verbose
    /// `Status` carries its CRI config, `sandboxImage` in it); `None` when it does not.
    pub async fn sandbox_image(&self) -> Result<Option<String>> {
        let info = self
            .runtime
            .clone()
            .status(request(StatusRequest { verbose: true }, REQUEST_TIMEOUT))
            .await?
            .into_inner()
            .info;
        Ok(info
            .get("config")
            .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
            .and_then(|c| c.get("sandboxImage")?.as_str().map(str::to_string))
            .filter(|i| !i.is_empty()))
    }

    /// Pulls `image`, with registry credentials when given; returns the image reference the
    /// runtime resolved.
    pub async fn pull(&self, image: &str, auth: Option<AuthConfig>) -> Result<String> {
        Ok(self
            .images
            .clone()
            .pull_image(request(
                PullImageRequest {
                    image: Some(ImageSpec {
                        image: image.into(),
                        ..Default::default()
                    }),
                    auth,
                    sandbox_config: None,
                },
                PULL_TIMEOUT,
            ))
            .await?
            .into_inner()
            .image_ref)
    }
}
