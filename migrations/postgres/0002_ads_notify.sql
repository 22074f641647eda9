-- Tell listeners (the in-memory ad catalogue of every adtracker process) which ad changed, so
-- ingest validation and the click redirect see new, paused and archived ads within a moment
-- instead of at the next periodic reload. The payload is the ad id.
--
-- The function body is a single-quoted string rather than $$...$$ because the migration
-- splitter (migrations.Statements) does not understand dollar quoting and would cut the body
-- at its inner semicolons.
CREATE OR REPLACE FUNCTION ads_notify_changed() RETURNS trigger LANGUAGE plpgsql AS '
BEGIN
    IF TG_OP = ''DELETE'' THEN
        PERFORM pg_notify(''ads_changed'', OLD.id::text);
    ELSE
        PERFORM pg_notify(''ads_changed'', NEW.id::text);
    END IF;
    RETURN NULL;
END
';

DROP TRIGGER IF EXISTS ads_notify_changed ON ads;

CREATE TRIGGER ads_notify_changed
    AFTER INSERT OR UPDATE OR DELETE ON ads
    FOR EACH ROW EXECUTE FUNCTION ads_notify_changed();
