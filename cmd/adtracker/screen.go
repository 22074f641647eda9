package main

import (
	"go.uber.org/zap"

	"github.com/adtracker/adtracker/config"
	"github.com/adtracker/adtracker/ingest/enrich"
	"github.com/adtracker/adtracker/ingest/screen"
)

// newScreener builds invalid-traffic screening (ivt.*) and enrichment (geo.mmdb_path) for the ingest handlers. done releases
// the country database.
func newScreener(cfg *config.Config, log *zap.Logger) (s *screen.Screener, done func(), err error) {
	var geo *enrich.Geo
	done = func() {}
	if p := cfg.Geo.MMDBPath; p != "" {
		if geo, err = enrich.OpenGeo(p); err != nil {
			return nil, nil, err
		}
		done = func() { _ = geo.Close() }
		log.Info("country database open", zap.String("path", p), zap.String("type", geo.DatabaseType()))
	}
	s, err = screen.New(screen.Config{
		Disabled: !cfg.IVT.Enabled, DenyCIDRs: cfg.IVT.DenyCIDRs, DenyUserAgents: cfg.IVT.DenyUserAgents,
		ClickWindow: cfg.IVT.ClickWindow, ClickTableBytes: cfg.IVT.ClickTableBytes,
	}, enrich.New(geo))
	if err != nil {
		done()
		return nil, nil, err
	}
	clicks, bytes := s.ClickTableSize()
	log.Info("invalid traffic screening", zap.Bool("enabled", cfg.IVT.Enabled), zap.Int("deny_cidrs", len(cfg.IVT.DenyCIDRs)),
		zap.Int("deny_user_agents", len(cfg.IVT.DenyUserAgents)), zap.Duration("click_window", cfg.IVT.ClickWindow),
		zap.Int("click_table_clicks", clicks), zap.Int("click_table_bytes", bytes), zap.Bool("country", geo != nil))
	return s, done, nil
}
