package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
)

// dashboardFile is the Grafana dashboard, from this package's directory.
var dashboardFile = filepath.Join("..", "..", "deploy", "grafana", "adaptrec.json")

// dashboard is the part of a Grafana dashboard that queries metrics.
type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

// TestDashboardQueriesExportedMetrics runs a worker (the adaptive model,
// decisions every 5 sessions, 5% malformed events so that dead letters come
// soon) and checks that every metric any query of deploy/grafana/adaptrec.json
// names shows up on its /metrics: `worker --embedded` on its in-process
// broker, and, when KAFKA_TEST_BROKERS is set, `worker` on the real broker
// fed by `adaptrec produce`.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	queried := dashboardMetrics(t)
	adaptive := []string{"ADAPTREC_LOG_FORMAT=json", "ADAPTREC_LOG_LEVEL=info",
		"ADAPTREC_RECOMMENDER_MODEL=adaptive", "ADAPTREC_RECOMMENDER_ADAPTIVE_EPOCH_SESSIONS=5"}
	t.Run("embedded", func(t *testing.T) {
		p := start(t, append(os.Environ(), append(adaptive, "ADAPTREC_METRICS_ADDR=127.0.0.1:0",
			"ADAPTREC_EMBEDDED_MALFORMED_FRACTION=0.05")...), "worker", "--embedded")
		waitDashboardMetrics(t, p, queried)
	})
	t.Run("kafka", func(t *testing.T) {
		if testing.Short() {
			t.Skip("runs a worker and a producer against the real broker")
		}
		cfg := kafkatest.Config(t, kafkatest.Real(t))
		kafkatest.CreateTopics(t, cfg)
		p := start(t, append(env(cfg, "dashboard-worker"), adaptive...), "worker")
		lines, _ := kafkatest.Events(20_000, 20, 200, 17)
		start(t, env(cfg, "dashboard-producer"), "produce", "--file", eventsFile(t, lines), "--rate", "2000")
		waitDashboardMetrics(t, p, queried)
	})
}

// waitDashboardMetrics scrapes the /metrics of the worker p (found from its
// log) until it exports every metric in queried, for at most 3 minutes.
func waitDashboardMetrics(t *testing.T, p *proc, queried []string) {
	t.Helper()
	base := ""
	deadline := time.Now().Add(3 * time.Minute)
	var missing []string
	for time.Now().Before(deadline) {
		if base == "" {
			if l := logLines(t, p.output(), servingMsg); len(l) > 0 {
				base = "http://" + l[0]["addr"].(string)
			}
		}
		if base != "" {
			if missing = notExported(queried, kafkatest.Scrape(t, base)); len(missing) == 0 {
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("the dashboard queries metrics the worker (at %q) did not export within 3 minutes: %v", base, missing)
}

// dashboardMetrics lists the metric names the dashboard's queries use, and
// checks that it has the panels issue 17 asks for.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var exprs []string
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			exprs = append(exprs, q.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if inner, ok := strings.CutPrefix(v.Definition, "label_values("); ok {
			// label_values(SELECTOR, LABEL): the label is no metric.
			exprs = append(exprs, inner[:max(strings.LastIndexByte(inner, ','), 0)])
		}
	}
	all := strings.Join(exprs, "\n")
	for _, want := range []string{
		"adaptrec_events_consumed_total", "adaptrec_consumer_lag",
		"histogram_quantile(0.5, sum by (le) (rate(adaptrec_recommendation_latency_seconds_bucket",
		"histogram_quantile(0.99, sum by (le) (rate(adaptrec_recommendation_latency_seconds_bucket",
		"by (class) (rate(adaptrec_dlq_messages_total", "adaptrec_quality_hr_at_10", "adaptrec_reward_mean",
		"adaptrec_model_parameters", "adaptrec_architecture_decisions_total",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no panel of %s queries %s", dashboardFile, want)
		}
	}
	var names []string
	for _, e := range exprs {
		names = append(names, promqlMetrics(e)...)
	}
	sort.Strings(names)
	return slices.Compact(names)
}

// notExported lists the names in queried that fams does not export: a
// family by that name, or a histogram (or summary) whose _bucket, _sum or
// _count series it is.
func notExported(queried []string, fams map[string]*dto.MetricFamily) []string {
	var missing []string
	for _, n := range queried {
		if fams[n] != nil {
			continue
		}
		ok := false
		for suffix, types := range map[string][]dto.MetricType{
			"_bucket": {dto.MetricType_HISTOGRAM},
			"_sum":    {dto.MetricType_HISTOGRAM, dto.MetricType_SUMMARY},
			"_count":  {dto.MetricType_HISTOGRAM, dto.MetricType_SUMMARY},
		} {
			if base, cut := strings.CutSuffix(n, suffix); cut && fams[base] != nil && slices.Contains(types, fams[base].GetType()) {
				ok = true
			}
		}
		if !ok {
			missing = append(missing, n)
		}
	}
	return missing
}

// PromQL words that are not metric names where they stand alone.
var (
	promqlLabelLists = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}
	promqlKeywords   = []string{"and", "or", "unless", "bool", "offset", "inf", "nan"}
	promqlAggregates = []string{"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
)

// promqlMetrics lists the metric names in a PromQL expression: the
// identifiers that are not functions, aggregations, keywords or labels
// (label matchers in {}, ranges in [], label lists after by/on/...,
// strings, numbers and Grafana's $variables are skipped).
func promqlMetrics(expr string) []string {
	var names []string
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(expr, i)
		case c == '{' || c == '[':
			i = skipGroup(expr, i)
		case c == '$':
			i = skipVariable(expr, i)
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdent(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word, next := expr[i:j], nextNonSpace(expr, j)
			switch {
			case slices.Contains(promqlLabelLists, word) && next < len(expr) && expr[next] == '(':
				j = skipGroup(expr, next)
			case slices.Contains(promqlKeywords, strings.ToLower(word)), next < len(expr) && expr[next] == '(':
			case slices.Contains(promqlAggregates, word) && next < len(expr) && isIdent(expr[next]):
			default:
				names = append(names, word)
			}
			i = j
		default:
			i++
		}
	}
	return names
}

func isIdent(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func nextNonSpace(s string, i int) int {
	for i < len(s) && strings.ContainsRune(" \t\n", rune(s[i])) {
		i++
	}
	return i
}

// skipString returns the index after the string literal at s[i].
func skipString(s string, i int) int {
	q := s[i]
	for i++; i < len(s) && s[i] != q; i++ {
		if s[i] == '\\' && q != '`' {
			i++
		}
	}
	return i + 1
}

// skipGroup returns the index after the bracketed group opening at s[i]
// (strings inside it may hold brackets).
func skipGroup(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch s[i] {
		case '"', '\'', '`':
			i = skipString(s, i)
			continue
		case '{', '[', '(':
			depth++
		case '}', ']', ')':
			depth--
		}
		i++
		if depth == 0 {
			break
		}
	}
	return i
}

// skipVariable returns the index after a Grafana variable at s[i]: $name
// or ${name}.
func skipVariable(s string, i int) int {
	if i+1 < len(s) && s[i+1] == '{' {
		return skipGroup(s, i+1)
	}
	for i++; i < len(s) && isIdent(s[i]); i++ {
	}
	return i
}

// The PromQL reader finds the metric names and nothing else.
func TestPromQLMetrics(t *testing.T) {
	for expr, want := range map[string][]string{
		`histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket{namespace=~"$ns", x="}"}[$__rate_interval])))`: {"a_seconds_bucket"},
		`sum without (pod) (b_total) / on (type) group_left (class) c offset 5m`:                                    {"b_total", "c"},
		`topk(5, d) and e unless bool f`:                    {"d", "e", "f"},
		`sum(rate(g_total[5m])) by (type) * 1e3 + count(h)`: {"g_total", "h"},
		`max by (partition) (i{p=~"${v}"})`:                 {"i"},
		`label_values(j, namespace)`:                        {"j", "namespace"},
	} {
		if got := promqlMetrics(expr); !slices.Equal(got, want) {
			t.Errorf("promqlMetrics(%s) = %v, want %v", expr, got, want)
		}
	}
}
