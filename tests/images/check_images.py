"""Runs the function images as the cluster runs them, and checks what they hold.

For every image in target/images/images.json (scripts/images):
- static checks on the OCI layout: the config (user 65532, entrypoint, port, labels, the
  commit's date), the files (the binary, the CA certificates, /etc/passwd and /etc/group;
  no shell, nothing writable, all root's), the CA bundle (the roots Azure's endpoints
  chain to), the SBOM (the binary's digest, its crates);
- `podman load` of its archive, then a run with the command, environment, user and
  read-only root filesystem of the generated Deployment in keda/dev, under podman with
  runc, on the host's network. Only these differ from the cluster, each for a reason:
  - PORT: every Deployment listens on 8080 in its own pod; here the containers share one
    network, so each gets a free port;
  - SERVICEBUS_NAMESPACE becomes AMQP_URL at the same host name: no Service Bus runs
    here, RabbitMQ's AMQP 1.0 plugin stands in;
  - /etc/resolv.conf is the one a kubelet writes for the namespace (search domains,
    ndots:5) pointing at a DNS stand-in (dnsmasq) that answers the cluster's names and the
    Azure host names with 127.0.0.1, so every URL keeps the host name it has in the
    Deployment and resolves inside the image as it would in the pod;
  - the CSI mount at /mnt/secrets-store holds files named as the SecretProviderClass
    objects, with values for the local servers;
  - /etc/ssl/certs/ca-certificates.crt is the image's own bundle plus a throwaway CA,
    which signed the certificate of a TLS-only Redis that requires the access key, so
    delivery's `rediss://` connection proves the binary trusts the bundle at that path;
  - the HTTP add-on's interceptor (`keda-http-interceptor:8080`) is `fabrikam gateway`,
    which routes on the same declared path prefixes;
  - the scaler (`fabrikam-scaler`, port 80 of its Service) is reached at its own free port
    (SCALER_URL), serves gRPC on another, and reads the queue's backlog from RabbitMQ's
    management API (RABBITMQ_MANAGEMENT_URL) in place of Service Bus's runtime properties;
    a pod's name (POD_NAME, from the downward API) is the container's.
- the five together then serve the README walk-through: a POST through the interceptor,
  then the delivery is readable with a drone;
- SIGTERM, as a pod's deletion sends it: each container drains and exits 0 within the
  Deployment's terminationGracePeriodSeconds.

It also pushes them with scripts/push-images to a local registry (Debian docker-registry)
and checks the registry serves each at the digest built.

Needs root (podman, DNS on port 53), RabbitMQ on 5672 with the `deliveries` queue and the
MongoDB-compatible server on 27017 (scripts/services), and ports 8080 and 6380 free.
"""

import argparse
import contextlib
import hashlib
import io
import json
import os
import pathlib
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
USER = "65532:65532"
# The roots Azure's public endpoints (Service Bus, Key Vault, Entra, Redis, Cosmos DB)
# chain to, per Microsoft's Azure Certificate Authority details.
AZURE_ROOTS = (
    "DigiCert Global Root G2",
    "DigiCert Global Root CA",
    "Microsoft RSA Root Certificate Authority 2017",
)
DNS_ADDRESS = "127.0.0.153"
MONGODB = "fabrikam-dev-cosmos.mongo.cosmos.azure.com"
# Values of the Key Vault objects for the local servers, by object name.
REDIS_PASSWORD = "local-" + uuid.uuid4().hex
SECRET_VALUES = {
    "Redis-AccessKey": REDIS_PASSWORD,
    "MongoDb-ConnectionString": f"mongodb://{MONGODB}:27017/?directConnection=true&retryWrites=false",
}


# podman (rootful, with runc) and a DNS server on port 53 need root: through sudo when this
# runs as another user, as on a CI runner.
AS_ROOT = [] if os.geteuid() == 0 else ["sudo", "-n"]


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def log(message):
    print(f"==> {message}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port, host="127.0.0.1"):
    with socket.socket() as s:
        # As servers bind: a connection of a run just ended may linger in TIME_WAIT.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def http(method, url, body=None, headers=None, timeout=5):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# --- static checks ------------------------------------------------------------------------


def blob(layout, digest):
    return (layout / "blobs" / digest.replace(":", "/", 1)).read_bytes()


def check_layout(images_dir, entry, epoch):
    """The image as the layout holds it: config, files, CA bundle, SBOM."""
    function = entry["function"]
    layout = images_dir / entry["layout"]
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    check(manifest_digest == entry["digest"], f"{function}: index.json and images.json disagree")
    manifest = json.loads(blob(layout, manifest_digest))
    config = json.loads(blob(layout, manifest["config"]["digest"]))
    c = config["config"]
    binary = f"/usr/local/bin/{function}"
    check(c.get("User") == USER, f"{function}: runs as {c.get('User')!r}, not {USER}")
    check(c.get("Entrypoint") == [binary], f"{function}: entrypoint {c.get('Entrypoint')}")
    check("8080/tcp" in c.get("ExposedPorts", {}), f"{function}: does not expose 8080")
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    check(config.get("created") == created, f"{function}: created {config.get('created')}, not the commit's {created}")
    for label in ("source", "revision", "version", "title", "licenses", "created"):
        key = f"org.opencontainers.image.{label}"
        check(c.get("Labels", {}).get(key), f"{function}: label {key} is missing")

    files = {}
    for layer in manifest["layers"]:
        check(layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip", f"{function}: layer type")
        with tarfile.open(fileobj=io.BytesIO(blob(layout, layer["digest"])), mode="r:gz") as tar:
            for member in tar.getmembers():
                check(member.uid == 0 and member.gid == 0, f"{function}: {member.name} is not root's")
                check(member.mode & 0o022 == 0, f"{function}: {member.name} is writable by others")
                check(member.mtime == epoch, f"{function}: {member.name} is not dated at the commit")
                if member.isfile():
                    files["/" + member.name] = tar.extractfile(member).read()
                else:
                    check(member.isdir(), f"{function}: {member.name} is neither a file nor a folder")
    expected = {binary, CA_BUNDLE, "/etc/passwd", "/etc/group"}
    check(set(files) == expected, f"{function}: files {sorted(files)}, expected {sorted(expected)}")
    check(b"65532" in files["/etc/passwd"], f"{function}: no user 65532 in /etc/passwd")

    with tempfile.NamedTemporaryFile() as bundle:
        bundle.write(files[CA_BUNDLE])
        bundle.flush()
        context = ssl.create_default_context(cafile=bundle.name)
        subjects = {
            value
            for cert in context.get_ca_certs()
            for rdn in cert["subject"]
            for key, value in rdn
            if key == "commonName"
        }
    for root in AZURE_ROOTS:
        check(root in subjects, f"{function}: the CA bundle lacks {root}")

    sbom = json.loads((images_dir / entry["sbom"]).read_text())
    check(sbom["bomFormat"] == "CycloneDX", f"{function}: the SBOM is not CycloneDX")
    components = {c["name"]: c for c in sbom["components"]}
    digest = hashlib.sha256(files[binary]).hexdigest()
    check(components.get(function, {}).get("hashes", [{}])[0].get("content") == digest,
          f"{function}: the SBOM does not name the binary in the image")
    for crate in ("tokio", "runtime", "hyper"):
        check(crate in components, f"{function}: the SBOM lacks the crate {crate}")
    return len(files[binary])


def check_reproducible(images_dir, catalog):
    """A second assembly of the same commit, after touching the binaries, gives the same
    bytes: every blob, layout, archive and SBOM."""
    binaries = ROOT / "target" / "x86_64-unknown-linux-musl" / "release"
    for entry in catalog["images"]:
        os.utime(binaries / entry["function"])
    with tempfile.TemporaryDirectory() as second:
        subprocess.run([str(ROOT / "scripts" / "images"), "--out", second, "--tag", catalog["images"][0]["tag"]],
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        again = json.loads((pathlib.Path(second) / "images.json").read_text())
        check(again == catalog, "a second build gave other digests:\n"
              + "\n".join(f"{a['function']}: {a['digest']} then {b['digest']}"
                          for a, b in zip(catalog["images"], again["images"])))
        for entry in catalog["images"]:
            for name in (entry["archive"], entry["sbom"]):
                check((images_dir / name).read_bytes() == (pathlib.Path(second) / name).read_bytes(),
                      f"{name} differs between two builds")


def check_push(state):
    """scripts/push-images against a local registry (Debian docker-registry, plain HTTP):
    every image arrives under its tag, and the registry serves it at the digest built. Only
    the Entra sign-in of the Azure Container Registry path is left out."""
    port = free_port()
    (state / "registry.yml").write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {state / 'registry'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: warn\n")
    registry = subprocess.Popen(["docker-registry", "serve", str(state / "registry.yml")],
                                stdout=open(state / "registry.log", "w"), stderr=subprocess.STDOUT)
    try:
        wait_listening(port, "the registry", state / "registry.log")
        pushed = subprocess.run([str(ROOT / "scripts" / "push-images"), f"127.0.0.1:{port}", "--insecure"],
                                cwd=ROOT, capture_output=True, text=True)
        check(pushed.returncode == 0, f"scripts/push-images failed:\n{pushed.stdout}{pushed.stderr}")
        return pushed.stdout.count("@sha256:")
    finally:
        registry.terminate()
        registry.wait()


# --- running --------------------------------------------------------------------------------


class Podman:
    def __init__(self, state):
        self.base = AS_ROOT + [
            "podman", "--root", str(state / "storage"), "--runroot", str(state / "run"),
            "--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs",
            "--events-backend", "file",
        ]

    def __call__(self, *args, check=True, capture=True):
        r = subprocess.run(self.base + list(args), capture_output=capture, text=True)
        if check and r.returncode != 0:
            raise Failure(f"podman {' '.join(args[:2])} failed: {r.stderr.strip()}")
        return r


def deployment_of(manifests, function):
    docs = list(yaml.safe_load_all((manifests / f"{function}.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs if d}
    return kinds["Deployment"], kinds.get("SecretProviderClass")


def secret_objects(spc):
    objects = yaml.safe_load(spc["spec"]["parameters"]["objects"])["array"]
    return [yaml.safe_load(o)["objectName"] for o in objects]


def make_tls(state, host):
    """A throwaway CA and a server certificate for `host`, signed by it."""
    tls = state / "tls"
    tls.mkdir()

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, cwd=tls, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=fabrikam check CA",
            "-keyout", "ca.key", "-out", "ca.crt")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}", "-keyout", "server.key", "-out", "server.csr")
    (tls / "ext.cnf").write_text(f"subjectAltName=DNS:{host}\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "1", "-extfile", "ext.cnf", "-out", "server.crt")
    return tls


def start_redis_tls(state, tls, port):
    process = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(tls / "server.crt"), "--tls-key-file", str(tls / "server.key"),
         "--tls-ca-cert-file", str(tls / "ca.crt"), "--tls-auth-clients", "no",
         "--requirepass", REDIS_PASSWORD, "--save", "", "--appendonly", "no", "--dir", str(state)],
        stdout=open(state / "redis.log", "w"), stderr=subprocess.STDOUT)
    wait_listening(port, "the TLS Redis", state / "redis.log")
    return process


def start_dns(state, names):
    """dnsmasq answering `names` with 127.0.0.1 (A; AAAA has no data) and every other
    name under cluster.local with NXDOMAIN, as CoreDNS answers for services that do not
    exist: with ndots:5 a resolver tries each search domain before the name itself."""
    records = [f"--host-record={name},127.0.0.1" for name in sorted(names)]
    # Local, so that a question dnsmasq has no record for (AAAA) is answered "no such
    # data" instead of being refused for want of an upstream server.
    records += [f"--local=/{name}/" for name in sorted(names)]
    process = subprocess.Popen(
        AS_ROOT + ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
         f"--listen-address={DNS_ADDRESS}", "--port=53", "--pid-file=" + str(state / "dnsmasq.pid"),
         "--log-facility=" + str(state / "dnsmasq.log"), "--log-queries",
         "--local=/cluster.local/", *records],
        stdout=subprocess.DEVNULL, stderr=open(state / "dnsmasq.err", "w"))
    time.sleep(0.5)
    check(process.poll() is None, f"dnsmasq did not start: {(state / 'dnsmasq.err').read_text()}")
    return process


def wait_listening(port, what, logfile=None, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not port_free(port):
            return
        time.sleep(0.1)
    extra = f"\n{pathlib.Path(logfile).read_text()[-2000:]}" if logfile else ""
    raise Failure(f"{what} did not listen on {port} within {seconds} s{extra}")


def run_args(function, deployment, spc, state, image, port, namespace, overrides):
    """podman run arguments from the Deployment, with the local differences above
    (`overrides`: variables whose local value differs)."""
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    security = container["securityContext"]
    check(not container.get("command") and not container.get("args"),
          f"{function}: the Deployment overrides the entrypoint; run it as given")
    check(security.get("readOnlyRootFilesystem") is True, f"{function}: root filesystem is not read-only")
    check(security.get("allowPrivilegeEscalation") is False, f"{function}: privilege escalation allowed")
    check(security.get("capabilities", {}).get("drop") == ["ALL"], f"{function}: capabilities not dropped")
    user = f"{security['runAsUser']}:{security['runAsGroup']}"
    check(user == USER, f"{function}: the Deployment runs it as {user}")

    args = ["run", "--detach", "--name", f"fabrikam-check-{function}", "--network", "host",
            "--user", user, "--read-only", "--read-only-tmpfs=false", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges"]
    # At most this process's hard limits: the sandbox has no CAP_SYS_RESOURCE. runc also
    # failed to set nproc above kernel.pid_max here (32768, below the hard limit).
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    pid_max = int(pathlib.Path("/proc/sys/kernel/pid_max").read_text())
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], pid_max)
    args += ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]

    env = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            check(e["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}},
                  f"{function}: {e['name']} comes from {e['valueFrom']}, which this check cannot give")
            env[e["name"]] = f"fabrikam-check-{function}"
    check(env.get("PORT") == "8080", f"{function}: PORT is {env.get('PORT')}")
    env["PORT"] = str(port)
    namespace_host = env.pop("SERVICEBUS_NAMESPACE", None)
    if namespace_host and "SCALER_QUEUES" in env:
        env["RABBITMQ_MANAGEMENT_URL"] = "http://127.0.0.1:15672/api"
    elif namespace_host:
        env["AMQP_URL"] = f"amqp://{namespace_host}:5672"
        env["AMQP_ADDRESS_PREFIX"] = "/amq/queue/"
    for name, value in overrides.items():
        if name in env:
            env[name] = value
    for name, value in env.items():
        args += ["--env", f"{name}={value}"]

    resolv = state / "resolv.conf"
    resolv.write_text(
        f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local\n"
        f"nameserver {DNS_ADDRESS}\noptions ndots:5\n")
    args += ["--volume", f"{resolv}:/etc/resolv.conf:ro"]
    args += ["--volume", f"{state / 'ca-bundle.crt'}:{CA_BUNDLE}:ro"]

    for mount in container.get("volumeMounts", []):
        volume = next(v for v in pod.get("volumes", []) if v["name"] == mount["name"])
        check("csi" in volume, f"{function}: unexpected volume {volume}")
        check(spc is not None, f"{function}: a CSI volume without a SecretProviderClass")
        secrets = state / f"secrets-{function}"
        secrets.mkdir()
        for name in secret_objects(spc):
            check(name in SECRET_VALUES, f"{function}: no local value for the secret {name}")
            (secrets / name).write_text(SECRET_VALUES[name])
        os.chmod(secrets, 0o755)
        for f in secrets.iterdir():
            os.chmod(f, 0o644)
        args += ["--volume", f"{secrets}:{mount['mountPath']}:ro"]
    return args + [image], pod["terminationGracePeriodSeconds"], container["readinessProbe"]["httpGet"]["path"]


def walk_through(gateway):
    """The README walk-through: a POST, then the delivery with a drone."""
    request = json.loads((ROOT / "functions/ingestion/tests/fixtures/delivery_request.json").read_text())
    status, body = http("POST", f"http://{gateway}/api/deliveryrequests", request,
                        {"Content-Type": "application/json", "Idempotency-Key": "images-" + uuid.uuid4().hex})
    check(status == 202, f"POST /api/deliveryrequests answered {status}: {body[:500]!r}")
    delivery_id = json.loads(body)["deliveryId"]
    deadline = time.time() + 30
    last = None
    while time.time() < deadline:
        status, body = http("GET", f"http://{gateway}/api/deliveries/{delivery_id}")
        if status == 200 and json.loads(body).get("droneId"):
            return delivery_id, json.loads(body)["droneId"]
        last = (status, body[:300])
        time.sleep(0.2)
    raise Failure(f"delivery {delivery_id} was not readable with a drone within 30 s; last answer {last}")


def run_images(images_dir, catalog, manifests, state, fabrikam):
    podman = Podman(state)
    for port, what in ((8080, "the interceptor stand-in (keda-http-interceptor:8080)"), (6380, "the TLS Redis")):
        check(port_free(port), f"port {port} is taken; it is needed for {what}")

    env_of = {f: deployment_of(manifests, f) for f in (e["function"] for e in catalog["images"])}
    redis_url = next(
        (e["value"] for d, _ in env_of.values() for e in d["spec"]["template"]["spec"]["containers"][0].get("env", [])
         if e["name"] == "REDIS_URL"), None)
    check(redis_url and redis_url.startswith("rediss://"), f"REDIS_URL is {redis_url!r}, not TLS")
    redis_host, redis_port = redis_url[len("rediss://"):].rsplit(":", 1)
    tls = make_tls(state, redis_host)
    shutil.copy(CA_BUNDLE, state / "ca-bundle.crt")
    with open(state / "ca-bundle.crt", "ab") as bundle:
        bundle.write((tls / "ca.crt").read_bytes())
    os.chmod(state / "ca-bundle.crt", 0o644)

    processes = []
    started = []
    try:
        namespace = next(iter(env_of.values()))[0]["metadata"]["namespace"]
        service_bus = next(
            (e["value"] for d, _ in env_of.values() for e in d["spec"]["template"]["spec"]["containers"][0].get("env", [])
             if e["name"] == "SERVICEBUS_NAMESPACE"), None)
        check(service_bus, "no Deployment names SERVICEBUS_NAMESPACE")
        cluster_names = [f"{service}.{namespace}.svc.cluster.local"
                         for service in ["keda-http-interceptor", *env_of]]
        processes.append(start_dns(state, [*cluster_names, service_bus, redis_host, MONGODB]))
        processes.append(start_redis_tls(state, tls, int(redis_port)))
        ports = {entry["function"]: free_port() for entry in catalog["images"]}
        overrides = {"SCALER_GRPC_PORT": str(free_port())}
        if "scaler" in ports:
            overrides["SCALER_URL"] = f"http://127.0.0.1:{ports['scaler']}"
        for entry in catalog["images"]:
            function = entry["function"]
            loaded = podman("load", "--input", str(images_dir / entry["archive"])).stdout
            image = f"localhost/{entry['name']}:{entry['tag']}"
            check(entry["name"] in loaded, f"{function}: podman load said {loaded!r}")
            inspected = json.loads(podman("image", "inspect", image).stdout)[0]
            check(inspected["Digest"] == entry["digest"],
                  f"{function}: loaded as {inspected['Digest']}, built as {entry['digest']}")
            deployment, spc = env_of[function]
            args, grace, readyz = run_args(function, deployment, spc, state, image, ports[function],
                                           deployment["metadata"]["namespace"], overrides)
            podman(*args)
            started.append((function, grace))
            log(f"{function}: started from {image} on port {ports[function]}")

        upstreams = [f"--upstream={f}={'127.0.0.1'}:{p}" for f, p in ports.items() if f not in ("workflow", "scaler")]
        gateway = subprocess.Popen([fabrikam, "gateway", "--listen", "127.0.0.1:8080", *upstreams],
                                   stdout=open(state / "gateway.log", "w"), stderr=subprocess.STDOUT)
        processes.append(gateway)
        wait_listening(8080, "the interceptor stand-in", state / "gateway.log")

        for function, _ in started:
            deadline = time.time() + 60
            while True:
                container = json.loads(podman("inspect", f"fabrikam-check-{function}").stdout)[0]["State"]
                status = None
                with contextlib.suppress(OSError):
                    status, _ = http("GET", f"http://127.0.0.1:{ports[function]}{readyz}", timeout=2)
                if status == 200:
                    break
                if not container["Running"] or time.time() > deadline:
                    logs = podman("logs", f"fabrikam-check-{function}", check=False)
                    raise Failure(f"{function}: not ready (exit {container['ExitCode']}):\n"
                                  f"{logs.stdout[-3000:]}{logs.stderr[-3000:]}")
                time.sleep(0.2)
            pid = container["Pid"]
            uids = [line.split()[1:3] for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith(("Uid:", "Gid:"))]
            check(uids == [["65532", "65532"], ["65532", "65532"]], f"{function}: runs as {uids}")
            log(f"{function}: ready ({readyz} 200) as 65532 on a read-only root")

        delivery_id, drone = walk_through("127.0.0.1:8080")
        log(f"walk-through: delivery {delivery_id} scheduled on {drone} through five images")
        if "scaler" in ports:
            # The workflow told its scaler what it held while it handled the delivery.
            _, metrics = http("GET", f"http://127.0.0.1:{ports['scaler']}/metrics")
            ok = [line for line in metrics.decode().splitlines()
                  if line.startswith('scaler_reports_total{outcome="ok"}')]
            check(ok and float(ok[0].split()[-1]) > 0, f"no report reached the scaler: {ok}")
            log(f"scaler: {ok[0].split()[-1]} in-flight reports from the workflow's image")

        for function, grace in started:
            podman("stop", "--time", str(grace), f"fabrikam-check-{function}")
            code = json.loads(podman("inspect", f"fabrikam-check-{function}").stdout)[0]["State"]["ExitCode"]
            check(code == 0, f"{function}: exited {code} after SIGTERM, not 0")
        log("SIGTERM: every container drained and exited 0")
    except Failure:
        for function, _ in started:
            logs = podman("logs", f"fabrikam-check-{function}", check=False)
            sys.stderr.write(f"--- {function} logs ---\n{logs.stdout[-4000:]}{logs.stderr[-4000:]}\n")
        for name in ("gateway.log", "redis.log", "dnsmasq.log"):
            if (state / name).exists():
                sys.stderr.write(f"--- {name} ---\n{(state / name).read_text()[-3000:]}\n")
        raise
    finally:
        for function, _ in started:
            podman("rm", "--force", f"fabrikam-check-{function}", check=False)
        for process in processes:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=pathlib.Path, default=ROOT / "target" / "images")
    parser.add_argument("--manifests", type=pathlib.Path, default=ROOT / "keda" / "dev")
    parser.add_argument("--fabrikam", default=str(ROOT / "target" / "debug" / "fabrikam"))
    parser.add_argument("--skip-reproducibility", action="store_true")
    args = parser.parse_args()

    catalog = json.loads((args.images / "images.json").read_text())
    epoch = int(subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout)
    try:
        for entry in catalog["images"]:
            size = check_layout(args.images, entry, epoch)
            log(f"{entry['function']}: {entry['name']}@{entry['digest']} "
                f"{entry['compressedSize'] / 2**20:.2f} MiB compressed (binary {size / 2**20:.2f} MiB): layout, files, CA, SBOM")
        if not args.skip_reproducibility:
            check_reproducible(args.images, catalog)
            log("a second build of this commit gave the same bytes")
        state = pathlib.Path(tempfile.mkdtemp(prefix="fabrikam-images-"))
        try:
            os.chmod(state, 0o755)
            pushed = check_push(state)
            check(pushed == len(catalog["images"]), f"{pushed} of {len(catalog['images'])} images pushed")
            log(f"scripts/push-images: a registry serves all {pushed} images at the digests built")
            run_images(args.images, catalog, args.manifests, state, args.fabrikam)
        finally:
            # podman's storage is root's.
            subprocess.run(AS_ROOT + ["rm", "-rf", str(state)], check=False)
    except Failure as e:
        print(f"check-images: FAILED: {e}", file=sys.stderr)
        return 1
    print("check-images: all images passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
