-- The conversation history: characters, sessions, messages and their full-text index.
-- Times are unix seconds as REAL because the earlier server's clients read `ts`/`created_ts` as floats.

-- Characters are the companions a session talks to. Row 1 is the default companion; the app refuses
-- to delete it so that every session always has someone to answer.
CREATE TABLE characters (
    id                 INTEGER PRIMARY KEY,
    name               TEXT    NOT NULL CHECK (length(trim(name)) > 0),
    system_prompt      TEXT    NOT NULL CHECK (length(trim(system_prompt)) > 0),
    avatar_url         TEXT,
    voice_id           TEXT,
    tts_provider       TEXT,
    -- A JSON array of strings: the list is only ever read and written whole.
    personality_traits TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(personality_traits)),
    -- An imported character card is kept verbatim so that fields we do not use (extensions,
    -- lorebooks) are never destroyed on export.
    card_json          TEXT    CHECK (card_json IS NULL OR json_valid(card_json)),
    created_ts         REAL    NOT NULL,
    updated_ts         REAL    NOT NULL
);

INSERT INTO characters (id, name, system_prompt, personality_traits, created_ts, updated_ts) VALUES (
    1,
    'Aiko',
    'You are Aiko, a cheerful and kind anime companion who lives in the user''s browser. '
    || 'Answer in a warm, natural, spoken style: short sentences, no lists, no markdown, no emoji. '
    || 'Keep most replies to two or three sentences unless the user asks for more. '
    || 'Begin every reply with exactly one emotion tag that fits it, chosen from '
    || '[happy], [sad], [angry], [relaxed], [surprised] and [neutral].',
    '["cheerful","kind","curious"]',
    unixepoch('subsec'),
    unixepoch('subsec')
);

-- A session is one conversation. `updated_ts` moves with every new message so the sidebar can list
-- sessions by last activity without scanning the messages table.
CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    title        TEXT    NOT NULL DEFAULT 'New conversation',
    -- Which companion answers here; a deleted character falls back to the default (NULL = 1).
    character_id INTEGER REFERENCES characters(id) ON DELETE SET NULL,
    created_ts   REAL    NOT NULL,
    updated_ts   REAL    NOT NULL
);
CREATE INDEX sessions_by_activity ON sessions(updated_ts DESC, id DESC);

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    -- Deleting a session deletes its messages; the FTS delete trigger below fires for cascaded
    -- rows too, so they also leave the search index.
    session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    role        TEXT    NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    -- The text as shown and spoken: no <think> block, no emotion tag. This is what search indexes.
    text        TEXT    NOT NULL,
    -- Model reasoning (<think> or reasoning deltas) is kept, but apart, so it is never spoken.
    reasoning   TEXT,
    -- The emotion tag parsed out of an assistant reply (happy, sad, ...), NULL when there was none.
    emotion     TEXT,
    -- 1 when the reply was cut short (the user pressed Stop or the provider failed midway):
    -- what arrived is kept rather than lost.
    partial     INTEGER NOT NULL DEFAULT 0 CHECK (partial IN (0, 1)),
    -- The latency trace of the turn that produced this reply: a JSON object of stage -> ms.
    timings     TEXT    CHECK (timings IS NULL OR json_valid(timings)),
    ts          REAL    NOT NULL,
    edited_ts   REAL
);
-- Paging a session's messages walks this index in id order.
CREATE INDEX messages_by_session ON messages(session_id, id);

-- External-content FTS5 index over messages.text. unicode61 with diacritics removed so that
-- "cafe" finds "café". The triggers keep it in step on insert, update and delete.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    text,
    content = 'messages',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;

-- Without this trigger an edited message would still be found by its old words (the earlier
-- server's bug).
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
END;
