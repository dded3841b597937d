"""
Single use under contention (figures 1 and 2)
=============================================

4 client processes x 50 threads each hold an open connection to the WSGI
server, wait on one multiprocessing barrier, and then all send the same SSO
link at once. Per trial exactly one response may be a 303 with a session
cookie; the other 199 must be 403 (never a 5xx). The same harness run against
the ``control`` variant, whose token store redeems with GET then SET, must
see more than one success in some trials: that is what shows the harness can
detect a race at all.

Each loser's request is a replay of a spent token, so the winner's session
must also be ended by the time the trial is over (replay policy): that is
checked too, with the token store itself, where the session lives.
"""

from __future__ import annotations

import http.client
import multiprocessing
import threading
import typing as t
from collections import Counter

from sso_middleware.sessions import SessionManager
from sso_middleware.stores.redis import RedisTokenStore

from .figures import Figure
from .harness import COOKIE_NAME, Lab, log

PROCESSES = 4
THREADS = 50


def _client_process(port: int, threads: int, barrier: t.Any, tasks: t.Any, results: t.Any) -> None:
    """One client process: for each link from ``tasks``, ``threads``
    threads connect, meet at the barrier, send the link and report."""
    while True:
        path = tasks.get()
        if path is None:
            return
        outcomes: list[tuple[str, str | None]] = []
        lock = threading.Lock()

        def one() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            outcome: tuple[str, str | None]
            try:
                conn.connect()
                connected = True
            except OSError as e:
                connected, outcome = False, (f"connect:{type(e).__name__}", None)
            try:
                barrier.wait(timeout=60)
                if connected:
                    conn.request("GET", path)  # noqa: B023 (threads joined in this trial)
                    response = conn.getresponse()
                    response.read()
                    cookie = None
                    for value in response.headers.get_all("Set-Cookie") or []:
                        if value.startswith(COOKIE_NAME + "="):
                            cookie = value.split(";", 1)[0].split("=", 1)[1] or None
                    outcome = (str(response.status), cookie)
            except Exception as e:  # reported, never hidden
                outcome = (f"error:{type(e).__name__}", None)
            finally:
                conn.close()
            with lock:  # noqa: B023 (threads joined in this trial)
                outcomes.append(outcome)  # noqa: B023

        workers = [threading.Thread(target=one) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        results.put(outcomes)


class Clients:
    """The client processes, kept across trials."""

    def __init__(self, port: int, processes: int = PROCESSES, threads: int = THREADS):
        context = multiprocessing.get_context("spawn")
        self.barrier = context.Barrier(processes * threads)
        self.tasks = [context.Queue() for _ in range(processes)]
        self.results = context.Queue()
        self.processes = [
            context.Process(
                target=_client_process, args=(port, threads, self.barrier, q, self.results), daemon=True
            )
            for q in self.tasks
        ]
        for process in self.processes:
            process.start()

    def race(self, path: str) -> list[tuple[str, str | None]]:
        for queue in self.tasks:
            queue.put(path)
        outcomes = []
        for _ in self.processes:
            outcomes.extend(self.results.get(timeout=180))
        return outcomes

    def close(self) -> None:
        for queue in self.tasks:
            queue.put(None)
        for process in self.processes:
            process.join(30)
            if process.is_alive():
                process.kill()
                process.join()
        for queue in [*self.tasks, self.results]:
            queue.close()
            queue.join_thread()


def run_trials(
    lab: Lab, variant: str, trials: int, *, check_sessions: bool, stop_at_first_race: bool = False
) -> dict[str, t.Any]:
    server = lab.server
    prefix = {"main": "sso:v2:", "single": "single:", "control": "control:"}[variant]
    client = lab.redises.client(lab.redis)
    sessions = SessionManager(RedisTokenStore(client, prefix=prefix), [lab.secret_key])
    clients = Clients(server.port)
    per_trial: list[int] = []
    statuses: Counter[str] = Counter()
    winners_ended = 0
    try:
        for _ in range(trials):
            if stop_at_first_race and any(n > 1 for n in per_trial):
                break
            _, path = server.mint(variant)
            outcomes = clients.race(path)
            successes = [cookie for status, cookie in outcomes if status == "303" and cookie]
            statuses.update(status for status, _ in outcomes)
            per_trial.append(len(successes))
            for cookie in successes:
                lab.canary.add_cookie(cookie)
            # 199 replays of the spent token must have ended the winner's session
            if check_sessions and len(successes) == 1 and sessions.resume(successes[0]) is None:
                winners_ended += 1
    finally:
        clients.close()
        client.close()
    return {
        "trials": len(per_trial),
        "per_trial": per_trial,
        "statuses": dict(statuses),
        "winners_ended": winners_ended,
        "requests": len(per_trial) * PROCESSES * THREADS,
    }


def prove(lab: Lab) -> list[Figure]:
    trials = 5 if lab.quick else 100
    default_trials = 3 if lab.quick else 20
    control_trials = 10 if lab.quick else 20
    log(f"contention: {trials} trials of {PROCESSES}x{THREADS} concurrent redemptions")
    real = run_trials(lab, "single", trials, check_sessions=False)
    log(f"contention with the default replay policy: {default_trials} trials")
    defaults = run_trials(lab, "main", default_trials, check_sessions=True)
    log(
        f"contention control (GET then SET): {control_trials} trials"
        + (", until the first race" if lab.quick else "")
    )
    control = run_trials(lab, "control", control_trials, check_sessions=False, stop_at_first_race=lab.quick)
    control_trials = control["trials"]
    exactly_one = sum(1 for n in real["per_trial"] if n == 1)
    other = {s: n for s, n in real["statuses"].items() if s not in ("303", "403")}
    raced = sum(1 for n in control["per_trial"] if n > 1)
    signed_in = sum(defaults["per_trial"])
    survivors = signed_in - defaults["winners_ended"]
    return [
        Figure(
            "1",
            "Single use under contention (4 proc x 50 threads, HTTP, barrier)",
            f"{exactly_one}/{trials} trials with exactly 1 success; {sum(real['per_trial'])} "
            f"successes of {real['requests']} requests; other statuses {other or 'none'}",
            f"{trials}/{trials} trials, no status but 303/403",
            exactly_one == trials and not other,
            real,
        ),
        Figure(
            "1",
            "Non-atomic control (GET then SET) detected",
            f"{raced}/{control_trials} trials with >1 success (max {max(control['per_trial'])})",
            ">= 1 trial with >1 success",
            raced >= 1,
            control,
        ),
        Figure(
            "2",
            "Replays under contention: no session outlives them (default policy)",
            f"{default_trials} trials: at most {max(defaults['per_trial'])} success per trial, "
            f"{signed_in} signed in, {survivors} sessions survived the 199 replays",
            "<= 1 per trial, 0 survivors",
            max(defaults["per_trial"]) <= 1 and survivors == 0,
            defaults,
        ),
    ]
