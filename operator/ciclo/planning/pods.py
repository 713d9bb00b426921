"""What a Model's pods tell the planner: whether a version's artifact was fetched and
matched its digest, and whether its server crash-loops. Read only while there is
something to learn (a rollout, a version not yet judged)."""

from __future__ import annotations

from ciclo.planning import manifests
from ciclo.planning.manifests import Json


def fetch_outcomes(pods: list[Json]) -> dict[str, tuple[bool, str]]:
    """Per version, what its pods say of the artifact: every fetch step of a pod exited 0
    (True: `ciclo fetch` exits 0 only on a digest match, and that wins over an earlier
    failure, which may have been transient), or one failed (False, its last line).
    Versions whose pods say nothing yet are absent."""
    out: dict[str, tuple[bool, str]] = {}
    for pod in pods:
        version = pod["metadata"].get("labels", {}).get(manifests.VERSION_LABEL)
        fetches = [
            i
            for i in pod.get("status", {}).get("initContainerStatuses", [])
            if i["name"].startswith("fetch")
        ]
        if version is None or not fetches:
            continue
        done = [i.get("state", {}).get("terminated") for i in fetches]
        if all(t and t.get("exitCode") == 0 for t in done):
            out[version] = (True, "the artifact was fetched and its sha256 matched")
            continue
        for init in fetches:
            terminated = init.get("state", {}).get("terminated") or init.get("lastState", {}).get(
                "terminated"
            )
            if (
                terminated
                and terminated.get("exitCode", 0) != 0
                and out.get(version, (False,))[0] is False
            ):
                why = (
                    terminated.get("message") or terminated.get("reason") or "the fetch failed"
                ).strip()
                out[version] = (False, why.splitlines()[-1])
                break
    return out


def crash_loops(pods: list[Json]) -> dict[str, str]:
    """Versions with a serving container in CrashLoopBackOff, and how it last ended."""
    out: dict[str, str] = {}
    for pod in pods:
        version = pod["metadata"].get("labels", {}).get(manifests.VERSION_LABEL)
        for c in pod.get("status", {}).get("containerStatuses", []):
            if version is None or c.get("state", {}).get("waiting", {}).get("reason") != (
                "CrashLoopBackOff"
            ):
                continue
            last = c.get("lastState", {}).get("terminated") or {}
            detail = (last.get("message") or last.get("reason") or "").strip()
            code = last.get("exitCode")
            out[version] = (
                f"container {c['name']} crash-looping"
                + (f" (exit code {code})" if code is not None else "")
                + (f": {detail.splitlines()[-1]}" if detail else "")
            )
    return out
