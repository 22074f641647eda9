// Package chromium starts Debian's headless chromium for the browser tests (the dashboard's, the VAST player's); it never downloads a browser.
package chromium

import (
	"context"
	"os"
	"testing"

	"github.com/chromedp/chromedp"
)

// Path is Debian's chromium.
const Path = "/usr/bin/chromium"

// EnvRequire makes a missing chromium (or another tool a browser test needs) a failure instead of a skip; make test sets it.
const EnvRequire = "ADTRACKER_REQUIRE_CHROMIUM"

// Require skips t when what is missing (e.g. "/usr/bin/chromium", "ffmpeg") is absent, or fails it when EnvRequire is set; install
// says how to get it.
func Require(t *testing.T, what, install string) {
	t.Helper()
	if os.Getenv(EnvRequire) != "" {
		t.Fatalf("%s is missing and %s is set: %s (make test does it)", what, EnvRequire, install)
	}
	t.Skipf("%s is missing: %s, or run make test (it does it); set %s to fail instead", what, install, EnvRequire)
}

// Allocator returns the allocator context of a fresh headless chromium (root-safe flags, its own user-data dir, no background
// traffic) with extra options added; it skips or fails t (Require) when chromium is missing. The browser is closed at t's cleanup.
func Allocator(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	if _, err := os.Stat(Path); err != nil {
		Require(t, Path, "apt-get install chromium")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), append(opts, extra...)...)
	t.Cleanup(cancel)
	return actx
}
