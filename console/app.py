"""The console's ASGI app: server-rendered pages (Starlette + Jinja2), forms for the actions.

Why server-rendered: every page is a query and a table; HTML forms give the dry-run preview,
the confirmation and the CSRF token without a client-side application to build, audit and
keep in step with the server. The one script (``static/console.js``) only disables a submit
button once pressed, so a double click does not post twice; every page works without it.

Safety, in the order a request meets it: the user (a session made by logging in with the
password file, or a trusted reverse proxy's header), then for every POST the CSRF token
(the session's, compared in constant time), then read-only mode, then the action, audited.

Public names: ``Console``, ``create_app``.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from console import actions, audit, index
from console.auth import verify
from console.index import Filter
from console.letter import shown
from console.settings import ConsoleSettings
from consumers.dlq import (
    DeadLetterFormatError,
    DeadLetterNotFoundError,
    DeadLetterReader,
    decode_payload,
    ledger_entries,
    lenient_codec,
    parked_counts,
    parse_ref,
)
from oncepipe.db import connect
from oncepipe.errors import OncepipeError, first_line
from oncepipe.logging import get_logger
from oncepipe.settings import Settings
from schemas import Codec

__all__ = ["Console", "create_app"]

log = get_logger("console")
HERE = Path(__file__).parent
Overview = Callable[[], dict[str, Any]]
Endpoint = Callable[[Request], Awaitable[Response]]
PageWork = Callable[[Request, str], Awaitable[dict[str, Any]]]
ActionWork = Callable[[Request, str, FormData], Awaitable[dict[str, Any]]]


@dataclass
class Console:
    """What the app needs: settings, users, and the overview's data source."""

    settings: Settings
    console: ConsoleSettings
    users: dict[str, str]
    overview: Overview
    """``oncepipe status``'s snapshot, handed over by the CLI."""
    _codec: Codec | None = field(default=None, repr=False)

    def codec(self) -> Codec:
        """The lenient codec, loaded once."""
        if self._codec is None:
            self._codec = lenient_codec(self.settings)
        return self._codec


class RefusedError(Exception):
    """An answer other than the page: status and one line."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _csrf(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def _user(app: Console, request: Request) -> str | None:
    header = app.console.trusted_header
    if header:
        name = request.headers.get(header, "").strip()
        if name:
            return name
    user = request.session.get("user")
    return user if isinstance(user, str) and user in app.users else None


def _actor(user: str) -> str:
    return f"{user}@console"


class _Site:
    """The endpoints over one ``Console``."""

    def __init__(self, app: Console) -> None:
        self.app = app
        loader = jinja2.FileSystemLoader(HERE / "templates")
        self.templates = Jinja2Templates(env=jinja2.Environment(loader=loader, autoescape=True))

    def render(self, request: Request, name: str, user: str | None, **context: Any) -> Response:
        """A page from its template."""
        context |= {
            "user": user,
            "csrf": _csrf(request),
            "read_only": self.app.console.read_only,
            "password_login": bool(self.app.users),
            "quote": quote,
        }
        response: Response = self.templates.TemplateResponse(request, name, context)
        _secure(response)
        return response

    def page(self, name: str, work: PageWork) -> Endpoint:
        """A GET page: the user first, then ``work`` gives the template's context."""

        async def endpoint(request: Request) -> Response:
            user = _user(self.app, request)
            if user is None:
                if self.app.console.trusted_header and not self.app.users:
                    header = self.app.console.trusted_header
                    return _refusal(401, f"no {header} header from the proxy")
                return RedirectResponse(f"/login?next={quote(request.url.path)}", 303)
            try:
                context = await work(request, user)
            except RefusedError as exc:
                return _refusal(exc.status, exc.detail)
            except OncepipeError as exc:
                context = {"error": first_line(exc)}
            return self.render(request, name, user, **context)

        return endpoint

    def action(self, name: str, work: ActionWork) -> Endpoint:
        """A POST action: the user, the CSRF token, read-only mode, then ``work``."""

        async def endpoint(request: Request) -> Response:
            user = _user(self.app, request)
            form = await request.form()
            if user is None:
                return _refusal(401, "log in first")
            if not _token_ok(request, form):
                await run_in_threadpool(_audit, self.app, user, "refused", form, "no CSRF token")
                return _refusal(403, "missing or wrong CSRF token: reload the page and try again")
            if self.app.console.read_only:
                await run_in_threadpool(_audit, self.app, user, "refused", form, "read-only")
                return _refusal(403, "the console runs read-only (--read-only)")
            try:
                context = await work(request, user, form)
            except RefusedError as exc:
                return _refusal(exc.status, exc.detail)
            except OncepipeError as exc:
                return _refusal(409, first_line(exc))
            return self.render(request, name, user, **context)

        return endpoint

    async def overview(self, request: Request, user: str) -> dict[str, Any]:
        """The overview page's data."""
        return await run_in_threadpool(_overview, self.app)

    async def failures(self, request: Request, user: str) -> dict[str, Any]:
        """Failure groups."""
        return await run_in_threadpool(_failures, self.app, Filter.of(request.query_params))

    async def letters(self, request: Request, user: str) -> dict[str, Any]:
        """A page of dead letters."""
        where = Filter.of(request.query_params)
        after = request.query_params.get("after")
        return await run_in_threadpool(_letters, self.app, where, after)

    async def letter(self, request: Request, user: str) -> dict[str, Any]:
        """One dead letter."""
        return await run_in_threadpool(_letter, self.app, request.path_params["ref"])

    async def audit(self, request: Request, user: str) -> dict[str, Any]:
        """The audit trail."""
        return await run_in_threadpool(_audit_page, self.app)

    async def preview(self, request: Request, user: str, form: FormData) -> dict[str, Any]:
        """The dry run of an action; audited as ``preview``."""
        kind, where, ref = _action_of(form)
        limit = self.app.console.max_action
        plan = await run_in_threadpool(actions.preview, self.app.settings, kind, where, ref, limit)
        detail = _summary(plan.counts)
        await run_in_threadpool(
            _audit, self.app, user, "preview", form, detail, len(plan.letters), 0
        )
        return {"plan": plan, "where": where, "ref": ref, "kind": kind,
                "rate": self.app.console.rate}  # fmt: skip

    async def run(self, request: Request, user: str, form: FormData) -> dict[str, Any]:
        """A confirmed action; audited with what it did."""
        kind, where, ref = _action_of(form)
        if form.get("confirm") != "yes":
            raise RefusedError(400, "not confirmed: tick the confirmation on the preview page")
        plan = await run_in_threadpool(
            _run, self.app, kind, where, ref, user=user, rate=form.get("rate")
        )
        done = plan.counts.get("sent", 0) if kind == "replay" else len(plan.letters)
        detail = _summary(plan.counts)
        expected = str(form.get("expected") or "")
        if expected and expected != str(len(plan.letters)):
            detail += f" (the preview selected {expected})"
        await run_in_threadpool(_audit, self.app, user, kind, form, detail, len(plan.letters), done)
        log.info("console action", actor=user, action=kind, selected=len(plan.letters), done=done)
        return {"plan": plan, "where": where, "ref": ref, "kind": kind}

    async def login_form(self, request: Request) -> Response:
        """The login page."""
        return self.render(request, "login.html", None, next=request.query_params.get("next", "/"))

    async def login(self, request: Request) -> Response:
        """Check the password; a new session on success."""
        form = await request.form()
        if not _token_ok(request, form):
            return _refusal(403, "missing or wrong CSRF token: reload the login page")
        name, password = str(form.get("username") or ""), str(form.get("password") or "")
        stored = self.app.users.get(name)
        ok = await run_in_threadpool(verify, password, stored) if stored else False
        if not ok:
            log.warning("console login refused", user=name)
            response = self.render(request, "login.html", None, next="/", failed=True)
            response.status_code = 401
            return response
        request.session.clear()  # a new session (and CSRF token) after login
        request.session["user"] = name
        return RedirectResponse(_local(str(form.get("next") or "/")), 303)

    async def logout(self, request: Request) -> Response:
        """End the session."""
        form = await request.form()
        if not _token_ok(request, form):
            return _refusal(403, "missing or wrong CSRF token")
        request.session.clear()
        return RedirectResponse("/login", 303)


async def _healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


def create_app(app: Console) -> Starlette:
    """The ASGI app over ``app``."""
    site = _Site(app)
    secret = app.console.secret_key
    routes = [
        Route("/", site.page("overview.html", site.overview)),
        Route("/failures", site.page("failures.html", site.failures)),
        Route("/letters", site.page("letters.html", site.letters)),
        Route("/letters/{ref:path}", site.page("letter.html", site.letter)),
        Route("/audit", site.page("audit.html", site.audit)),
        Route("/actions/preview", site.action("preview.html", site.preview), methods=["POST"]),
        Route("/actions/run", site.action("result.html", site.run), methods=["POST"]),
        Route("/login", site.login_form, methods=["GET"]),
        Route("/login", site.login, methods=["POST"]),
        Route("/logout", site.logout, methods=["POST"]),
        Route("/healthz", _healthz),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [
        Middleware(
            SessionMiddleware,
            secret_key=secret.get_secret_value() if secret else secrets.token_hex(32),
            session_cookie="oncepipe_console",
            same_site="strict",
            max_age=12 * 3600,
        )
    ]
    return Starlette(routes=routes, middleware=middleware)


def _local(target: str) -> str:
    """``target`` when it is a path on this site, else ``/`` (no redirect to another host)."""
    if target.startswith("/") and not target.startswith(("//", "/\\")) and "\\" not in target:
        return target
    return "/"


def _token_ok(request: Request, form: FormData) -> bool:
    expected = request.session.get("csrf")
    token = str(form.get("csrf") or "")
    return isinstance(expected, str) and hmac.compare_digest(token, expected)


def _run(
    app: Console, kind: str, where: Filter, ref: str | None, *, user: str, rate: Any
) -> actions.Plan:
    limit = app.console.max_action
    if kind == "replay":
        return actions.replay(
            app.settings, where, ref, limit, actor=_actor(user), rate=_rate(rate, app.console.rate)
        )
    return actions.discard(app.settings, where, ref, limit, actor=_actor(user))


def _secure(response: Response) -> None:
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"


def _refusal(status: int, detail: str) -> Response:
    response = PlainTextResponse(f"{detail}\n", status_code=status)
    _secure(response)
    return response


def _action_of(form: FormData) -> tuple[str, Filter, str | None]:
    kind = str(form.get("kind") or "")
    if kind not in ("replay", "discard"):
        raise RefusedError(400, "unknown action: choose replay or discard")
    ref = str(form.get("ref") or "").strip() or None
    where = Filter.of(form)
    if ref is None and not where.items():
        raise RefusedError(400, "no selection: act on a dead letter, a failure group or a filter")
    if ref is not None:
        try:
            parse_ref(ref)
        except DeadLetterFormatError as exc:
            raise RefusedError(400, str(exc)) from None
    return kind, where, ref


def _rate(raw: Any, default: float) -> float:
    try:
        rate = float(raw) if raw not in (None, "") else default
    except ValueError:
        raise RefusedError(400, f"rate {raw!r} is not a number (dead letters per second)") from None
    if not rate > 0:
        raise RefusedError(400, "rate must be above 0 (dead letters per second)")
    return rate


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "nothing selected"


def _audit(  # noqa: PLR0917 - called through run_in_threadpool, which passes positionals
    app: Console,
    user: str,
    action: str,
    form: FormData,
    detail: str,
    selected: int = 0,
    done: int = 0,
) -> None:
    selection = {k: str(v) for k, v in form.items() if k not in ("csrf", "confirm")}
    with connect(app.settings, "oncepipe-console", autocommit=True) as conn:
        audit.record(conn, _actor(user), action, selection, selected=selected, done=done,
                     detail=detail)  # fmt: skip


def _overview(app: Console) -> dict[str, Any]:
    data = app.overview()
    with connect(app.settings, "oncepipe-console", autocommit=True) as conn:
        parked = parked_counts(conn)
        indexed = index.indexed_per_topic(conn)
    return {
        "status": data,
        "parked": sorted(parked.items()),
        "indexed": indexed,
    }


def _failures(app: Console, where: Filter) -> dict[str, Any]:
    with connect(app.settings, "oncepipe-console", autocommit=True) as conn:
        groups = index.groups(conn, where)
    return {"groups": groups, "where": where, "query": urlencode(where.items())}


def _letters(app: Console, where: Filter, after: str | None) -> dict[str, Any]:
    cursor = None
    if after:
        try:
            cursor = parse_ref(after)
        except DeadLetterFormatError as exc:
            raise RefusedError(400, str(exc)) from None
    size = app.console.page_size
    with connect(app.settings, "oncepipe-console", autocommit=True) as conn:
        rows = index.page(conn, where, after=cursor, limit=size + 1)
        counted = index.count(conn, where) if cursor is None else None
    total = None if counted is None else f"{counted[0]}{'+' if counted[1] else ''}"
    more = len(rows) > size
    rows = rows[:size]
    query = urlencode(where.items())
    next_url = None
    if more:
        next_url = "/letters?" + urlencode(where.items() | {"after": rows[-1].ref})
    return {"rows": rows, "where": where, "total": total, "next_url": next_url, "query": query}


def _letter(app: Console, ref: str) -> dict[str, Any]:
    try:
        parse_ref(ref)
    except DeadLetterFormatError as exc:
        raise RefusedError(400, str(exc)) from None
    try:
        letter = DeadLetterReader(app.settings).fetch(ref)
    except DeadLetterNotFoundError as exc:
        raise RefusedError(404, first_line(exc)) from None
    payload = decode_payload(app.codec(), letter.value)
    with connect(app.settings, "oncepipe-console", autocommit=True) as conn:
        entry = ledger_entries(conn, [(letter.dlq_topic, letter.dlq_partition, letter.dlq_offset)])
    return {
        "shown": shown(letter, payload, app.console.redacted),
        "ledger": next(iter(entry.values()), None),
        "none_filter": Filter(),
    }


def _audit_page(app: Console) -> dict[str, Any]:
    with connect(app.settings, "oncepipe-console", autocommit=True) as conn:
        return {"entries": audit.recent(conn)}
