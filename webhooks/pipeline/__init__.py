"""From the inbox to the handlers: the ingest write, dispatch, handler jobs, their marks and failures."""
