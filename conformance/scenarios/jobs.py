"""Jobs, CronJobs and the TTL-after-finished controller (issue #16), driven through stock kubectl on
hollow nodes (whose containers exit as their command says: `true` 0, `sh -c "exit N"` N, others run).

Events: the controllers record events.k8s.io/v1 Events; until the apiserver also serves them as core/v1
(what `kubectl events` lists) the scenarios read them with `kubectl get events.events.k8s.io`.
"""

from harness import T, poll, scenario
from scenarios.nodes import nodes

TRACKING = "batch.kubernetes.io/job-tracking"
INDEX = "batch.kubernetes.io/job-completion-index"


def _job(name: str, command: list[str], **spec) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {**spec, "template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "c", "image": "busybox", "command": command}]}}}}


def _pods(t: T, ns: str, job: str) -> list:
    return t.json("get", "pods", "-n", ns, "-l", f"batch.kubernetes.io/job-name={job}")["items"]


def _events(t: T, ns: str, kind: str, name: str) -> list[tuple[str, str, str]]:
    """(type, reason, note) of the events about one object, as the controllers recorded them."""
    items = t.json("get", "events.events.k8s.io", "-n", ns)["items"]
    return [(e.get("type"), e.get("reason"), e.get("note")) for e in items
            if e.get("regarding", {}).get("kind") == kind and e.get("regarding", {}).get("name") == name]


def _conditions(obj: dict) -> dict:
    return {c["type"]: (c["status"], c.get("reason"), c.get("message"))
            for c in obj.get("status", {}).get("conditions", [])}


def _wait_condition(t: T, ns: str, job: str, cond: str, timeout: int) -> dict:
    t.ok("wait", f"--for=condition={cond}", f"job/{job}", "-n", ns, f"--timeout={timeout}s", timeout=timeout + 15)
    return t.json("get", "job", job, "-n", ns)


@scenario
def jobs_completions_parallelism(t: T) -> None:
    """a Job of 4 completions, parallelism 2, completes: 4 succeeded pods, upstream's conditions and events."""
    nodes(t)
    ns = t.namespace()
    t.create(_job("pi", ["true"], completions=4, parallelism=2), ns)
    job = _wait_condition(t, ns, "pi", "complete", 60)
    status = job["status"]
    t.eq((status.get("succeeded"), status.get("failed", 0), status.get("active", 0)), (4, 0, 0),
         "succeeded / failed / active")
    t.true(bool(status.get("startTime")) and bool(status.get("completionTime")), "startTime and completionTime",
           status)
    conds = _conditions(job)
    t.eq(conds.get("SuccessCriteriaMet"), ("True", "CompletionsReached", "Reached expected number of succeeded pods"),
         "SuccessCriteriaMet condition")
    t.eq(conds.get("Complete"), ("True", "CompletionsReached", "Reached expected number of succeeded pods"),
         "Complete condition")
    t.eq(status.get("uncountedTerminatedPods"), {}, "no uncounted pods left")
    pods = _pods(t, ns, "pi")
    t.eq(len(pods), 4, "one pod per completion")
    uid = job["metadata"]["uid"]
    for p in pods:
        labels = p["metadata"]["labels"]
        t.eq((labels.get("batch.kubernetes.io/controller-uid"), labels.get("controller-uid"), labels.get("job-name")),
             (uid, uid, "pi"), "pod labels")
        t.true(p["metadata"]["name"].startswith("pi-"), "pod generateName pi-", p["metadata"]["name"])
        t.eq([(r["kind"], r["name"], r.get("controller")) for r in p["metadata"]["ownerReferences"]],
             [("Job", "pi", True)], "pod owned by the Job")
        t.eq(p["status"]["phase"], "Succeeded", "pod phase")
        t.true(TRACKING not in p["metadata"].get("finalizers", []), "tracking finalizer removed once counted",
               p["metadata"].get("finalizers"))
    out = t.ok("get", "job", "pi", "-n", ns)
    t.match(out, r"^pi\s+Complete\s+4/4\s+", "kubectl get job row")
    events = _events(t, ns, "Job", "pi")
    # Events of one reason about one object are aggregated into a series (kube's Recorder), so the
    # note names one of the pods.
    created = [n for (_, r, n) in events if r == "SuccessfulCreate"]
    t.true(bool(created) and all(n in {f"Created pod: {p['metadata']['name']}" for p in pods} for n in created),
           "SuccessfulCreate event naming a created pod", events)
    t.true(("Normal", "Completed", "Job completed") in events, "Completed event", events)
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def jobs_indexed(t: T) -> None:
    """an Indexed Job runs one pod per index 0..n-1 (annotation, label, hostname) and reports completedIndexes."""
    nodes(t)
    ns = t.namespace()
    t.create(_job("idx", ["true"], completions=3, parallelism=3, completionMode="Indexed"), ns)
    job = _wait_condition(t, ns, "idx", "complete", 60)
    t.eq((job["status"].get("succeeded"), job["status"].get("completedIndexes")), (3, "0-2"),
         "succeeded and completedIndexes")
    pods = _pods(t, ns, "idx")
    seen = []
    for p in pods:
        ix = p["metadata"]["annotations"].get(INDEX)
        seen.append(ix)
        t.eq(p["metadata"]["labels"].get(INDEX), ix, "index label equals the annotation")
        t.eq(p["spec"].get("hostname"), f"idx-{ix}", "pod hostname <job>-<index>")
        t.true(p["metadata"]["name"].startswith(f"idx-{ix}-"), "pod generateName <job>-<index>-",
               p["metadata"]["name"])
        env = {e["name"]: e for e in p["spec"]["containers"][0].get("env", [])}
        t.eq(env.get("JOB_COMPLETION_INDEX", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath"),
             f"metadata.labels['{INDEX}']", "JOB_COMPLETION_INDEX from the index label")
    t.eq(sorted(seen), ["0", "1", "2"], "one pod per index")
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def jobs_backoff_limit(t: T) -> None:
    """a Job whose pods exit 1 with backoffLimit 1 fails after two pods: BackoffLimitExceeded condition and event."""
    nodes(t)
    ns = t.namespace()
    t.create(_job("fail", ["sh", "-c", "exit 1"], backoffLimit=1), ns)
    # The second pod comes after upstream's 10 s pod failure backoff.
    job = _wait_condition(t, ns, "fail", "failed", 60)
    t.eq((job["status"].get("failed"), job["status"].get("succeeded", 0), job["status"].get("active", 0)), (2, 0, 0),
         "failed / succeeded / active")
    conds = _conditions(job)
    expected = ("True", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    t.eq(conds.get("FailureTarget"), expected, "FailureTarget condition")
    t.eq(conds.get("Failed"), expected, "Failed condition")
    t.true("Complete" not in conds, "no Complete condition", conds)
    pods = _pods(t, ns, "fail")
    t.eq(sorted(p["status"]["phase"] for p in pods), ["Failed", "Failed"], "two failed pods")
    exit_codes = [p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] for p in pods]
    t.eq(exit_codes, [1, 1], "containers exited 1")
    t.true(("Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
           in _events(t, ns, "Job", "fail"), "BackoffLimitExceeded event", t.last_cmd)
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def jobs_pod_failure_policy(t: T) -> None:
    """podFailurePolicy: exit code 42 matching a FailJob rule fails the Job at once, with upstream's message."""
    nodes(t)
    ns = t.namespace()
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}}]}
    t.create(_job("pfp", ["sh", "-c", "exit 42"], backoffLimit=6, podFailurePolicy=policy), ns)
    job = _wait_condition(t, ns, "pfp", "failed", 60)
    pod = _pods(t, ns, "pfp")[0]["metadata"]["name"]
    msg = f"Container c for pod {ns}/{pod} failed with exit code 42 matching FailJob rule at index 0"
    t.eq(_conditions(job).get("Failed"), ("True", "PodFailurePolicy", msg), "Failed condition")
    t.eq(job["status"].get("failed"), 1, "one failed pod, no retry")
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def jobs_active_deadline(t: T) -> None:
    """activeDeadlineSeconds: 2 on a pod that runs forever: the pod is deleted and the Job fails DeadlineExceeded."""
    nodes(t)
    ns = t.namespace()
    job = _job("slow", ["sleep", "3600"], activeDeadlineSeconds=2)
    job["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 1
    t.create(job, ns)
    job = _wait_condition(t, ns, "slow", "failed", 45)
    t.eq(_conditions(job).get("Failed"), ("True", "DeadlineExceeded", "Job was active longer than specified deadline"),
         "Failed condition")
    t.eq((job["status"].get("active", 0), job["status"].get("failed")), (0, 1),
         "the running pod was stopped and counted failed")
    t.true(poll(lambda: not _pods(t, ns, "slow"), 30), "the pod is deleted", t.last_cmd)
    events = _events(t, ns, "Job", "slow")
    t.true(any(r == "SuccessfulDelete" for (_, r, _) in events), "SuccessfulDelete event", events)
    t.true(("Warning", "DeadlineExceeded", "Job was active longer than specified deadline") in events,
           "DeadlineExceeded event", events)
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def jobs_suspend_resume(t: T) -> None:
    """a suspended Job creates no pods and is Suspended; resuming it runs it to completion."""
    nodes(t)
    ns = t.namespace()
    t.create(_job("later", ["true"], suspend=True), ns)
    t.true(poll(lambda: _conditions(t.json("get", "job", "later", "-n", ns)).get("Suspended")
                == ("True", "JobSuspended", "Job suspended"), 30), "Suspended condition", t.last_cmd)
    t.eq(_pods(t, ns, "later"), [], "no pods while suspended")
    t.ok("patch", "job", "later", "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":false}}')
    job = _wait_condition(t, ns, "later", "complete", 60)
    t.eq(_conditions(job).get("Suspended"), ("False", "JobResumed", "Job resumed"), "Suspended condition after resume")
    reasons = [r for (_, r, _) in _events(t, ns, "Job", "later")]
    t.true("Suspended" in reasons and "Resumed" in reasons, "Suspended and Resumed events", reasons)
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def jobs_ttl_after_finished(t: T) -> None:
    """ttlSecondsAfterFinished: 0 — the TTL controller deletes the Job once it completes."""
    nodes(t)
    ns = t.namespace()
    t.create(_job("brief", ["true"], ttlSecondsAfterFinished=0), ns)
    # (Its pod may come and go between two looks: the Job disappearing is the proof it finished, as the
    # TTL controller only deletes finished Jobs.)
    t.true(poll(lambda: t.run("get", "job", "brief", "-n", ns, "-o", "name").rc != 0, 60),
           "the finished Job is deleted", t.last_cmd)
    t.contains(t.fails("get", "job", "brief", "-n", ns), 'jobs.batch "brief" not found', "Job gone")
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def jobs_cronjob_every_minute(t: T) -> None:
    """a CronJob `*/1 * * * *` creates `<name>-<unix minutes>` Jobs that complete; `create job --from=cronjob` works."""
    nodes(t)
    ns = t.namespace()
    t.ok("create", "cronjob", "tick", "--image=busybox", "--schedule=*/1 * * * *", "-n", ns, "--", "true")

    def scheduled() -> list:
        return [j for j in t.json("get", "jobs", "-n", ns)["items"]
                if any(r["kind"] == "CronJob" for r in j["metadata"].get("ownerReferences", []))
                and "cronjob.kubernetes.io/instantiate" not in j["metadata"].get("annotations", {})]
    # Waits for the next minute boundary: the one slow scenario of this file.
    t.true(poll(lambda: scheduled() != [], 90, interval=1), "a Job is created within a minute", t.last_cmd)
    job = scheduled()[0]
    name = job["metadata"]["name"]
    stamp = job["metadata"]["annotations"].get("batch.kubernetes.io/cronjob-scheduled-timestamp", "")
    t.match(stamp, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$", "scheduled timestamp annotation (RFC 3339, UTC)")
    import datetime
    minutes = int(datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
                  .replace(tzinfo=datetime.timezone.utc).timestamp()) // 60
    t.eq(name, f"tick-{minutes}", "Job named <cronjob>-<scheduled unix minutes>")
    t.eq([(r["kind"], r["name"], r.get("controller")) for r in job["metadata"]["ownerReferences"]],
         [("CronJob", "tick", True)], "Job owned by the CronJob")
    _wait_condition(t, ns, name, "complete", 60)
    t.true(poll(lambda: t.json("get", "cronjob", "tick", "-n", ns).get("status", {}).get("lastSuccessfulTime")
                is not None, 30), "lastSuccessfulTime set", t.last_cmd)
    status = t.json("get", "cronjob", "tick", "-n", ns)["status"]
    t.eq(status.get("lastScheduleTime"), stamp, "lastScheduleTime is the scheduled time")
    t.true(not any(a.get("name") == name for a in status.get("active", [])), "finished Job left the active list",
           status)
    events = _events(t, ns, "CronJob", "tick")
    t.true(("Normal", "SuccessfulCreate", f"Created job {name}") in events, "SuccessfulCreate event", events)
    t.true(("Normal", "SawCompletedJob", f"Saw completed job: {name}, status: Complete") in events,
           "SawCompletedJob event", events)

    t.eq(t.ok("create", "job", "by-hand", "--from=cronjob/tick", "-n", ns).strip(), "job.batch/by-hand created",
         "kubectl create job --from=cronjob")
    manual = t.json("get", "job", "by-hand", "-n", ns)
    t.eq(manual["metadata"]["annotations"].get("cronjob.kubernetes.io/instantiate"), "manual", "instantiate annotation")
    _wait_condition(t, ns, "by-hand", "complete", 60)
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def jobs_cronjob_invalid_schedule(t: T) -> None:
    """a CronJob whose schedule parses but never fires (`0 0 30 2 *`) gets upstream's InvalidSchedule warning."""
    ns = t.namespace()
    t.ok("create", "cronjob", "never", "--image=busybox", "--schedule=0 0 30 2 *", "-n", ns, "--", "true")
    note = "invalid schedule: 0 0 30 2 * : time difference between two schedules is less than 1 second"
    t.true(poll(lambda: ("Warning", "InvalidSchedule", note) in _events(t, ns, "CronJob", "never"), 30),
           "InvalidSchedule event", t.last_cmd)
    t.eq(t.json("get", "jobs", "-n", ns)["items"], [], "no Job created")
    t.ok("delete", "namespace", ns, "--wait=false")
