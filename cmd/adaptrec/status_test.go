package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
	"github.com/adaptrec/adaptrec/sink"
)

// The worker prints the link of its status page, which serves the page
// and the worker's own status (its model) at /status.json.
func TestWorkerPrintsTheStatusPage(t *testing.T) {
	t.Setenv("OTEL_SDK_DISABLED", "true")
	cfg := configs.Default()
	cfg.Metrics.Addr = "127.0.0.1:0"
	cfg.Recommender.Model = "itemknn"
	rec, err := wire.Model(cfg)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	out := pipeline.Outputs{Recs: sink.NewMemory(), DLQ: sink.NewMemory(), Decisions: sink.NewMemory()}
	w := pipeline.NewWorker(cfg, log, rec, nil, out)
	var stdout bytes.Buffer
	a := &app{stdout: &stdout, stderr: io.Discard, flags: map[string]*pflag.Flag{}}
	stop, err := a.instrument(t.Context(), cfg, log, w, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	m := regexp.MustCompile(`(?m)^status page: (http://127\.0\.0\.1:\d+/)$`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no status page link on stdout: %q", stdout.String())
	}
	if body := httpGet(t, m[1]); !strings.Contains(body, "<title>adaptrec status</title>") {
		t.Fatalf("%s is not the status page: %.200s", m[1], body)
	}
	var st telemetry.StatusReport
	if body := httpGet(t, m[1]+"status.json"); json.Unmarshal([]byte(body), &st) != nil || st.Model.Name != "itemknn" || st.Model.Architecture {
		t.Fatalf("/status.json does not describe the worker's model: %s", body)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}
