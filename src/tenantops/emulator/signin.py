"""The minimal sign-in page of the emulator's authorize endpoint."""

from __future__ import annotations

from jinja2 import Environment, select_autoescape

__all__ = ["render_error", "render_form_post", "render_signin"]

_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))

_SIGNIN = _env.from_string(
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in - tenantops emulator</title>
<style>
 body{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem}
 label{display:block;margin-top:1rem} input{width:100%;padding:.5rem;font-size:1rem}
 button{margin-top:1.5rem;padding:.6rem 1.2rem;font-size:1rem}
 .error{color:#a00;border:1px solid #a00;padding:.5rem} .note{color:#555;font-size:.9rem}
</style>
</head>
<body>
<main>
<h1>Sign in</h1>
<p class="note">Local Entra ID emulator, tenant {{ tenant_id }}. Signing in to
<strong>{{ client_name }}</strong>. Not Microsoft: never enter a real password here.</p>
{% if error %}<p class="error" role="alert" id="signin-error">{{ error }}</p>{% endif %}
<form method="post" action="{{ action }}">
{% for name, value in hidden %}<input type="hidden" name="{{ name }}" value="{{ value }}">
{% endfor %}
<label for="username">Username</label>
<input id="username" name="username" type="email" autocomplete="username" required
 value="{{ username }}" {% if error %}aria-describedby="signin-error"{% endif %}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
{% if users %}<p class="note">Users in this directory: {{ users|join(", ") }}</p>{% endif %}
</main>
</body>
</html>
"""
)

_ERROR = _env.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign-in error</title></head>
<body><main><h1>Sorry, but we're having trouble signing you in.</h1>
<p role="alert">{{ message }}</p></main></body></html>
"""
)


_FORM_POST = _env.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Working...</title></head>
<body onload="document.forms[0].submit()"><main>
<form method="post" action="{{ action }}">
{% for name, value in fields %}<input type="hidden" name="{{ name }}" value="{{ value }}">
{% endfor %}<noscript><button type="submit">Continue</button></noscript>
</form></main></body></html>
"""
)


def render_form_post(action: str, fields: list[tuple[str, str]]) -> str:
    """The auto-submitting form of ``response_mode=form_post``."""
    return _FORM_POST.render(action=action, fields=fields)


def render_signin(
    *, tenant_id: str, client_name: str, action: str, hidden: list[tuple[str, str]],
    users: list[str], username: str = "", error: str | None = None,
) -> str:
    return _SIGNIN.render(tenant_id=tenant_id, client_name=client_name, action=action,
                          hidden=hidden, users=users, username=username, error=error)


def render_error(message: str) -> str:
    return _ERROR.render(message=message)
