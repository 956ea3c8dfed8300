"""The email path: provider emails over HTTP (`endpoint`) or SMTP (`smtpd`), read by `parse` and `text`."""
