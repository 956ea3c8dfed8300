"""Counting (`metrics`), errors to Sentry (`sentry`), and secrets kept out of both and of logs."""
