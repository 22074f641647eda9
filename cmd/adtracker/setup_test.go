package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/adtracker/adtracker/config"
)

func TestServeURL(t *testing.T) {
	for addr, want := range map[string]string{
		"0.0.0.0:8080":    "http://localhost:8080/",
		"[::]:8080":       "http://localhost:8080/",
		"127.0.0.1:18088": "http://127.0.0.1:18088/",
		"[::1]:8080":      "http://[::1]:8080/",
		"10.0.0.5:80":     "http://10.0.0.5:80/",
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := serveURL(a); got != want {
			t.Errorf("serveURL(%s) = %s, want %s", addr, got, want)
		}
	}
}

// The start-up output says the URL to open and whether the admin API is on, with how to turn it on.
func TestLogServingSaysWhereToGo(t *testing.T) {
	a, _ := net.ResolveTCPAddr("tcp", "0.0.0.0:8080")
	for _, token := range []string{"", "secret"} {
		core, logs := observer.New(zapcore.InfoLevel)
		cfg := &config.Config{}
		cfg.Admin.Token = token
		logServing(zap.New(core), cfg, a)
		all := logs.All()
		if len(all) != 2 || all[0].Message != "serving" || all[0].ContextMap()["url"] != "http://localhost:8080/" {
			t.Fatalf("token %q: %+v", token, all)
		}
		msg, on := all[1].Message, all[1].ContextMap()["admin_api"]
		if token == "" && (on != false || !strings.Contains(msg, "set ADTRACKER_ADMIN_TOKEN")) ||
			token != "" && (on != true || strings.Contains(msg, token)) {
			t.Fatalf("token %q: admin line %q admin_api=%v", token, msg, on)
		}
	}
}

// A misspelt variable is not read — the setting keeps its default — and every command says so at start, naming the variable
// it probably meant and never the value (it may be a secret).
func TestMisspeltVariableIsReported(t *testing.T) {
	cmd := exec.Command(adtrackerBin(t), "spill", "ls")
	cmd.Env = append(os.Environ(), "ADTRACKER_INGEST_DATA_DIR="+t.TempDir(), "ADTRACKER_ADMIN_TOKNE=s3cret-value",
		"ADTRACKER_LOG_FORMAT=json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("spill ls: %v\n%s", err, stderr.String())
	}
	var found bool
	for _, line := range strings.Split(stderr.String(), "\n") {
		var l struct {
			Level, Msg, Name string
			DidYouMean       string `json:"did_you_mean"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Name == "ADTRACKER_ADMIN_TOKNE" {
			found = l.Level == "warn" && l.DidYouMean == "ADTRACKER_ADMIN_TOKEN" && strings.Contains(l.Msg, "ignored")
		}
	}
	if !found || strings.Contains(stderr.String(), "s3cret-value") {
		t.Fatalf("stderr:\n%s", stderr.String())
	}
}
