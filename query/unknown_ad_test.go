package query

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"testing"

	"github.com/fasthttp/router"

	"github.com/adtracker/adtracker/catalog"
	"github.com/adtracker/adtracker/storage/postgres"
	"github.com/adtracker/adtracker/storage/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// The analytics of an ad that is not in the catalogue answer 404 naming the parameter, like GET /ads/{id} and /c/{id}, instead of
// 200 with zeros; an archived ad keeps its analytics. Real Postgres behind the catalogue, real ClickHouse behind the service.
func TestUnknownAdIs404(t *testing.T) {
	ctx := context.Background()
	pg, err := postgres.Open(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	if _, err := pg.MigrateEmbedded(ctx); err != nil {
		t.Fatal(err)
	}
	db := openMigrated(t, 0)
	active, err := pg.Create(ctx, postgres.Ad{Name: "live", TargetURL: "https://example.com/live"})
	if err != nil {
		t.Fatal(err)
	}
	archived, err := pg.Create(ctx, postgres.Ad{Name: "old", TargetURL: "https://example.com/old"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Archive(ctx, archived.ID, archived.Version); err != nil {
		t.Fatal(err)
	}
	cat := catalog.New(pg, catalog.Config{})
	if !cat.Known(999) {
		t.Fatal("before its first load the catalogue must not call ads unknown")
	}
	if err := cat.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	s := New(db.Conn, db.Database)
	s.Ads = cat
	r := router.New()
	s.Register(r)
	unknown := strconv.FormatInt(archived.ID+1000, 10)
	f := func(uri string, status int, field string) {
		t.Helper()
		got, body := get(r.Handler, uri)
		if got != status {
			t.Fatalf("GET %s = %d %s, want %d", uri, got, body, status)
		}
		if status == 200 {
			return
		}
		var e apiError
		if err := json.Unmarshal(body, &e); err != nil || e.Field != field || (status == 404 && e.Error != "unknown ad") {
			t.Fatalf("GET %s = %d %s, want the error to name %q", uri, got, body, field)
		}
	}
	f("/ads/analytics?ad_id="+strconv.FormatInt(active.ID, 10), 200, "")
	f("/ads/analytics?ad_id="+strconv.FormatInt(archived.ID, 10), 200, "")
	f("/ads/"+strconv.FormatInt(archived.ID, 10)+"/timeseries", 200, "")
	f("/ads/analytics", 200, "") // the top list is not about one ad
	f("/ads/analytics?ad_id="+unknown, 404, "ad_id")
	f("/ads/analytics?ad_id="+unknown+"&fields=all", 404, "ad_id")
	f("/ads/"+unknown+"/timeseries", 404, "id")
	f("/ads/"+unknown+"/timeseries?interval=year", 400, "interval") // a malformed request is a 400 whatever the ad
	f("/ads/analytics?ad_id="+unknown+"&sort=nope", 400, "sort")
	f("/ads/"+strconv.FormatInt(archived.ID, 10)+"/breakdown?by=os", 200, "")
	f("/ads/"+unknown+"/breakdown?by=os", 404, "id")
	f("/ads/"+unknown+"/breakdown?by=city", 400, "by") // a malformed request is a 400 whatever the ad
	f("/ads/analytics?ad_id="+unknown+"&by=os", 404, "ad_id")
}
