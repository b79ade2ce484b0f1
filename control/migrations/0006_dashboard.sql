-- 0006: dashboard accounts and their server-side sessions.
-- A user belongs to one workspace with a role; the e-mail address is the login name, so it
-- is unique across workspaces. Passwords are stored only as argon2id encoded hashes.
-- Session ids are stored only as SHA-256 hex digests (like deploy tokens); the CSRF token
-- is kept per session (synchronizer token) and is useless without the session cookie.

CREATE TABLE dash_users (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    email         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    password_hash TEXT NOT NULL,
    created_at    REAL NOT NULL
);
CREATE INDEX dash_users_workspace ON dash_users(workspace_id);

CREATE TABLE dash_sessions (
    id         INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id    INTEGER NOT NULL REFERENCES dash_users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_seen  REAL NOT NULL
);
CREATE INDEX dash_sessions_user ON dash_sessions(user_id);
