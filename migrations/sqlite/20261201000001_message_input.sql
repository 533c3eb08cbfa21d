-- How a message was given: typed, or spoken and transcribed (`"input": "voice"` on the chat
-- request). Only the person's messages are ever voice; replies and older rows keep the default,
-- so adding the column rewrites nothing. A closed list, like `role`, so a typo never lands.
ALTER TABLE messages ADD COLUMN input TEXT NOT NULL DEFAULT 'text' CHECK (input IN ('text', 'voice'));
