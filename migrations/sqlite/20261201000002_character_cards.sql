-- Character cards: the portrait that came with a card (or was set later), the greeting new
-- conversations start with, and which lorebook entries were in a reply's prompt.
-- The portrait lives in the row so that an import is one transaction: a card is either all
-- there or not at all.
ALTER TABLE characters ADD COLUMN portrait BLOB;
ALTER TABLE characters ADD COLUMN portrait_type TEXT
    CHECK (portrait_type IS NULL OR portrait_type IN ('image/png', 'image/jpeg', 'image/webp', 'image/gif'));
-- 0: the card's first_mes; n: its n-th alternate greeting.
ALTER TABLE characters ADD COLUMN greeting INTEGER NOT NULL DEFAULT 0 CHECK (greeting >= 0);
-- A JSON array of entry names; null when no entry fired (or the reply is not the model's).
ALTER TABLE messages ADD COLUMN lore TEXT CHECK (lore IS NULL OR json_valid(lore));
