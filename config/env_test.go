package config

import (
	"reflect"
	"testing"
)

func TestUnknownEnv(t *testing.T) {
	environ := []string{
		"PATH=/usr/bin",
		"ADTRACKER_HTTP_ADDR=:8080",           // a setting
		"ADTRACKER_ADMIN_TOKNE=s3cret",        // transposed letters
		"ADTRACKER_POSTGRES_URL=postgres://x", // another word
		"ADTRACKER_INGEST_DATADIR=/var/lib/x", // a missing underscore
		"ADTRACKER_LOG_LEVL=debug",            // a dropped letter
		"ADTRACKER_TEST_PG_DSN=postgres://t",  // a harness's own: no setting is close
		"ADTRACKER_CLICKHOUSE_HOST=ch",        // too far from clickhouse.addr to guess
		"ADTRACKER_=x",
		"adtracker_http_addr=:1", // environment names are case-sensitive: Load does not read it either
	}
	want := []UnknownVar{
		{Name: "ADTRACKER_"},
		{Name: "ADTRACKER_ADMIN_TOKNE", DidYouMean: "ADTRACKER_ADMIN_TOKEN"},
		{Name: "ADTRACKER_CLICKHOUSE_HOST"},
		{Name: "ADTRACKER_INGEST_DATADIR", DidYouMean: "ADTRACKER_INGEST_DATA_DIR"},
		{Name: "ADTRACKER_LOG_LEVL", DidYouMean: "ADTRACKER_LOG_LEVEL"},
		{Name: "ADTRACKER_POSTGRES_URL", DidYouMean: "ADTRACKER_POSTGRES_DSN"},
		{Name: "ADTRACKER_TEST_PG_DSN"},
	}
	if got := UnknownEnv(environ); !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

// Every setting's own variable is known, whatever Load's Settings hold next.
func TestUnknownEnvKnowsEverySetting(t *testing.T) {
	var environ []string
	for _, s := range Settings {
		environ = append(environ, s.Env()+"=x")
	}
	if got := UnknownEnv(environ); len(got) != 0 {
		t.Fatalf("settings reported unknown: %+v", got)
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"abc", "", 3}, {"", "ab", 2}, {"kitten", "sitting", 3}, {"TOKNE", "TOKEN", 2}, {"same", "same", 0}} {
		if got := editDistance(c.a, c.b); got != c.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
		if got := editDistance(c.b, c.a); got != c.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.b, c.a, got, c.d)
		}
	}
}
