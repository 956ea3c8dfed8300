"""The Digitaleo REST API client: OAuth 2.0 client credentials, a token shared through Redis, retries.

requests with urllib3's `Retry` on the Session's adapter does the backoff for network
errors and 5xx answers (well-kept and already what `requests` users know), so this
module only adds the token: fetched once for all workers, kept in Redis until shortly
before `expires_in`, renewed once when the API answers 401. The token and the client
secret are never logged, and are removed from any error text.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from redis import Redis
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from webhooks.telemetry import metrics
from webhooks.telemetry.redaction import redact

from .config import DigitaleoConfig

log = logging.getLogger("webhooks.digitaleo")

TOKEN_KEY = "smshooks:digitaleo:token"
TOKEN_LOCK = "smshooks:digitaleo:token-lock"
RETRY_STATUSES = (500, 502, 503, 504)


class DigitaleoError(RuntimeError):
    """The API refused a call (4xx), kept failing (5xx, network), or answered something unreadable."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def make_session(retries: int = 3, backoff: float = 0.5) -> requests.Session:
    """A Session retrying network errors and 5xx with exponential backoff (`backoff` × 2ⁿ s)."""
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "POST"}),
        raise_on_status=False,
        respect_retry_after_header=True,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class DigitaleoClient:
    """GETs on the REST API with a bearer token every worker shares."""

    def __init__(self, config: DigitaleoConfig, redis: Redis, session: requests.Session | None = None) -> None:
        if not config.enabled:
            raise DigitaleoError("DIGITALEO_CLIENT_ID and DIGITALEO_CLIENT_SECRET must both be set to call the API")
        self.config = config
        self.redis = redis
        self.session = session or make_session()

    def get(self, resource: str, params: dict[str, Any]) -> Any:
        """The JSON answer of `GET <api>/<resource>`; renews the token once on a 401."""
        url = f"{self.config.api_url}/{resource}"
        token = self.token()
        response = self._send("GET", url, token, params=params)
        if response.status_code == 401:
            log.info("Digitaleo answered 401: renewing the access token once")
            self._forget(token)
            token = self.token()
            response = self._send("GET", url, token, params=params)
        return self._json(response, f"GET /{resource}", token)

    def token(self) -> str:
        """The shared token from Redis, or a new one (one worker fetches; the others wait and reuse it)."""
        cached = self.redis.get(TOKEN_KEY)
        if cached:
            return cached.decode() if isinstance(cached, bytes) else cached
        with self.redis.lock(
            TOKEN_LOCK, timeout=self.config.timeout * 4 + 10, blocking_timeout=self.config.timeout * 4 + 10
        ):
            cached = self.redis.get(TOKEN_KEY)  # another worker may have fetched it while we waited
            if cached:
                return cached.decode() if isinstance(cached, bytes) else cached
            return self._fetch_token()

    def _fetch_token(self) -> str:
        response = self._send("POST", self.config.token_url, None, credentials=True)
        token, lifetime = self._token_answer(self._json(response, "POST token", None))
        # Renewed a little before it expires, so a call never starts with a token about to lapse.
        keep = max(lifetime - max(30, lifetime // 10), 1)
        self.redis.set(TOKEN_KEY, token, ex=keep)
        log.info("Digitaleo access token obtained (valid %ss, shared for %ss)", lifetime, keep)
        return token

    def _credentials(self) -> dict[str, str | None]:
        # Built inside the request call, so that no frame variable holds it: error reports
        # (Sentry) show frame variables, and scrub only those named like `token` or `secret`.
        return {
            "grant_type": "client_credentials",
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
        }

    @staticmethod
    def _token_answer(answer: Any) -> tuple[str, int]:
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            keys = sorted(answer) if isinstance(answer, dict) else type(answer).__name__
            raise DigitaleoError(f"the token answer has no access_token (keys: {keys})")
        try:
            return token, int(answer.get("expires_in") or 3600)  # the document shows it as a string
        except (TypeError, ValueError):
            return token, 3600

    def _forget(self, token: str) -> None:
        """Drop the cached token if it is still the one refused (another worker may have renewed it)."""
        cached = self.redis.get(TOKEN_KEY)
        if cached is not None and (cached.decode() if isinstance(cached, bytes) else cached) == token:
            self.redis.delete(TOKEN_KEY)

    def _send(
        self, method: str, url: str, token: str | None, credentials: bool = False, **kwargs: Any
    ) -> requests.Response:
        """One request (retried by the Session); the token and the credentials are built into it here."""
        endpoint = "token" if credentials else url.rstrip("/").rpartition("/")[2]
        try:
            response = self.session.request(
                method,
                url,
                timeout=(self.config.timeout, self.config.timeout),
                headers={"Authorization": f"Bearer {token}"} if token else None,
                data=self._credentials() if credentials else None,
                **kwargs,
            )
        except requests.RequestException as err:
            metrics.api_call(
                "digitaleo", endpoint, "timeout" if isinstance(err, requests.Timeout) else "error", self.redis
            )
            # The exception text names the URL (no secret in it) and the cause.
            raise DigitaleoError(f"{method} {url} failed after retries: {type(err).__name__}: {err}") from None
        code = response.status_code
        metrics.api_call("digitaleo", endpoint, "ok" if code < 400 else f"http_{code // 100}xx", self.redis)
        return response

    def _json(self, response: requests.Response, what: str, token: str | None) -> Any:
        if response.status_code >= 400:
            detail = self._clean(response.text[:300], token)
            message = f"Digitaleo {what} answered {response.status_code}: {detail}"
            if response.status_code < 500:
                # A 4xx will not cure itself: credentials, parameters or a disabled status check.
                log.error("%s", message)
            raise DigitaleoError(message, response.status_code)
        try:
            return response.json()
        except ValueError:
            raise DigitaleoError(
                f"Digitaleo {what} answered {response.status_code} with a body that is "
                f"not JSON: {self._clean(response.text[:100], token)!r}"
            ) from None

    def _clean(self, text: str, token: str | None) -> str:
        return redact(text, tuple(s for s in (token, self.config.client_secret) if s))  # a tuple: never split on commas
