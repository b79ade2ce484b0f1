"""The operator dashboard: accounts and sessions, the /api/dash/* API, live data, pages.

Everything of the dashboard lives in this folder. The data routes under /api/dash/* are
the REST API v1 resource handlers mounted a second time behind session authentication
(see `routes`), so the dashboard reads and changes exactly what the REST API does, scoped
to the session's workspace the same way.
"""
