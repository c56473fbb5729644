"""Property-based fuzzing of the running system against its OpenAPI documents.

Run by scripts/fuzz. It
  1. validates every document in docs/openapi/ (openapi-spec-validator);
  2. starts `fabrikam dev` (every function on the embedded queue and stores, the two gateways)
     on ports of its own;
  3. runs schemathesis against each function's document on the function's own port, and
     against the public API's document through the ingress gateway: every phase (examples,
     coverage, fuzzing, and stateful sequences that follow the documents' links, so that a
     created package or delivery is read back), a bounded number of cases per operation;
  4. checks every response: no 5xx, the status code documented, the content type and headers
     documented, the body valid against the documented schema;
  5. writes its figures into a section of docs/RELIABILITY.md (or --report).

Exit status 1 when any check failed or a 5xx was seen.
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs/openapi"
PORTS = {"DEV_GATEWAY_PORT": "28080", "DEV_INTERNAL_PORT": "28090",
         "DEV_FIRST_FUNCTION_PORT": "28081"}
CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance"]
BEGIN, END = "<!-- api-fuzz: begin -->", "<!-- api-fuzz: end -->"


def log(message):
    print(f"fuzz: {message}", file=sys.stderr, flush=True)


def validate_documents():
    docs = sorted(DOCS.glob("*.json"))
    if not docs:
        sys.exit(f"fuzz: no documents in {DOCS}; run `cargo run -p host -- openapi`")
    for path in docs:
        spec, _ = read_from_filename(str(path))
        validate(spec)
        log(f"{path.relative_to(ROOT)}: a valid OpenAPI {spec['openapi']} document")
    return docs


def start_dev(binary, workdir):
    # The embedded defaults: nothing from the caller's environment names a store, a broker
    # or a secret source.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **PORTS, "LOG_FORMAT": "json",
           "RUST_LOG": "info"}
    log_file = open(workdir / "dev.log", "w")
    process = subprocess.Popen([str(binary), "dev"], env=env, stdout=log_file,
                               stderr=subprocess.STDOUT, cwd=ROOT)
    addrs = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"fuzz: fabrikam dev exited with {process.returncode}; "
                     f"see {workdir / 'dev.log'}")
        for line in (workdir / "dev.log").read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("message") == "HTTP trigger listening":
                addrs[event["function"]] = event["addr"]
        if addrs and all(ready(addr) for addr in addrs.values()) and ready(
                f"127.0.0.1:{PORTS['DEV_GATEWAY_PORT']}", "/api/deliveries/public/x"):
            return process, addrs
        time.sleep(0.5)
    process.kill()
    sys.exit("fuzz: fabrikam dev did not become ready in 60 s")


def ready(addr, path="/readyz"):
    try:
        with urllib.request.urlopen(f"http://{addr}{path}", timeout=2) as r:
            return r.status == 200
    except urllib.error.HTTPError as e:
        # Through the gateway, a 404 from the function means it answers.
        return path != "/readyz" and e.code == 404
    except OSError:
        return False


def schemathesis(venv, document, url, args, workdir):
    name = document.stem
    reports = workdir / name
    shutil.rmtree(reports, ignore_errors=True)
    command = [str(venv / "bin/schemathesis"), "run", str(document), "--url", url,
               "--max-examples", str(args.max_examples), "--seed", str(args.seed),
               "--checks", ",".join(CHECKS), "--workers", "1",
               "--phases", "examples,coverage,fuzzing,stateful",
               "--request-timeout", "10",
               # No example database in the working tree: each run stands on its seed.
               "--generation-database", "none",
               "--report", "json,ndjson", "--report-dir", str(reports)]
    log(f"{name}: {' '.join(command[1:])}")
    # Run in the work folder: schemathesis keeps a crash cache (.schemathesis/) where it runs.
    completed = subprocess.run(command, cwd=workdir, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    (workdir / f"{name}.out").write_text(completed.stdout)
    summary = json.loads(next(reports.glob("*.json")).read_text())
    statuses, schema_violations, failed_checks = {}, 0, {}
    for line in next(reports.glob("*.ndjson")).read_text().splitlines():
        event = json.loads(line).get("ScenarioFinished")
        if not event:
            continue
        for interaction in event["recorder"].get("interactions", {}).values():
            response = interaction.get("response")
            if response:
                code = response["status_code"]
                statuses[code] = statuses.get(code, 0) + 1
        for checks in event["recorder"].get("checks", {}).values():
            for check in checks:
                if check["status"] == "failure":
                    failed_checks[check["name"]] = failed_checks.get(check["name"], 0) + 1
                    if check["name"] == "response_schema_conformance":
                        schema_violations += 1
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected", completed.stdout)
    result = {
        "name": name,
        "links": f"{links[1]} of {links[2]}" if links else "none",
        "url": url,
        "exit_code": completed.returncode,
        "operations": summary["operations"]["tested"],
        "operations_total": summary["operations"]["total"],
        "cases": summary["test_cases"]["generated"],
        "unique_failures": summary["test_cases"]["unique_failures"],
        "errors": len(summary["errors"]),
        "responses": sum(statuses.values()),
        "statuses": dict(sorted(statuses.items())),
        "server_errors": sum(n for code, n in statuses.items() if code >= 500),
        "schema_violations": schema_violations,
        "failed_checks": failed_checks,
    }
    result["passed"] = (completed.returncode == 0 and result["server_errors"] == 0
                        and not failed_checks and not result["errors"])
    if not result["passed"]:
        print(completed.stdout[-8000:], file=sys.stderr)
    log(f"{name}: {result['operations']}/{result['operations_total']} operations, "
        f"{result['cases']} cases, {result['responses']} responses, "
        f"{result['server_errors']} 5xx, {result['schema_violations']} schema violations: "
        f"{'pass' if result['passed'] else 'FAIL'}")
    return result


def section(results, args, elapsed):
    statuses = {}
    for r in results:
        for code, n in r["statuses"].items():
            statuses[code] = statuses.get(code, 0) + n
    lines = [
        BEGIN,
        "## The HTTP contracts, fuzzed (scripts/fuzz)",
        "",
        "Written by `scripts/fuzz` (tests/api_fuzz/fuzz.py); do not edit by hand.",
        "",
        f"- Command: `scripts/fuzz --max-examples {args.max_examples} --seed {args.seed}`",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{elapsed:.0f} s",
        f"- Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.system()} {platform.release()}",
        "- `fabrikam dev` (debug build, embedded queue and stores); schemathesis "
        f"{args.schemathesis_version} against each function's document (docs/openapi/) on the "
        "function's port, and against the public API's through the ingress gateway. Phases: "
        "the documents' examples, coverage of every parameter and schema boundary (valid and "
        "invalid), random fuzzing, and stateful sequences following the documents' links (a "
        "package PUT then read back, a delivery stored then read back, a delivery request "
        "followed to its delivery through the ingress).",
        f"- Checks on every response: {', '.join(CHECKS)}.",
        "",
        "| Document | Operations | Cases | Links followed | Responses | 5xx | Schema violations | Other failed checks | Result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        other = {k: v for k, v in r["failed_checks"].items()
                 if k not in ("response_schema_conformance", "not_a_server_error")}
        lines.append(
            f"| {r['name']} | {r['operations']} of {r['operations_total']} | {r['cases']} | "
            f"{r['links']} | {r['responses']} | {r['server_errors']} | {r['schema_violations']} | "
            f"{', '.join(f'{k}: {v}' for k, v in other.items()) or 'none'} | "
            f"{'pass' if r['passed'] else 'FAIL'} |")
    def total(key):
        return sum(r[key] for r in results)

    lines += [
        f"| **all** | {total('operations')} | {total('cases')} | | {total('responses')} | "
        f"{total('server_errors')} | {total('schema_violations')} | | "
        f"{'pass' if all(r['passed'] for r in results) else 'FAIL'} |",
        "",
        "Links followed: the documents' links (declared, and those schemathesis infers from "
        "shared parameters and `Location` headers) that its stateful phase followed at least "
        "once. Status codes answered: " + ", ".join(
            f"{code}: {n}" for code, n in sorted(statuses.items())) + ".",
        "",
        END,
    ]
    return "\n".join(lines)


def write_section(path, text):
    existing = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if pattern.search(existing):
        updated = pattern.sub(lambda _: text, existing)
    else:
        updated = existing.rstrip("\n") + ("\n\n" if existing else "") + text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(updated.rstrip("\n") + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", type=pathlib.Path,
                        default=ROOT / os.environ.get("CARGO_TARGET_DIR", "target") / "debug/fabrikam")
    parser.add_argument("--venv", type=pathlib.Path, required=True)
    parser.add_argument("--max-examples", type=int, default=25)
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--report", type=pathlib.Path, default=ROOT / "docs/RELIABILITY.md")
    parser.add_argument("--workdir", type=pathlib.Path, default=ROOT / "target/api-fuzz")
    parser.add_argument("--schemathesis-version", default="")
    args = parser.parse_args()
    began = time.monotonic()
    docs = validate_documents()
    args.workdir.mkdir(parents=True, exist_ok=True)
    process, addrs = start_dev(args.binary, args.workdir)
    results = []
    try:
        for document in docs:
            if document.stem == "public":
                url = f"http://127.0.0.1:{PORTS['DEV_GATEWAY_PORT']}"
            elif document.stem in addrs:
                url = f"http://{addrs[document.stem]}"
            else:
                sys.exit(f"fuzz: {document.name} documents no running function")
            results.append(schemathesis(args.venv, document, url, args, args.workdir))
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    if process.returncode not in (0, -15):
        log(f"fabrikam dev exited with {process.returncode} at shutdown")
        results.append({"passed": False})
    elapsed = time.monotonic() - began
    if all("cases" in r for r in results):
        write_section(args.report, section(results, args, elapsed))
        log(f"wrote {args.report}")
    if not all(r["passed"] for r in results):
        log("FAILED: see the output above and the reports under "
            f"{args.workdir.relative_to(ROOT) if args.workdir.is_relative_to(ROOT) else args.workdir}")
        sys.exit(1)
    log(f"all {len(results)} documents pass in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
