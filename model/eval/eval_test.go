package eval

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
)

// The fixture's figures worked out by hand for plain popularity (no decay
// within one timestamp):
//
//	1 u1 a  a unknown: not scored                    a=1
//	2 u2 a  ranks {a}: a is 1st                       a=2
//	3 u2 b  b unknown: not scored                    b=1
//	4 u3 b  ranks a(2) b(1): b is 2nd                 b=2
//	5 u1 b  ranks {a,b} minus u1's {a}: b is 1st      b=3
//	6 u1 a  u1 consumed a: not scored                 a=3
//	7 u3 a  ranks {a,b} minus u3's {b}: a is 1st
//
// Scored 4; ranks 0, 1, 0, 0. HR@1 = 3/4, NDCG@1 = 3/4; HR@10 = 1,
// NDCG@10 = (1 + 1/log2(3) + 1 + 1)/4.
func TestHandComputedPopularity(t *testing.T) {
	events, err := Load(filepath.Join("..", "..", "testdata", "eval", "hand.jsonl"), "events-jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for _, batch := range []int{1, 2, 256} { // per-event state: the batch size must not matter here
		for _, tc := range []struct {
			k        int
			hr, ndcg float64
		}{
			{1, 0.75, 0.75},
			{10, 1, (3 + 1/math.Log2(3)) / 4},
		} {
			m := model.NewPopularity(model.PopularityConfig{HalfLife: time.Hour, Shared: model.Shared{TopN: 10, MaxUsers: 1 << 20}})
			r, err := Run(context.Background(), events, m, Options{Batch: batch, K: tc.k})
			if err != nil {
				t.Fatal(err)
			}
			if r.Scored != 4 || math.Abs(r.HR-tc.hr) > 1e-12 || math.Abs(r.NDCG-tc.ndcg) > 1e-12 {
				t.Errorf("batch %d K %d: scored %d HR %v NDCG %v, want 4, %v, %v", batch, tc.k, r.Scored, r.HR, r.NDCG, tc.hr, tc.ndcg)
			}
			if r.Events != 7 || r.Batches != (7+batch-1)/batch || len(r.Curve) == 0 {
				t.Errorf("batch %d: events %d batches %d curve %d", batch, r.Events, r.Batches, len(r.Curve))
			}
		}
	}
}

// ItemKNN ranks by co-occurrence with the user's recent items: after u1 and
// u2 both consume x then y, a user who consumed x gets y first, although z
// is more popular.
func TestItemKNNRanksByCooccurrence(t *testing.T) {
	lines := []string{
		`{"user_id":"u1","item_id":"x","type":"click","ts":"2026-11-28T10:00:00Z"}`,
		`{"user_id":"u1","item_id":"y","type":"click","ts":"2026-11-28T10:00:01Z"}`,
		`{"user_id":"u2","item_id":"x","type":"click","ts":"2026-11-28T10:00:02Z"}`,
		`{"user_id":"u2","item_id":"y","type":"click","ts":"2026-11-28T10:00:03Z"}`,
		`{"user_id":"u3","item_id":"z","type":"click","ts":"2026-11-28T10:00:04Z"}`,
		`{"user_id":"u4","item_id":"z","type":"click","ts":"2026-11-28T10:00:05Z"}`,
		`{"user_id":"u5","item_id":"z","type":"click","ts":"2026-11-28T10:00:06Z"}`,
		`{"user_id":"u6","item_id":"x","type":"click","ts":"2026-11-28T10:00:07Z"}`,
		`{"user_id":"u6","item_id":"y","type":"click","ts":"2026-11-28T10:00:08Z"}`,
	}
	events, err := Read(strings.NewReader(strings.Join(lines, "\n")), "inline", "events-jsonl")
	if err != nil {
		t.Fatal(err)
	}
	k := model.NewItemKNN(model.ItemKNNConfig{Window: 10, Decay: 0.9, Shared: model.Shared{TopN: 10, MaxUsers: 1 << 20}})
	pop := model.NewPopularity(model.PopularityConfig{HalfLife: 1000 * time.Hour, Shared: model.Shared{TopN: 10, MaxUsers: 1 << 20}})
	rk, _ := Run(context.Background(), events, k, Options{Batch: 1, K: 1})
	rp, _ := Run(context.Background(), events, pop, Options{Batch: 1, K: 1})
	// The last event (u6 y after x) is a hit at K=1 for ItemKNN only.
	if rk.HR <= rp.HR {
		t.Fatalf("itemknn HR@1 %v not above popularity %v", rk.HR, rp.HR)
	}
	if k.Params() == 0 {
		t.Fatal("itemknn reports no parameters")
	}
}

func TestLoadErrorsNameTheLine(t *testing.T) {
	tests := []struct {
		format, body, want string
	}{
		{"movielens-csv", "userId,movieId,rating,timestamp\n1,2,3.0,100\n1,2,x,100\n", "f:3: rating \"x\""},
		{"movielens-csv", "userId,movieId,rating,timestamp\n1,2,3.0\n", "f:2: want 4 fields"},
		{"movielens-csv", "userId,movieId,rating,timestamp\n1,2,3.0,yesterday\n", "f:2: timestamp \"yesterday\""},
		{"movielens-csv", "user,item\n", "f:1: want the header"},
		{"movielens-csv", "userId,movieId,rating,timestamp\n", "f: no events"},
		{"movielens-tsv", "1\t2\t3\t100\n1\t2\t9\t100\n", "f:2: rating \"9\""},
		{"otto-jsonl", `{"session":1,"events":[{"aid":5,"ts":1,"type":"clicks"}]}` + "\n" + `{"session":2,"events":[{"aid":5,"ts":1,"type":"views"}]}`, "f:2: event 0: type \"views\""},
		{"otto-jsonl", "{\"session\":1,\n", "f:1: not an OTTO session"},
		{"events-jsonl", `{"user_id":"u","item_id":"i","type":"click","ts":"2026-11-28T10:00:00Z"}` + "\n\n" + `{"user_id":"u","item_id":"i","type":"buy","ts":"2026-11-28T10:00:00Z"}`, "f:3: unknown_type"},
		{"parquet", "x", "unknown format \"parquet\""},
	}
	for _, tt := range tests {
		_, err := Read(strings.NewReader(tt.body), "f", tt.format)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %q: got %v, want %q", tt.format, tt.body, err, tt.want)
		}
	}
}

func TestLoadSortsStablyByTime(t *testing.T) {
	events, err := Load(filepath.Join("..", "..", "testdata", "eval", "ratings.csv"), "movielens-csv")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		got = append(got, e.UserID+"/"+e.ItemID)
	}
	// ts 100: 1/20 then 3/20 (file order); 200: 2/10 then 2/30; 300: 1/10.
	if want := "1/20 3/20 2/10 2/30 1/10"; strings.Join(got, " ") != want {
		t.Fatalf("order %v, want %s", got, want)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.csv"), "movielens-csv"); !os.IsNotExist(err) {
		t.Fatalf("missing file: %v", err)
	}
}

// FirstEvents keeps each user's first n events in their order, leaves its
// input alone and refuses an n that is not positive.
func TestFirstEvents(t *testing.T) {
	var in []feedback.Event
	for i, u := range []string{"a", "b", "a", "a", "c", "b", "a"} {
		in = append(in, feedback.Event{UserID: u, ItemID: strconv.Itoa(i)})
	}
	out, err := FirstEvents(in, 2)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range out {
		got = append(got, e.UserID+e.ItemID)
	}
	if want := "a0 b1 a2 c4 b5"; strings.Join(got, " ") != want {
		t.Fatalf("first 2 of each: %v, want %s", got, want)
	}
	if len(in) != 7 || in[3].ItemID != "3" {
		t.Fatal("FirstEvents changed its input")
	}
	if _, err := FirstEvents(in, 0); err == nil || !strings.Contains(err.Error(), "n must be positive") {
		t.Fatalf("n 0: %v", err)
	}
}

func TestAnonymizeMakesEverySessionAUser(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	at := func(user, session string, min int) feedback.Event {
		return feedback.Event{UserID: user, SessionID: session, ItemID: "i", TS: t0.Add(time.Duration(min) * time.Minute)}
	}
	in := []feedback.Event{
		at("a", "", 0), at("b", "", 1), at("a", "", 30), // a's gap of 30m is not over 30m
		at("a", "", 61),   // 31m later: a's second session
		at("b", "s1", 62), // b's session id changes: b's second
		at("b", "s1", 63), at("a", "", 500),
	}
	out, err := Anonymize(in, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, e := range out {
		if e.SessionID != e.UserID || !e.TS.Equal(in[i].TS) {
			t.Errorf("event %d: %+v", i, e)
		}
		got = append(got, e.UserID)
	}
	if want := "a#1 b#1 a#1 a#2 b#2 b#2 a#3"; strings.Join(got, " ") != want {
		t.Fatalf("users %v, want %s", got, want)
	}
	if in[0].UserID != "a" {
		t.Fatal("Anonymize changed its input")
	}
	if _, err := Anonymize(in, 0); err == nil || !strings.Contains(err.Error(), "idle gap must be positive") {
		t.Fatalf("gap 0: %v", err)
	}
}

// An adaptive model with tiers reports each tier's parameters over the
// stream, and the architecture figure draws them in a panel of their own.
func TestTierCurves(t *testing.T) {
	var events []feedback.Event
	for i := range 3000 {
		events = append(events, feedback.Event{UserID: "u" + string(rune('a'+i%13)), SessionID: "s", ItemID: "i" + string(rune('a'+(i*7)%37)),
			Type: feedback.Click, TS: time.Unix(int64(i), 0)})
	}
	opts := model.DefaultOptions()
	opts.Adaptive.TierAt = []float64{40}
	m, err := model.Build("adaptive-rl", opts)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(context.Background(), events, m, Options{Batch: 64, Points: 20})
	if err != nil {
		t.Fatal(err)
	}
	narrow := opts.Adaptive.Tiers[0]
	if len(r.TierCurves) != 2 || r.TierCurves[0].Width != narrow || r.TierCurves[1].Width != opts.DQN.Dim {
		t.Fatalf("tier curves %+v", r.TierCurves)
	}
	first, last := r.TierCurves[0].Curve, r.TierCurves[1].Curve
	if len(first) != len(r.NetCurve) || len(last) != len(r.NetCurve) {
		t.Fatalf("%d and %d tier points, %d network points", len(first), len(last), len(r.NetCurve))
	}
	// Items start narrow and move up at 40 interactions: early on all are
	// narrow, by the end (about 80 each) all are wide.
	if first[0].Value == 0 || last[0].Value != 0 || last[len(last)-1].Value == 0 {
		t.Fatalf("narrow %v ... , wide %v ... %v", first[0], last[0], last[len(last)-1])
	}
	path := filepath.Join(t.TempDir(), "architecture.png")
	if err := PlotArchitecture(path, "t", []Result{r}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() < 1000 {
		t.Fatalf("architecture.png: %v", err)
	}
}

// ShuffleTies reorders only within runs of one timestamp, keeps every
// event, follows its seed and leaves its input alone.
func TestShuffleTies(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var in []feedback.Event
	for i := range 40 { // 20 events at t0, then 20 at distinct times
		ts := t0
		if i >= 20 {
			ts = t0.Add(time.Duration(i) * time.Second)
		}
		in = append(in, feedback.Event{UserID: "u", ItemID: strconv.Itoa(i), TS: ts})
	}
	ids := func(es []feedback.Event) []string {
		var s []string
		for _, e := range es {
			s = append(s, e.ItemID)
		}
		return s
	}
	a, b, c := ShuffleTies(in, 1), ShuffleTies(in, 1), ShuffleTies(in, 2)
	if !slices.Equal(ids(a), ids(b)) {
		t.Fatal("the same seed gave two orders")
	}
	if slices.Equal(ids(a), ids(c)) || slices.Equal(ids(a[:20]), ids(in[:20])) {
		t.Fatalf("the tie was not reordered by its seed: %v, %v", ids(a[:20]), ids(c[:20]))
	}
	if !slices.Equal(ids(a[20:]), ids(in[20:])) {
		t.Fatalf("events of distinct times moved: %v", ids(a[20:]))
	}
	if got := slices.Sorted(slices.Values(ids(a[:20]))); !slices.Equal(got, slices.Sorted(slices.Values(ids(in[:20])))) {
		t.Fatalf("the tie lost or gained events: %v", got)
	}
	if in[0].ItemID != "0" || in[19].ItemID != "19" {
		t.Fatal("ShuffleTies changed its input")
	}
}

// TopItems keeps the events of the most frequent items, in order, the
// earlier item first among equals.
func TestTopItems(t *testing.T) {
	var in []feedback.Event
	for _, it := range strings.Fields("c a b a d b c a e c") { // a 3, c 3, b 2, d 1, e 1
		in = append(in, feedback.Event{UserID: "u", ItemID: it})
	}
	for n, want := range map[int]string{1: "c c c", 2: "c a a c a c", 3: "c a b a b c a c", 9: "c a b a d b c a e c"} {
		out, err := TopItems(in, n)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range out {
			got = append(got, e.ItemID)
		}
		if strings.Join(got, " ") != want {
			t.Errorf("top %d: %v, want %s", n, got, want)
		}
	}
	if _, err := TopItems(in, 0); err == nil || !strings.Contains(err.Error(), "got 0") {
		t.Fatalf("n 0: %v", err)
	}
}
