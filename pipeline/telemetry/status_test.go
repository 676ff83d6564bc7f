package telemetry

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model"
)

var t0 = time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)

// The architecture history keeps a point when the widths change, or
// ArchEvery after the last one; in between, the model's size is not
// recorded again.
func TestStatusArchitecturePoints(t *testing.T) {
	s := NewStatus()
	for _, p := range []ArchPoint{
		{At: t0, Widths: []int{64}, Params: 100},
		{At: t0.Add(time.Second), Widths: []int{64}, Params: 110},               // dropped: same widths, too soon
		{At: t0.Add(2 * time.Second), Widths: []int{80}, Params: 120},           // kept: widths changed
		{At: t0.Add(2*time.Second + ArchEvery), Widths: []int{80}, Params: 130}, // kept: ArchEvery passed
	} {
		s.Architecture(p)
	}
	var params []int
	for _, p := range s.Report(t0).History {
		params = append(params, p.Params)
	}
	if got := fmt.Sprint(params); got != "[100 120 130]" {
		t.Fatalf("history params %s, want [100 120 130]", got)
	}
}

// The histories are bounded: the oldest points and decisions make room
// for the newest.
func TestStatusHistoriesBounded(t *testing.T) {
	s := NewStatus()
	extra := 7
	for i := range ArchHistory + extra {
		s.Architecture(ArchPoint{At: t0.Add(time.Duration(i) * time.Second), Widths: []int{i + 1}, Params: i})
	}
	for i := range DecisionHistory + extra {
		s.Decision(model.Decision{Epoch: i + 1}, t0)
	}
	r := s.Report(t0)
	if len(r.History) != ArchHistory || r.History[0].Params != extra || r.History[ArchHistory-1].Params != ArchHistory+extra-1 {
		t.Fatalf("history of %d points from %d to %d, want %d from %d", len(r.History), r.History[0].Params,
			r.History[len(r.History)-1].Params, ArchHistory, extra)
	}
	if len(r.Decisions) != DecisionHistory || r.Decisions[0].Epoch != DecisionHistory+extra || r.Decisions[DecisionHistory-1].Epoch != extra+1 {
		t.Fatalf("%d decisions, newest epoch %d, oldest %d; want %d, newest first", len(r.Decisions), r.Decisions[0].Epoch,
			r.Decisions[len(r.Decisions)-1].Epoch, DecisionHistory)
	}
}

// A decision's reward replaces the record of its epoch: the page shows
// each decision once, with its reward terms once they are known.
func TestStatusRewardReplacesDecision(t *testing.T) {
	s := NewStatus()
	widen := model.Action{Kind: model.Widen, Layer: 0, K: 16}
	s.Decision(model.Decision{Epoch: 1, Action: widen, Before: []int{16}, After: []int{32}}, t0)
	s.Decision(model.Decision{Epoch: 2, Action: model.Action{Kind: model.Keep}, Before: []int{32}, After: []int{32}}, t0.Add(time.Second))
	s.Decision(model.Decision{Epoch: 1, Action: widen, Before: []int{16}, After: []int{32}, Rewarded: true,
		Gain: 0.01, Cost: 0.004, Reward: 0.006}, t0.Add(2*time.Second))
	r := s.Report(t0)
	if len(r.Decisions) != 2 || r.Decisions[0].Epoch != 2 || r.Decisions[1].Epoch != 1 {
		t.Fatalf("decisions %s, want epochs 2 then 1", jsonOf(t, r.Decisions))
	}
	if d := r.Decisions[1]; !d.Rewarded || d.Gain != 0.01 || d.Cost != 0.004 || d.Reward != 0.006 || !d.At.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("epoch 1 after its reward: %s", jsonOf(t, d))
	}
	// The JSON carries the decisions topic's fields, plus when.
	body := jsonOf(t, r.Decisions[1])
	for _, field := range []string{`"epoch":1`, `"action":{"kind":"widen","layer":0,"k":16}`, `"before":[16]`, `"after":[32]`,
		`"gain":0.01`, `"cost":0.004`, `"reward":0.006`, `"rewarded":true`, `"at":"2026-12-01T06:00:02Z"`} {
		if !strings.Contains(body, field) {
			t.Errorf("decision JSON %s lacks %s", body, field)
		}
	}
}

// Replicas: this worker first, then the peers as listed; each snapshot's
// age counts to the report's time, and a replica without a snapshot has
// none (null).
func TestStatusReplicas(t *testing.T) {
	s := NewStatus()
	s.SetSelf("worker-a", true)
	r := s.Report(t0)
	if len(r.Replicas) != 1 || r.Replicas[0].Name != "worker-a" || !r.Replicas[0].Self || r.Replicas[0].SnapshotAge != nil {
		t.Fatalf("replicas before any snapshot: %s", jsonOf(t, r.Replicas))
	}
	if !strings.Contains(jsonOf(t, r.Replicas[0]), `"snapshot_age_seconds":null`) {
		t.Fatalf("no snapshot is not shown as null: %s", jsonOf(t, r.Replicas[0]))
	}
	s.Snapshot("s-1", t0)
	peerAt := t0.Add(-time.Minute)
	s.SetPeers(func(time.Time) []Replica {
		return []Replica{{Name: "worker-b", Live: true, Snapshot: "s-b", SnapshotAt: &peerAt}}
	})
	r = s.Report(t0.Add(10 * time.Second))
	if len(r.Replicas) != 2 || r.Replicas[0].Name != "worker-a" || r.Replicas[1].Name != "worker-b" {
		t.Fatalf("replicas %s", jsonOf(t, r.Replicas))
	}
	if a, b := r.Replicas[0].SnapshotAge, r.Replicas[1].SnapshotAge; a == nil || *a != 10 || b == nil || *b != 70 || r.Replicas[0].Snapshot != "s-1" {
		t.Fatalf("snapshot ages %s, want 10 s and 70 s", jsonOf(t, r.Replicas))
	}
}

// The server serves the status page at / from the embedded files (its
// script and style beside it), /status.json as JSON, and nothing else
// there: an unknown path is 404, a POST is refused.
func TestServerServesStatusPage(t *testing.T) {
	s := NewStatus()
	s.SetModel(ModelInfo{Name: "dqn", Architecture: true, Snapshots: true})
	s.Architecture(ArchPoint{At: t0, Widths: []int{64}, Params: 5000, NetParams: 4000})
	m, err := NewMetrics(10)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown(t.Context())
	srv, err := Serve("127.0.0.1:0", m, &Health{}, slog.New(slog.DiscardHandler), WithStatus(s))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(t.Context())
	base := "http://" + srv.Addr()
	if srv.URL() != base+"/" {
		t.Fatalf("URL %q, want %q", srv.URL(), base+"/")
	}
	for path, want := range map[string]string{"/": `<script src="app.js">`, "/app.js": "parseMetrics", "/style.css": ".tiles"} {
		code, ctype, body := fetch(t, http.MethodGet, base+path)
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, body without %q", path, code, want)
		}
		if path == "/" && !strings.HasPrefix(ctype, "text/html") {
			t.Errorf("GET /: Content-Type %q", ctype)
		}
	}
	code, ctype, body := fetch(t, http.MethodGet, base+"/status.json")
	var r StatusReport
	if err := json.Unmarshal([]byte(body), &r); code != 200 || ctype != "application/json" || err != nil {
		t.Fatalf("/status.json: %d %q %v: %s", code, ctype, err, body)
	}
	if r.Model.Name != "dqn" || len(r.History) != 1 || r.History[0].NetParams != 4000 {
		t.Fatalf("/status.json %s", body)
	}
	if code, _, _ := fetch(t, http.MethodGet, base+"/nothing.js"); code != http.StatusNotFound {
		t.Errorf("GET /nothing.js: %d, want 404", code)
	}
	if code, _, _ := fetch(t, http.MethodPost, base+"/"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", code)
	}
	if code, _, _ := fetch(t, http.MethodGet, base+"/metrics"); code != 200 {
		t.Errorf("GET /metrics beside the page: %d", code)
	}
}

// The page loads nothing from elsewhere: no absolute URL in its files
// (no CDN, no font or script from another host).
func TestStatusPageIsSelfContained(t *testing.T) {
	abs := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|url\(`)
	err := fs.WalkDir(pageFiles, "status", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := pageFiles.ReadFile(path)
		if err != nil {
			return err
		}
		if m := abs.Find(b); m != nil {
			t.Errorf("%s refers to %q", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func fetch(t *testing.T, method, url string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The page's link names a host a browser on the worker's machine can
// open: loopback for an unspecified address (metrics.addr ":9464").
func TestServerURL(t *testing.T) {
	for _, addr := range []string{":0", "0.0.0.0:0", "127.0.0.1:0"} {
		srv, err := Serve(addr, nil, &Health{}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		_, port, err := net.SplitHostPort(srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if want := "http://127.0.0.1:" + port + "/"; srv.URL() != want {
			t.Errorf("metrics.addr %q: URL %q, want %q", addr, srv.URL(), want)
		}
		srv.Close(t.Context())
	}
}
