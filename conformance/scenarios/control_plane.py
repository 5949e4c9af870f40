"""What the control plane itself keeps: the `kubernetes` Service's Endpoints and EndpointSlice name the
apiserver's address and secure port (upstream's endpoint reconciler), with upstream's labels."""

from __future__ import annotations

import socket

from harness import T, scenario, jget


def primary_address() -> str | None:
    """This host's address on its default route (a UDP connect sends nothing), as the server picks it."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 9))
            ip = s.getsockname()[0]
    except OSError:
        return None
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


@scenario
def kubernetes_service_endpoints(t: T) -> None:
    """The `kubernetes` Service has Endpoints and an EndpointSlice pointing at the apiserver (address and
    secure port), labelled as upstream's reconciler labels them."""
    port = t.server.port
    # The server binds 127.0.0.1 here; endpoints may not name loopback, so it advertises the host's
    # primary address, as upstream picks its --advertise-address.
    ip = primary_address()
    if ip is None:
        # No routable address: endpoints may not name loopback, so there are none (and the log says so).
        out = t.ok("get", "endpointslices", "-n", "default", "-l", "kubernetes.io/service-name=kubernetes", "-o", "name")
        t.eq(out.strip(), "", "no EndpointSlice without a routable address")
        return
    slices = t.json("get", "endpointslices", "-n", "default", "-l", "kubernetes.io/service-name=kubernetes")
    t.eq([jget(s, "metadata.name") for s in slices["items"]], ["kubernetes"], "the kubernetes EndpointSlice")
    s = slices["items"][0]
    t.eq((s.get("addressType"), s.get("ports")), ("IPv4", [{"name": "https", "port": port, "protocol": "TCP"}]),
         "slice address type and port")
    t.eq([(e.get("addresses"), jget(e, "conditions.ready")) for e in s.get("endpoints", [])],
         [([ip], True)], "slice endpoint")
    ep = t.json("get", "endpoints", "kubernetes", "-n", "default")
    t.eq(jget(ep, "metadata.labels"), {"endpointslice.kubernetes.io/skip-mirror": "true"}, "Endpoints labels")
    t.eq(ep.get("subsets"), [{"addresses": [{"ip": ip}],
                             "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}], "Endpoints subsets")
    out = t.ok("get", "endpoints", "kubernetes", "-n", "default")
    t.contains(out, f"{ip}:{port}", "kubectl get endpoints shows the apiserver")
