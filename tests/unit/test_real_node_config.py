"""The real node's generated configs and images, without starting anything."""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import tarfile
from pathlib import Path

from localcluster import launcher, node, nodeclean, nodedns, nodeimage
from localcluster.paths import Paths


def read_archive(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_an_image_archive_is_an_oci_layout_naming_one_image():
    layer = nodeimage.layer({"bin/tool": b"\x7fELF"}, {"bin/sh": "tool"}, tmp=True)
    files = read_archive(nodeimage.oci_archive("ciclo.local/x:1", layer, ["/bin/tool"]))
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    (entry,) = json.loads(files["index.json"])["manifests"]
    assert entry["annotations"] == {"io.containerd.image.name": "ciclo.local/x:1"}
    for name, data in files.items():  # every blob is stored under its own digest
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]
    manifest = json.loads(files["blobs/sha256/" + entry["digest"].removeprefix("sha256:")])
    config_blob = files["blobs/sha256/" + manifest["config"]["digest"].removeprefix("sha256:")]
    config = json.loads(config_blob)
    assert config["config"]["Cmd"] == ["/bin/tool"]
    assert config["rootfs"]["diff_ids"] == [manifest["layers"][0]["digest"]]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["tmp"].mode == 0o1777
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "tool"


def test_the_pods_addresses_are_apart_from_services_and_fake_nodes():
    subnet = ipaddress.ip_network(node.SUBNET)
    assert ipaddress.ip_address(node.HOST_ADDRESS) in subnet
    assert not subnet.overlaps(ipaddress.ip_network(launcher.SERVICE_RANGE))
    for i in range(4):  # KWOK nodes' pod CIDRs
        fake = launcher.fake_node(i)["spec"]["podCIDR"]  # type: ignore[index]
        assert not subnet.overlaps(ipaddress.ip_network(fake))


def test_the_api_servers_certificate_names_the_kubernetes_services_cluster_ip(tmp_path: Path):
    """Pods reach the API server at the `kubernetes` Service (its range's first address)."""
    services = ipaddress.ip_network(launcher.SERVICE_RANGE)
    assert str(next(services.hosts())) == launcher.API_SERVICE_IP
    paths = Paths(cache=tmp_path, name="c")
    paths.state.mkdir(parents=True)
    config = json.loads(launcher.kwokctl_config(paths).read_text())
    assert config["kind"] == "KwokctlConfiguration"
    assert config["options"]["kubeApiserverCertSANs"] == [launcher.API_SERVICE_IP]


def test_configs_keep_everything_under_the_node_directory_but_the_images(tmp_path: Path):
    np = node.NodePaths(tmp_path / "node", tmp_path / "containerd")
    containerd = node.containerd_config(np)
    assert f'root = "{np.images}"' in containerd  # kept by `down`: no import on every `up`
    assert f'state = "{np.root}/' in containerd
    assert f'address = "{np.socket}"' in containerd
    assert "restrict_oom_score_adj = true" in containerd
    assert "SystemdCgroup = false" in containerd
    assert f'sandbox_image = "{nodeimage.PAUSE_IMAGE}"' in containerd
    cni = node.cni_config(np)
    bridge = cni["plugins"][0]  # type: ignore[index]
    assert bridge["bridge"] == node.BRIDGE and bridge["ipam"]["dataDir"] == str(np.ipam)
    kubelet = node.kubelet_config(np, tmp_path / "ca.crt")
    assert kubelet["failCgroupV1"] is False and kubelet["cgroupDriver"] == "cgroupfs"
    assert kubelet["registerWithTaints"] == [
        {"key": node.TAINT, "value": "true", "effect": "NoSchedule"}
    ]
    assert str(kubelet["podLogsDir"]).startswith(str(np.root))


def test_only_kubelets_and_portmaps_chains_are_removed():
    assert nodeclean.ours("KUBE-FIREWALL") and nodeclean.ours("CNI-HOSTPORT-DNAT")
    assert not nodeclean.ours("INPUT") and not nodeclean.ours("DOCKER-USER")


def test_kube_proxy_opens_nothing_on_loopback_or_the_external_interface(tmp_path: Path):
    config = node.kube_proxy_config(tmp_path / "kubeconfig")
    assert config["nodePortAddresses"] == [f"{node.HOST_ADDRESS}/32"]
    assert config["iptables"] == {"masqueradeAll": True, "localhostNodePorts": False}
    assert str(config["metricsBindAddress"]).startswith("127.0.0.1:")


def test_coredns_serves_the_cluster_on_the_bridge_and_forwards_nothing(tmp_path: Path):
    corefile = nodedns.corefile(node.HOST_ADDRESS, tmp_path / "kubeconfig", 40001)
    assert corefile.count(f"bind {node.HOST_ADDRESS}\n") == 2  # every block
    assert "health 127.0.0.1:40001" in corefile
    assert f"kubeconfig {tmp_path / 'kubeconfig'}" in corefile
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa {" in corefile
    assert "forward" not in corefile and "prometheus" not in corefile
    assert ipaddress.ip_address(node.HOST_ADDRESS) in ipaddress.ip_network(node.SUBNET)
    kubelet = node.kubelet_config(node.NodePaths(tmp_path, tmp_path), tmp_path / "ca.crt")
    assert kubelet["clusterDNS"] == [node.HOST_ADDRESS]
    assert kubelet["clusterDomain"] == "cluster.local"


def test_a_dns_reply_is_read_for_its_rcode_and_addresses():
    question = b"\x03web\x07default\x03svc\x07cluster\x05local\x00" + b"\x00\x01\x00\x01"
    answer = (
        b"\xc0\x0c" + b"\x00\x01\x00\x01" + b"\x00\x00\x00\x05" + b"\x00\x04" + b"\x0a\x00\x00\x07"
    )
    reply = b"\x12\x34\x85\x00\x00\x01\x00\x01\x00\x00\x00\x00" + question + answer
    assert nodedns._parse(reply, 0x1234) == (0, ["10.0.0.7"])
    nxdomain = b"\x12\x34\x85\x03\x00\x01\x00\x00\x00\x00\x00\x00" + question
    assert nodedns._parse(nxdomain, 0x1234) == (nodedns.NXDOMAIN, [])


def test_the_ciclo_images_id_is_read_from_the_docker_archives_manifest(tmp_path: Path):
    archive = tmp_path / "ciclo.tar"
    config = hashlib.sha256(b"{}").hexdigest()
    manifest = [{"Config": f"{config}.json", "RepoTags": ["x:1"], "Layers": ["l.tar"]}]
    with tarfile.open(archive, "w") as tar:
        for name, data in (("l.tar", b"\0" * 1024), ("manifest.json", json.dumps(manifest))):
            blob = data if isinstance(data, bytes) else data.encode()
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    assert node.archive_image_id(archive) == f"sha256:{config}"
