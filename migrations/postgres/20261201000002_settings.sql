-- The settings every instance shares: one row holding the same document the settings file holds
-- for a single instance (JSON, API keys sealed), and a revision each save raises. A save names
-- the revision it started from, so two instances saving at once cannot overwrite each other
-- unseen; each save notifies the channel `waifu_settings`, so the others read it at once.
CREATE TABLE settings (
    id         integer PRIMARY KEY CHECK (id = 1),
    doc        text    NOT NULL CHECK (doc::jsonb IS NOT NULL),
    revision   bigint  NOT NULL CHECK (revision > 0),
    updated_ts double precision NOT NULL
);
