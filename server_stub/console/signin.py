"""Signing in and out of the console."""
from __future__ import annotations

from aiohttp import web

from server_stub.accounts import AUTH, PRINCIPAL_KEY
from server_stub.console.render import redirect_after_post, render, safe_next
from server_stub.errors import Forbidden, RateLimited, Unauthorized


async def signin_form(request: web.Request) -> web.StreamResponse:
    principal = request.app[AUTH].principal(request)
    if principal is not None and principal.via == "session":
        return redirect_after_post(safe_next(request.query.get("next")))
    return render(request, "signin.html", next=safe_next(request.query.get("next")), name="", error="")


async def signin(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
    target = safe_next(str(form.get("next", "/")))
    try:
        token, _ = await request.app[AUTH].sign_in(name, password, request.remote)
    except (Unauthorized, RateLimited) as exc:
        response = render(request, "signin.html", exc.status, next=target, name=name, error=exc.message)
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    response = redirect_after_post(target)
    request.app[AUTH].set_cookie(response, token)
    return response


async def signout(request: web.Request) -> web.StreamResponse:
    auth = request.app[AUTH]
    principal = auth.principal(request)
    response = redirect_after_post("/signin")
    if principal is not None and principal.via == "session":
        request[PRINCIPAL_KEY] = principal
        try:
            await auth.check_csrf(request, principal)
        except Forbidden:
            return render(request, "error.html", 403, title="Form expired",
                          message="The sign-out form is stale: reload the page and sign out again.")
        auth.sign_out(principal, request.remote)
    auth.clear_cookie(response)
    return response


def routes() -> list[web.RouteDef]:
    return [web.get("/signin", signin_form), web.post("/signin", signin), web.post("/signout", signout)]
