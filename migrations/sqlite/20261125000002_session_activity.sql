-- A new message moves its session's last activity in the same statement that stores it, so that
-- storing a message is one statement (atomic on its own) instead of a transaction of two.
CREATE TRIGGER messages_session_activity AFTER INSERT ON messages BEGIN
    UPDATE sessions SET updated_ts = MAX(updated_ts, new.ts) WHERE id = new.session_id;
END;
