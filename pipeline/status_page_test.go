package pipeline_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"golang.org/x/net/websocket"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
)

// screenshot is where TestStatusPage writes the README's picture of the
// page when UPDATE_SCREENSHOT=1.
const screenshot = "telemetry/testdata/status-page.png"

// TestStatusPage loads the status page of a running worker in headless
// Chromium and checks that the figures it shows are /metrics' (events,
// lag, lists, dead letters, HR@10, reward, parameters, scraped once the
// feed has been consumed, so nothing moves between the two reads) and
// /status.json's (layer widths, decisions with their reward terms, this
// replica and the age of its snapshot); with a count-based model, that
// the page says it has no network and keeps no snapshots. With
// UPDATE_SCREENSHOT=1 it also writes the README's screenshot of the page
// of the adaptive model, mid-stream.
func TestStatusPage(t *testing.T) {
	browser := chromium(t)
	targets := kafkatest.Targets(t)
	target := targets[0] // the real broker when KAFKA_TEST_BROKERS is set
	for _, c := range []struct{ name, model string }{{"adaptive", "adaptive"}, {"no architecture", "itemknn"}} {
		t.Run(c.name, func(t *testing.T) {
			cfg := kafkatest.Config(t, target)
			cfg.Recommender.Model = c.model
			cfg.Recommender.DQN.Rows = 64
			cfg.Recommender.Adaptive.EpochSessions = 20
			cfg.Recommender.Adaptive.SampleEvery = 1
			cfg.Snapshot.EveryBatches = 5
			cfg.Snapshot.Replica = "status-page-replica"
			cfg.Metrics.QualitySampleEvery = 2
			base, metrics, stop := startWithStatusPage(t, cfg)
			lines, _ := kafkatest.Events(3000, 100, 100, 12)
			if os.Getenv("UPDATE_SCREENSHOT") == "1" && c.model == "adaptive" {
				screenshotMidStream(t, browser, base, cfg, lines)
			} else {
				produce(t, cfg, lines)
			}
			kafkatest.WaitCommitted(t, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, 180*time.Second)
			// Stopped, the worker moves no figure between the page's read
			// of /metrics and the test's. Its lag is 0 on every partition
			// now: two partitions get other values, so that the page's sum
			// is checked on figures that differ.
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			metrics.Batch(1, map[int]int64{1: 5, 4: 7})
			dom := loadPage(t, browser, base+"/")
			fams := kafkatest.Scrape(t, base)
			checkFigures(t, dom, fams)
			var st telemetry.StatusReport
			if code, body := get(t, base+"/status.json"); code != 200 || json.Unmarshal([]byte(body), &st) != nil {
				t.Fatalf("/status.json: %d %s", code, body)
			}
			if c.model == "adaptive" {
				checkArchitecture(t, dom, st)
			} else {
				checkNoArchitecture(t, dom)
			}
		})
	}
}

// chromium returns the headless browser to drive: $CHROMIUM, or chromium
// (Debian's package) or chrome on the PATH; the test skips without one.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium to load the status page in (chromium, chromium-browser or google-chrome on PATH, or CHROMIUM): " +
		"apt-get install chromium (.ci/run installs it)")
	return ""
}

// startWithStatusPage creates cfg's topics and runs an instrumented worker
// serving its status page; it returns the page's base URL, the metrics
// and how to stop the worker (the page stays up).
func startWithStatusPage(t *testing.T, cfg configs.Config) (string, *telemetry.Metrics, func() error) {
	t.Helper()
	metrics, err := telemetry.NewMetrics(cfg.Metrics.QualityWindow)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { metrics.Shutdown(context.Background()) })
	health, status := &telemetry.Health{}, telemetry.NewStatus()
	srv, err := telemetry.Serve("127.0.0.1:0", metrics, health, kafkatest.Logger(t), telemetry.WithStatus(status))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(context.Background()) })
	kafkatest.CreateTopics(t, cfg)
	_, stop := startInstrumented(t, cfg, func(w *pipeline.Worker) {
		w.Instrument(nil, metrics, health)
		w.ShowStatus(status)
	})
	return "http://" + srv.Addr(), metrics, stop
}

// runChromium runs the headless browser on url with args; the page's
// timers run on virtual time, so it polls several times in well under a
// second of real time.
func runChromium(t *testing.T, browser, url string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	all := append([]string{"--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=" + t.TempDir(),
		"--virtual-time-budget=7000"}, args...)
	cmd := exec.CommandContext(ctx, browser, append(all, url)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", browser, args, err, stderr.String())
	}
	return out
}

// loadPage returns the page's DOM once its script has run: it must have
// read /metrics and /status.json and shown them.
func loadPage(t *testing.T, browser, url string) string {
	t.Helper()
	dom := string(runChromium(t, browser, url, "--dump-dom"))
	if !strings.Contains(dom, `data-ready="true"`) {
		t.Fatalf("the page never showed the worker's figures:\n%s", dom)
	}
	return dom
}

// screenshotMidStream feeds lines at 200 events/s and, 12 seconds in,
// writes the README's screenshot of the page, open since the stream
// began, in real time (the DevTools protocol: --screenshot would run the
// page's timers on virtual time, its charts spanning a moment).
func screenshotMidStream(t *testing.T, browser, base string, cfg configs.Config, lines [][]byte) {
	t.Helper()
	path, err := filepath.Abs(screenshot)
	if err != nil {
		t.Fatal(err)
	}
	out := newSink(cfg.Kafka.Brokers, cfg.Topics.Feedback)
	defer out.Close()
	fed := make(chan error, 1)
	go func() {
		_, err := pipeline.Produce(context.Background(), out, bytesReader(lines), pipeline.ProduceOptions{Rate: 200, Chunk: 20})
		fed <- err
	}()
	png := capture(t, browser, base+"/", 12*time.Second)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
	if err := <-fed; err != nil {
		t.Fatal(err)
	}
}

// capture opens url in the browser, waits for, and returns a PNG of the
// page (DevTools protocol over a WebSocket).
func capture(t *testing.T, browser, url string, wait time.Duration) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait+90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--remote-debugging-port=0", "--remote-allow-origins=*",
		"--window-size=1280,1500", "--hide-scrollbars", url)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	listening := regexp.MustCompile(`DevTools listening on (ws://\S+)`)
	sc := bufio.NewScanner(stderr)
	var browserWS string
	for browserWS == "" && sc.Scan() {
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			browserWS = m[1]
		}
	}
	if browserWS == "" {
		t.Fatal("the browser did not say where its DevTools listen")
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	time.Sleep(wait)
	var pages []struct{ Type, URL, WebSocketDebuggerURL string }
	code, body := get(t, "http://"+strings.Split(strings.TrimPrefix(browserWS, "ws://"), "/")[0]+"/json/list")
	if err := json.Unmarshal([]byte(body), &pages); code != 200 || err != nil {
		t.Fatalf("DevTools /json/list: %d %v: %s", code, err, body)
	}
	for _, p := range pages {
		if p.Type == "page" && p.URL == url {
			return screenshotOf(t, p.WebSocketDebuggerURL)
		}
	}
	t.Fatalf("no page at %s among %s", url, body)
	return nil
}

// screenshotOf asks the page at a DevTools WebSocket for a PNG of itself.
func screenshotOf(t *testing.T, ws string) []byte {
	t.Helper()
	conn, err := websocket.Dial(ws, "", "http://127.0.0.1/")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := websocket.JSON.Send(conn, map[string]any{"id": 1, "method": "Page.captureScreenshot", "params": map[string]any{"format": "png"}}); err != nil {
		t.Fatal(err)
	}
	for {
		var msg struct {
			ID     int `json:"id"`
			Result struct {
				Data []byte `json:"data"` // base64 in the JSON
			} `json:"result"`
			Error *struct{ Message string } `json:"error"`
		}
		if err := websocket.JSON.Receive(conn, &msg); err != nil {
			t.Fatal(err)
		}
		if msg.ID != 1 {
			continue // an event
		}
		if msg.Error != nil || len(msg.Result.Data) == 0 {
			t.Fatalf("Page.captureScreenshot: %+v", msg.Error)
		}
		return msg.Result.Data
	}
}

var valueRE = regexp.MustCompile(`id="([a-z0-9-]+)"[^>]*data-value="([^"]*)"`)

// shown returns the data-value of every element with an id.
func shown(dom string) map[string]string {
	out := map[string]string{}
	for _, m := range valueRE.FindAllStringSubmatch(dom, -1) {
		out[m[1]] = html.UnescapeString(m[2])
	}
	return out
}

// checkFigures compares the page's figures with /metrics.
func checkFigures(t *testing.T, dom string, fams map[string]*dto.MetricFamily) {
	t.Helper()
	got := shown(dom)
	for id, metric := range map[string]string{
		"events-total": "adaptrec_events_consumed_total", "lag": "adaptrec_consumer_lag", "lists": "adaptrec_recommendation_lists_total",
		"dlq": "adaptrec_dlq_messages_total", "hr10": "adaptrec_quality_hr_at_10", "reward": "adaptrec_reward_mean",
		"params": "adaptrec_model_parameters",
	} {
		f := fams[metric]
		if f == nil {
			t.Errorf("/metrics has no %s", metric)
			continue
		}
		v, err := strconv.ParseFloat(got[id], 64)
		if want := total(f); err != nil || v != want {
			t.Errorf("page shows %s = %q, /metrics %s = %v", id, got[id], metric, want)
		}
	}
	for _, m := range fams["adaptrec_consumer_lag"].GetMetric() {
		p := ""
		for _, l := range m.Label {
			if l.GetName() == "partition" {
				p = l.GetValue()
			}
		}
		if want := fmt.Sprintf("p%s %.0f", p, m.GetGauge().GetValue()); !regexp.MustCompile(`id="lag-partitions">[^<]*\b` + want + `\b`).MatchString(dom) {
			t.Errorf("the page's lag per partition lacks %q: %s", want, regexp.MustCompile(`id="lag-partitions">[^<]*`).FindString(dom))
		}
	}
	if got["events-total"] == "0" || got["lists"] == "0" || got["dlq"] == "0" {
		t.Errorf("the feed did not reach the page: %v", got)
	}
	if got["events-rate"] == "" {
		t.Errorf("no events/s after several polls: %v", got)
	}
}

// checkArchitecture compares the page's architecture, decisions and
// replicas with /status.json.
func checkArchitecture(t *testing.T, dom string, st telemetry.StatusReport) {
	t.Helper()
	if len(st.History) == 0 || len(st.Decisions) == 0 {
		t.Fatalf("/status.json has %d architecture points and %d decisions", len(st.History), len(st.Decisions))
	}
	last := st.History[len(st.History)-1]
	widths := make([]string, len(last.Widths))
	for i, w := range last.Widths {
		widths[i] = strconv.Itoa(w)
	}
	if want := fmt.Sprintf(`id="chart-widths" viewBox="0 0 420 140" data-widths="%s"`, strings.Join(widths, ",")); !strings.Contains(dom, want) {
		t.Errorf("the widths chart does not end at %v:\n%s", last.Widths, regexp.MustCompile(`<svg id="chart-widths"[^>]*>`).FindString(dom))
	}
	rows := regexp.MustCompile(`<tr data-epoch="(\d+)">(.*?)</tr>`).FindAllStringSubmatch(dom, -1)
	if len(rows) != len(st.Decisions) {
		t.Fatalf("page shows %d decisions, /status.json %d", len(rows), len(st.Decisions))
	}
	rewarded := 0
	for i, d := range st.Decisions {
		if rows[i][1] != strconv.Itoa(d.Epoch) {
			t.Fatalf("decision row %d is epoch %s, /status.json's is %d", i, rows[i][1], d.Epoch)
		}
		if !d.Rewarded {
			continue
		}
		rewarded++
		// The page writes each term as JavaScript prints a number (the
		// shortest text that reads back as the same float64, but in its
		// own notation: 0.00009 where Go writes 9e-05): compare values.
		for term, v := range map[string]float64{"gain": d.Gain, "cost": d.Cost, "reward": d.Reward} {
			m := regexp.MustCompile(`class="` + term + `" data-value="([^"]+)"`).FindStringSubmatch(rows[i][2])
			if m == nil {
				t.Errorf("epoch %d: row %s shows no %s", d.Epoch, rows[i][2], term)
				continue
			}
			if got, err := strconv.ParseFloat(m[1], 64); err != nil || got != v {
				t.Errorf("epoch %d: the page's %s is %s, /status.json's %v", d.Epoch, term, m[1], v)
			}
		}
	}
	if rewarded == 0 {
		t.Error("no decision shown with its reward terms")
	}
	self := regexp.MustCompile(`<tr data-replica="status-page-replica"><td>status-page-replica \(this worker\)</td><td>yes</td><td>yes</td><td>[^<]+</td><td class="age" data-value="([^"]+)">`).FindStringSubmatch(dom)
	if self == nil {
		t.Fatalf("this replica is not shown with a snapshot age:\n%s", regexp.MustCompile(`<table id="replicas">.*?</table>`).FindString(dom))
	}
	if age, err := strconv.ParseFloat(self[1], 64); err != nil || age < 0 || st.Replicas[0].Snapshot == "" {
		t.Errorf("snapshot age %q of snapshot %q", self[1], st.Replicas[0].Snapshot)
	}
	if !strings.Contains(dom, `<p id="arch-none" class="note" hidden="">`) {
		t.Error("the page says the adaptive model has no network")
	}
}

// checkNoArchitecture: a count-based model's page says it has no network
// and no snapshots, rather than showing empty charts and tables.
func checkNoArchitecture(t *testing.T, dom string) {
	t.Helper()
	for _, want := range []string{
		`<p id="arch-none" class="note">The model itemknn has no network`,
		`<p id="decisions-none" class="note">This model takes no architecture decisions.`,
		`<p id="snapshots-none" class="note">The model itemknn keeps no snapshots.`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(dom, "<tr data-epoch") {
		t.Error("decisions shown for a model without a network")
	}
}

// total is the sum of a family's samples, counters and gauges alike (as
// the page sums them).
func total(f *dto.MetricFamily) float64 {
	s := 0.0
	if f != nil {
		for _, m := range f.Metric {
			s += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return s
}
