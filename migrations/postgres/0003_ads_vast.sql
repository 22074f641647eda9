-- What a VAST MediaFile needs (issue 17), and the weight GET /vast chooses ads by. Existing ads get the defaults: an MP4 file of
-- 1280×720 delivered progressively, bitrate not stated (0: the MediaFile carries no bitrate attribute), weight 1.
-- The API validates the same rules (catalog/http.go); the constraints keep the table right for direct writers.
ALTER TABLE ads ADD COLUMN IF NOT EXISTS video_mime_type TEXT NOT NULL DEFAULT 'video/mp4'
    CONSTRAINT ads_video_mime_type_check CHECK (video_mime_type ~ '^[A-Za-z0-9][A-Za-z0-9.+-]*/[A-Za-z0-9][A-Za-z0-9.+-]*$' AND char_length(video_mime_type) <= 100);

ALTER TABLE ads ADD COLUMN IF NOT EXISTS video_width INTEGER NOT NULL DEFAULT 1280
    CONSTRAINT ads_video_width_check CHECK (video_width BETWEEN 1 AND 10000);

ALTER TABLE ads ADD COLUMN IF NOT EXISTS video_height INTEGER NOT NULL DEFAULT 720
    CONSTRAINT ads_video_height_check CHECK (video_height BETWEEN 1 AND 10000);

ALTER TABLE ads ADD COLUMN IF NOT EXISTS video_bitrate_kbps INTEGER NOT NULL DEFAULT 0
    CONSTRAINT ads_video_bitrate_kbps_check CHECK (video_bitrate_kbps BETWEEN 0 AND 1000000);

ALTER TABLE ads ADD COLUMN IF NOT EXISTS video_delivery TEXT NOT NULL DEFAULT 'progressive'
    CONSTRAINT ads_video_delivery_check CHECK (video_delivery IN ('progressive', 'streaming'));

ALTER TABLE ads ADD COLUMN IF NOT EXISTS weight INTEGER NOT NULL DEFAULT 1
    CONSTRAINT ads_weight_check CHECK (weight BETWEEN 0 AND 1000000);
