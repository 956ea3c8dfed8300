"""Digitaleo: pings say that something changed; the API says what.

- `ping`: what a ping carries (pure);
- `statuses`: the API's status records as events (pure);
- `config`: the settings (DIGITALEO_*);
- `api`: the REST client, its OAuth token shared through Redis;
- `sync`: the worker side, pings turned into as few API calls as the provider asks.
"""
