"""Drive the consent page like a browser: GET the authorization URL with a signed-in
session, submit the form, return the redirect (which carries the code or the error)."""

from bs4 import BeautifulSoup
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore


def session_cookie_for(user) -> str:
    """A session id signed in as `user` (what a browser holds after logging in)."""
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return session.session_key


def consent(browser, authorize_url: str, *, workspace_id=None, allow: bool = True):
    """Load the consent page and submit it. Returns the final (non-followed) response."""
    page = browser.get(authorize_url)
    if page.status_code != 200:
        return page
    soup = BeautifulSoup(page.text, "html.parser")
    form = soup.find("form", id="authorizationForm")
    data = {
        field["name"]: field.get("value", "")
        for field in form.find_all("input", type="hidden")
        if field.get("name")
    }
    if workspace_id is not None:
        data["workspace"] = str(workspace_id)
    if allow:
        data["allow"] = "Authorize"
    return browser.post(str(page.url), data=data, headers={"Referer": str(page.url)})


def browser_for(live_server_url: str, user, httpx):
    client = httpx.Client(base_url=live_server_url, follow_redirects=False)
    client.cookies.set(settings.SESSION_COOKIE_NAME, session_cookie_for(user))
    return client
