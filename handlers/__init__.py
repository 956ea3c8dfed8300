"""Handlers run in RQ workers and take events somewhere: a database, Slack, email, a plug-in."""

from .base import Handler
from .registry import GROUP, HandlerError

__all__ = ["GROUP", "Handler", "HandlerError"]
