#!/usr/bin/env python3
"""kubectl conformance suite for rkube.

Starts a real `rkube server` (once on the embedded store, once on a real etcd
that this script starts itself), then drives it with stock kubectl and checks
the real output: the text kubectl prints, the JSON it returns, the HTTP answers.

Usage:
    python3 conformance/run.py [--backend embedded|etcd|both] [-k SUBSTRING] [--keep] [-v] [--list]
                               [--results FILE] [--serial]

Environment:
    RKUBE_BIN   path of the rkube binary (default: target/release/rkube in the repo)
    KUBECTL     kubectl to drive the server with (default: kubectl on PATH)
    ETCD_BIN    etcd binary (default: etcd on PATH, else /usr/bin/etcd)

With --backend both, the two passes run at the same time (the etcd pass in a child process of its own,
its lines printed as a block once it ends), which nearly halves the suite's time on two cores; --serial
runs them one after the other. Prints a PASS/FAIL line per scenario and backend as it goes (with the command, expected and actual
output of a failure), writes the markdown table conformance/RESULTS.md after a full run (all scenarios,
both backends; --results FILE for any run), and prints `N passed, N failed` as its last line
(N counts scenario x backend). Exits 1 if anything failed.

Layout: conformance/harness.py is the shared harness (the server and etcd processes, class T with
kubectl/HTTPS and assertions, parsers, the @scenario registry, the CRUD walk, shared manifests);
conformance/scenarios/<area>.py hold the scenarios by area (core, namespaces, apply, auth, clients, crd,
discovery, errors, validation, lifecycle, lists, output, watch, faults, hostile_input, security,
watch_cache, ...); this file is the entry point: the command line, the running order (ORDER below) and
RESULTS.md. It re-exports the harness, so `from run import T, scenario, ...` works as `from harness import`.

Python 3.11 standard library only.
"""


from __future__ import annotations

import argparse
import importlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import harness
# Re-exported: scenario modules that import from `run` (`from run import T, scenario, ...`) keep working.
from harness import *  # noqa: F401,F403
from harness import HERE, KUBECTL, REPO, RKUBE_BIN, SCENARIOS, Etcd, Failure, Server, T, doc, tail

RESULTS_MD = HERE / "RESULTS.md"

# The running order. Scenarios share one server per backend, and some depend on the state earlier ones
# leave or change it for later ones (persistence_across_restart restarts the server, the faults restart and
# kill it), so these run first and in this order, whichever module defines them; then every scenario not
# named here, module by module in file-name order (faults, hostile_input, security, watch_cache, ...) and in
# definition order within a module. A new scenario needs an entry here only to run at a particular point.
ORDER = [
    "bootstrap_namespaces", "health_endpoints", "anonymous_is_unauthorized", "version", "api_versions",
    "api_resources", "kubectl_version_skew", "namespace_crud", "pod_crud", "service_crud", "service_cluster_ip",
    "configmap_crud", "secret_crud", "secret_string_data", "deployment_crud", "deployment_defaults", "pod_defaults",
    "job_crud", "job_defaults", "node_crud", "imperative_create", "more_builtin_kinds", "auth_can_i", "patch",
    "apply", "apply_server_side", "output_formats", "all_namespaces", "get_all", "label_selectors", "field_selectors",
    "watch", "watch_resume_and_timeout", "watch_selector_transitions", "pod_binding", "wait_for_delete",
    "chunked_list", "large_list", "large_objects", "many_watchers", "error_not_found", "error_already_exists",
    "error_invalid", "error_invalid_workloads", "workload_update_validation", "pod_validation", "immutable_fields",
    "custom_resources", "protected_namespaces", "error_bad_requests", "error_missing_namespace", "error_conflict",
    "error_unknown_field", "generate_name", "manifests_and_bulk_delete", "create_list_manifest", "dry_run",
    "concurrent_conflicts", "events", "explain", "pod_force_delete", "replace_force", "wait_for_condition",
    "namespace_delete_cascade", "namespace_terminating", "status_subresource", "persistence_across_restart",
    "imperative_create_all_kinds", "auth_whoami_and_tokens", "python_client", "js_client", "user_kubeconfig",
    "pod_streams_unscheduled", "namespace_defaults", "rbac_enforced", "protobuf_responses", "patch_types",
    "apply_directory", "apply_server_side_conflicts", "diff_manifest", "dry_run_defaults", "validate_unknown_field",
    "duplicate_fields", "apply_prune", "explain_description", "create_kind_list_file",
]


def _load_scenario_modules() -> None:
    """Import every conformance/scenarios/*.py (each registers its scenarios with @scenario), then put
    SCENARIOS in running order."""
    sys.modules.setdefault("run", sys.modules[__name__])
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    for p in sorted((HERE / "scenarios").glob("*.py")):
        if not p.name.startswith("_"):
            importlib.import_module(f"scenarios.{p.stem}")
    by_name: dict[str, Callable[[T], None]] = {}
    for fn in SCENARIOS:
        # Outcomes and RESULTS.md rows are keyed by name: two scenarios of one name would hide one.
        if fn.__name__ in by_name:
            raise SystemExit(f"two scenarios are named {fn.__name__}: in {by_name[fn.__name__].__module__} "
                             f"and in {fn.__module__}")
        by_name[fn.__name__] = fn
    missing = [n for n in ORDER if n not in by_name]
    if missing:
        raise SystemExit(f"run.py ORDER names scenarios that no module defines: {', '.join(missing)}")
    listed = set(ORDER)
    SCENARIOS[:] = [by_name[n] for n in ORDER] + [fn for fn in SCENARIOS if fn.__name__ not in listed]


_load_scenario_modules()


@dataclass
class Outcome:
    ok: bool
    seconds: float
    failure: str = ""
    short: str = ""


@dataclass
class BackendRun:
    name: str
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    startup_error: str = ""


def run_backend(backend: str, selected: list[Callable[[T], None]], keep: bool) -> BackendRun:
    res = BackendRun(backend)
    workdir = Path(tempfile.mkdtemp(prefix=f"rkube-conformance-{backend}-"))
    (workdir / "kubectl-cache").mkdir()
    etcd = Etcd(workdir) if backend == "etcd" else None
    server = Server(backend, workdir, etcd)
    print(f"== backend {backend} (workdir {workdir})", flush=True)
    try:
        try:
            if etcd is not None:
                etcd.start()
                print(f"   etcd ready at {etcd.endpoint}", flush=True)
            t0 = time.time()
            server.start()
            print(f"   rkube ready on 127.0.0.1:{server.port} in {time.time() - t0:.1f}s", flush=True)
        except Exception as e:
            res.startup_error = str(e)
            print(f"   SERVER FAILED TO START: {e}", flush=True)
            for fn in selected:
                res.outcomes[fn.__name__] = Outcome(False, 0.0, f"server failed to start:\n{e}",
                                                    "server failed to start")
                print(f"FAIL  {backend:8s} {fn.__name__}  (server failed to start)", flush=True)
            return res
        for fn in selected:
            name = fn.__name__
            if server.proc is None or server.proc.poll() is not None:
                try:
                    print(f"   (server is down: restarting it before {name})", flush=True)
                    server.start()
                except Exception as e:
                    res.outcomes[name] = Outcome(False, 0.0, f"server down and could not restart:\n{e}",
                                                 "server down")
                    print(f"FAIL  {backend:8s} {name}  (server down)", flush=True)
                    continue
            t = T(server, name)
            start = time.time()
            try:
                fn(t)
                oc = Outcome(True, time.time() - start)
            except Failure as f:
                oc = Outcome(False, time.time() - start, f.render(), f.short())
            except Exception as e:  # a bug in the scenario or an unexpected answer shape
                oc = Outcome(False, time.time() - start,
                             f"unexpected {type(e).__name__}: {e}\nlast command: {t.last_cmd}\n"
                             + traceback.format_exc(limit=4), f"{type(e).__name__}: {e}")
            finally:
                t.cleanup()
            if not oc.ok and server.proc is not None and server.proc.poll() is not None:
                oc.failure += f"\nserver exited with code {server.proc.returncode}; log tail:\n{tail(server.log, 30)}"
            res.outcomes[name] = oc
            mark = "PASS" if oc.ok else "FAIL"
            print(f"{mark}  {backend:8s} {name}  ({oc.seconds:.1f}s)", flush=True)
            if not oc.ok:
                print("      " + oc.failure.replace("\n", "\n      "), flush=True)
        return res
    finally:
        if keep:
            print(f"   --keep: server left running (pid {server.proc.pid if server.proc else '-'}): "
                  f"kubectl --kubeconfig {server.kubeconfig} get ns ; log {server.log}"
                  + (f" ; etcd {etcd.endpoint} (pid {etcd.proc.pid if etcd.proc else '-'})" if etcd else ""),
                  flush=True)
        else:
            server.stop()
            if etcd is not None:
                etcd.stop()
            shutil.rmtree(workdir, ignore_errors=True)


# The etcd pass of `--backend both` runs alongside the embedded one, as a child process that reports its
# outcomes in a JSON file (a separate process: the two passes share no module state, servers or kubectl
# caches). Every wait in a scenario is bounded, so this bound only catches a child that hangs outright.
CHILD_TIMEOUT = 75 * 60


def start_child(backend: str, selects: list[str], verbose: bool, log: Path, outcomes: Path) -> subprocess.Popen:
    args = [sys.executable, str(Path(__file__).resolve()), "--backend", backend, "--outcomes-json", str(outcomes)]
    for sel in selects:
        args += ["-k", sel]
    if verbose:
        args.append("-v")
    return subprocess.Popen(args, stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def finish_child(backend: str, proc: subprocess.Popen, selected: list[Callable[[T], None]], log: Path,
                 outcomes: Path) -> BackendRun:
    """Waits for the child pass, prints its log and returns its outcomes (a missing one is a failure)."""
    try:
        proc.wait(timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        stop_child(proc)
    out = log.read_text(errors="replace")
    print(f"\n== backend {backend}: the pass that ran alongside (its log follows)", flush=True)
    print("\n".join(line for line in out.splitlines() if not line.startswith(("rkube conformance:", "results:"))
                    and not _is_count_line(line)), flush=True)
    res = BackendRun(backend)
    try:
        data = json.loads(outcomes.read_text())
        res.startup_error = data.get("startup_error", "")
        res.outcomes = {n: Outcome(**o) for n, o in data.get("outcomes", {}).items()}
    except (OSError, ValueError, TypeError) as e:
        res.startup_error = f"the {backend} pass reported no outcomes ({e}); exit code {proc.returncode}"
    for fn in selected:
        if fn.__name__ not in res.outcomes:
            why = res.startup_error or f"the {backend} pass ended (exit code {proc.returncode}) before this scenario"
            res.outcomes[fn.__name__] = Outcome(False, 0.0, why + "\n" + out[-3000:], "not run: pass ended")
    return res


def stop_child(proc: subprocess.Popen) -> None:
    """SIGTERM (the child stops its servers and etcd on the way out, see main), then SIGKILL."""
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _is_count_line(line: str) -> bool:
    parts = line.split()
    return len(parts) == 4 and parts[1] == "passed," and parts[3] == "failed" and parts[0].isdigit()


def md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def write_results(runs: list[BackendRun], selected: list[Callable[[T], None]], path: Path) -> None:
    by = {r.name: r for r in runs}
    lines = [
        "# rkube conformance results",
        "",
        "Generated by `python3 conformance/run.py` "
        f"on {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} with `{KUBECTL}` "
        f"({_kubectl_version()}) against `{_rel(RKUBE_BIN)}`.",
        "Each scenario runs with stock kubectl against a real `rkube server`, once on the embedded store "
        "and once on etcd, and checks the text and JSON that come back.",
        "",
        "| scenario | embedded | etcd | notes |",
        "| --- | --- | --- | --- |",
    ]
    for fn in selected:
        cells = []
        notes = [doc(fn)]
        for b in ("embedded", "etcd"):
            r = by.get(b)
            oc = r.outcomes.get(fn.__name__) if r else None
            if oc is None:
                cells.append("not run")
            elif oc.ok:
                cells.append("pass")
            else:
                cells.append("**FAIL**")
                notes.append(f"{b}: {oc.short}")
        lines.append(f"| `{fn.__name__}` | {cells[0]} | {cells[1]} | {md_escape(' — '.join(notes))} |")
    passed = sum(o.ok for r in runs for o in r.outcomes.values())
    failed = sum(not o.ok for r in runs for o in r.outcomes.values())
    lines += ["", f"{passed} passed, {failed} failed", ""]
    details = [(r.name, n, o) for r in runs for n, o in r.outcomes.items() if not o.ok]
    if details:
        lines += ["## Failures", ""]
        for b, n, o in details:
            lines += [f"### {n} ({b})", "", "```", o.failure.rstrip(), "```", ""]
    path.write_text("\n".join(lines))


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(REPO))
    except ValueError:
        return str(p)


def _kubectl_version() -> str:
    try:
        out = subprocess.run([KUBECTL, "version", "--client", "-o", "json"], capture_output=True, text=True,
                             timeout=10).stdout
        return json.loads(out)["clientVersion"]["gitVersion"]
    except Exception:
        return "unknown version"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["embedded", "etcd", "both"], default="both")
    ap.add_argument("-k", dest="select", action="append", default=[],
                    help="run only scenarios whose name contains SUBSTRING (repeatable: any of them)")
    ap.add_argument("--keep", action="store_true", help="leave the server (and etcd) running at the end")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every kubectl command and its output")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("--serial", action="store_true",
                    help="with --backend both, run the etcd pass after the embedded one instead of beside it")
    ap.add_argument("--outcomes-json", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--results", type=Path, default=None,
                    help="markdown results file (default: conformance/RESULTS.md for a full run on both backends, "
                         "none for a partial run)")
    a = ap.parse_args()
    # SIGTERM unwinds like Ctrl-C, so every `finally` stops its servers and etcd (the parent of a
    # concurrent pass ends its child this way).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    harness.VERBOSE = a.verbose
    if a.list:
        for fn in SCENARIOS:
            print(f"{fn.__name__:32s} {doc(fn)}")
        return 0
    selected = [fn for fn in SCENARIOS if not a.select or any(s in fn.__name__ for s in a.select)]
    if not selected:
        print(f"no scenario matches {a.select!r}")
        print("0 passed, 1 failed")
        return 1
    backends = ["embedded", "etcd"] if a.backend == "both" else [a.backend]
    print(f"rkube conformance: {len(selected)} scenarios x {len(backends)} backends; rkube={RKUBE_BIN} "
          f"kubectl={KUBECTL} ({_kubectl_version()})", flush=True)
    if not RKUBE_BIN.exists():
        print(f"rkube binary not found at {RKUBE_BIN} (build it with `cargo build --release` or set RKUBE_BIN)")
    if len(backends) == 2 and not a.serial and not a.keep:
        scratch = Path(tempfile.mkdtemp(prefix="rkube-conformance-etcd-pass-"))
        log, outcomes = scratch / "etcd.log", scratch / "outcomes.json"
        child = start_child("etcd", a.select, a.verbose, log, outcomes)
        print(f"   the etcd pass runs alongside (pid {child.pid}, log {log}); its lines follow the embedded pass's",
              flush=True)
        try:
            runs = [run_backend("embedded", selected, a.keep)]
        except BaseException:
            stop_child(child)
            raise
        runs.append(finish_child("etcd", child, selected, log, outcomes))
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        runs = [run_backend(b, selected, a.keep) for b in backends]
    if a.outcomes_json is not None:
        a.outcomes_json.write_text(json.dumps({
            "startup_error": runs[0].startup_error,
            "outcomes": {n: vars(o) for n, o in runs[0].outcomes.items()}}))
    results = a.results
    if results is None and not a.select and a.backend == "both":
        results = RESULTS_MD
    if results is not None:
        write_results(runs, selected, results)
    passed = sum(o.ok for r in runs for o in r.outcomes.values())
    failed = sum(not o.ok for r in runs for o in r.outcomes.values())
    if failed:
        print("\nfailed:", flush=True)
        for r in runs:
            for n, o in r.outcomes.items():
                if not o.ok:
                    print(f"  {r.name:8s} {n}: {o.short}")
    print(f"results: {_rel(results)}" if results is not None else
          "results: not written for a partial run (use --results FILE)")
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
