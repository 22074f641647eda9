package config

import (
	"strings"
	"testing"
	"time"
)

func TestIVTAndGeoSettings(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if !c.IVT.Enabled || c.IVT.ClickWindow != 30*time.Minute || c.IVT.ClickTableBytes != 8<<20 || len(c.IVT.DenyCIDRs) != 0 ||
		len(c.IVT.DenyUserAgents) != 0 || c.Geo.MMDBPath != "" {
		t.Fatalf("defaults %+v %+v", c.IVT, c.Geo)
	}
	t.Setenv("ADTRACKER_IVT_DENY_CIDRS", "10.0.0.0/8,192.0.2.7")
	t.Setenv("ADTRACKER_IVT_DENY_USER_AGENTS", "badplayer/,scanner")
	t.Setenv("ADTRACKER_IVT_CLICK_WINDOW", "2h")
	t.Setenv("ADTRACKER_IVT_ENABLED", "false")
	t.Setenv("ADTRACKER_GEO_MMDB_PATH", "/var/lib/geo/country.mmdb")
	c, err = Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.IVT.Enabled || c.IVT.ClickWindow != 2*time.Hour || strings.Join(c.IVT.DenyCIDRs, " ") != "10.0.0.0/8 192.0.2.7" ||
		strings.Join(c.IVT.DenyUserAgents, " ") != "badplayer/ scanner" || c.Geo.MMDBPath != "/var/lib/geo/country.mmdb" {
		t.Fatalf("from env %+v %+v", c.IVT, c.Geo)
	}
	for env, want := range map[string]string{"ADTRACKER_IVT_CLICK_WINDOW": "ivt.click_window", "ADTRACKER_IVT_CLICK_TABLE_BYTES": "ivt.click_table_bytes"} {
		t.Run(env, func(t *testing.T) {
			val := "-1s"
			if strings.HasSuffix(env, "BYTES") {
				val = "63"
			}
			t.Setenv(env, val)
			if _, err := Load(""); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("%s=%s: %v, want an error naming %s", env, val, err, want)
			}
		})
	}
}
