-- Ad catalogue. The API validates too; these constraints keep the table right for anyone
-- who writes to it directly (psql, scripts).
CREATE TABLE IF NOT EXISTS ads (
    id               BIGSERIAL PRIMARY KEY,
    name             TEXT        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    image_url        TEXT        NOT NULL DEFAULT '' CHECK (image_url = '' OR (image_url ~ '^https?://' AND char_length(image_url) <= 2048)),
    video_url        TEXT        NOT NULL DEFAULT '' CHECK (video_url = '' OR (video_url ~ '^https?://' AND char_length(video_url) <= 2048)),
    target_url       TEXT        NOT NULL CHECK (target_url ~ '^https?://' AND char_length(target_url) <= 2048),
    duration_seconds INTEGER     NOT NULL DEFAULT 30 CHECK (duration_seconds BETWEEN 1 AND 3600),
    status           TEXT        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'archived')),
    version          BIGINT      NOT NULL DEFAULT 1,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- GET /ads pages by (status, id).
CREATE INDEX IF NOT EXISTS ads_status_id ON ads (status, id);
