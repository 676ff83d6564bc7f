package eval

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// Formats lists the log formats Load reads.
var Formats = []string{"movielens-csv", "movielens-tsv", "otto-jsonl", "events-jsonl"}

// Load reads a feedback log and returns its events in timestamp order
// (stable: events with equal timestamps keep their order in the file).
//
//   - movielens-csv: userId,movieId,rating,timestamp with a header line
//     (ml-latest-small ratings.csv); each row is a rating.
//   - movielens-tsv: user<TAB>item<TAB>rating<TAB>timestamp, no header
//     (ml-100k u.data).
//   - otto-jsonl: one session a line, {"session":N,"events":[{"aid","ts"
//     (ms),"type":"clicks"|"carts"|"orders"}]}; the session is the user,
//     clicks are clicks, carts are views and orders are ratings of 5.
//   - events-jsonl: adaptrec feedback events, one a line.
//
// A malformed line is an error naming the file and line.
func Load(path, format string) ([]feedback.Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	events, err := Read(f, path, format)
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(events, func(a, b feedback.Event) int { return a.TS.Compare(b.TS) })
	return events, nil
}

// Read parses r (named name in errors) in format, in file order.
func Read(r io.Reader, name, format string) ([]feedback.Event, error) {
	var parse func(line string, out []feedback.Event) ([]feedback.Event, error)
	header := false
	switch format {
	case "movielens-csv":
		header = true
		parse = movielensLine(",")
	case "movielens-tsv":
		parse = movielensLine("\t")
	case "otto-jsonl":
		parse = ottoLine
	case "events-jsonl":
		parse = eventLine
	default:
		return nil, fmt.Errorf("unknown format %q: want one of %s", format, strings.Join(Formats, ", "))
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var out []feedback.Event
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if n == 1 && header {
			if !strings.HasPrefix(line, "userId,movieId,rating,timestamp") {
				return nil, fmt.Errorf("%s:1: want the header userId,movieId,rating,timestamp, got %q", name, trunc(line))
			}
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		var err error
		if out, err = parse(line, out); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, n+1, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no events", name)
	}
	return out, nil
}

func movielensLine(sep string) func(string, []feedback.Event) ([]feedback.Event, error) {
	return func(line string, out []feedback.Event) ([]feedback.Event, error) {
		f := strings.Split(line, sep)
		if len(f) != 4 {
			return nil, fmt.Errorf("want 4 fields user%sitem%srating%stimestamp, got %d", sep, sep, sep, len(f))
		}
		if f[0] == "" || f[1] == "" {
			return nil, fmt.Errorf("empty user or item id")
		}
		rating, err := strconv.ParseFloat(f[2], 64)
		if err != nil || rating < 0.5 || rating > 5 {
			return nil, fmt.Errorf("rating %q is not a number in [0.5, 5]", trunc(f[2]))
		}
		sec, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil || sec < 0 {
			return nil, fmt.Errorf("timestamp %q is not Unix seconds", trunc(f[3]))
		}
		return append(out, feedback.Event{
			UserID: f[0], ItemID: f[1], Type: feedback.Rating, Value: rating, HasValue: true,
			TS: time.Unix(sec, 0).UTC(),
		}), nil
	}
}

func ottoLine(line string, out []feedback.Event) ([]feedback.Event, error) {
	var s struct {
		Session *int64 `json:"session"`
		Events  []struct {
			AID  *int64 `json:"aid"`
			TS   *int64 `json:"ts"`
			Type string `json:"type"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(line), &s); err != nil {
		return nil, fmt.Errorf("not an OTTO session: %v", err)
	}
	if s.Session == nil {
		return nil, fmt.Errorf("missing session")
	}
	user := strconv.FormatInt(*s.Session, 10)
	for j, e := range s.Events {
		if e.AID == nil || e.TS == nil {
			return nil, fmt.Errorf("event %d: missing aid or ts", j)
		}
		ev := feedback.Event{UserID: user, SessionID: user, ItemID: strconv.FormatInt(*e.AID, 10), TS: time.UnixMilli(*e.TS).UTC()}
		switch e.Type {
		case "clicks":
			ev.Type = feedback.Click
		case "carts":
			ev.Type = feedback.View
		case "orders":
			ev.Type, ev.Value, ev.HasValue = feedback.Rating, 5, true
		default:
			return nil, fmt.Errorf("event %d: type %q is not clicks, carts or orders", j, trunc(e.Type))
		}
		out = append(out, ev)
	}
	return out, nil
}

func eventLine(line string, out []feedback.Event) ([]feedback.Event, error) {
	e, err := feedback.Decode([]byte(line), feedback.DefaultLimits)
	if err != nil {
		return nil, err
	}
	return append(out, e), nil
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// Span returns the part of events (in time order) from fraction from to
// fraction to of their count: Span(events, 0, 0.5) is the first half by
// time, Span(events, 0.5, 1) the second. A range outside 0 ≤ from < to ≤ 1
// is an error.
func Span(events []feedback.Event, from, to float64) ([]feedback.Event, error) {
	if !(from >= 0 && from < to && to <= 1) {
		return nil, fmt.Errorf("span: want 0 <= from < to <= 1, got from %g, to %g", from, to)
	}
	n := float64(len(events))
	return events[int(math.Round(from*n)):int(math.Round(to*n))], nil
}

// Anonymize returns events (in time order) with every user's sessions made
// users of their own, as in an e-commerce click log of anonymous visitors,
// where no one is known to return: a user's session ends after gap without
// an event, or where the event's session id changes, and each session
// becomes the user "USER#N" (its N-th session) with that session id.
// events is not changed. A gap that is not positive is an error.
func Anonymize(events []feedback.Event, gap time.Duration) ([]feedback.Event, error) {
	if gap <= 0 {
		return nil, fmt.Errorf("anonymize: the idle gap must be positive, got %v", gap)
	}
	type visit struct {
		last    time.Time
		session string
		n       int
	}
	seen := map[string]*visit{}
	out := make([]feedback.Event, len(events))
	for i, e := range events {
		v := seen[e.UserID]
		switch {
		case v == nil:
			v = &visit{n: 1}
			seen[e.UserID] = v
		case e.TS.Sub(v.last) > gap || e.SessionID != v.session:
			v.n++
		}
		v.last, v.session = e.TS, e.SessionID
		e.UserID = e.UserID + "#" + strconv.Itoa(v.n)
		e.SessionID = e.UserID
		out[i] = e
	}
	return out, nil
}

// FirstEvents returns the events (in their order) of each user's first n:
// after Anonymize, each visitor's first n, a log of short sessions as in
// e-commerce clicks, where most visits are a few events long. n must be
// positive; events is not changed.
func FirstEvents(events []feedback.Event, n int) ([]feedback.Event, error) {
	if n <= 0 {
		return nil, fmt.Errorf("first events: n must be positive, got %d", n)
	}
	count := map[string]int{}
	var out []feedback.Event
	for _, e := range events {
		if count[e.UserID] < n {
			count[e.UserID]++
			out = append(out, e)
		}
	}
	return out, nil
}

// ShuffleTies returns events (in time order) with every run of events of
// one timestamp in an order drawn from seed, the same for the same seed.
// A log whose clock has coarse steps (ml-latest-small's first half gives
// 30% of a user's consecutive ratings the same second) otherwise keeps
// its file's order within a tie, which a model may learn as if it were
// the order of consumption. events is not changed.
func ShuffleTies(events []feedback.Event, seed uint64) []feedback.Event {
	out := slices.Clone(events)
	rng := rand.New(rand.NewPCG(seed, 0x7469657321))
	for i := 0; i < len(out); {
		j := i + 1
		for j < len(out) && out[j].TS.Equal(out[i].TS) {
			j++
		}
		run := out[i:j]
		rng.Shuffle(len(run), func(a, b int) { run[a], run[b] = run[b], run[a] })
		i = j
	}
	return out
}

// TopItems returns the events (in their order) of the n items with the
// most events, ties broken by which item appeared first: a log cut to a
// small, dense catalogue. n must be positive; events is not changed.
func TopItems(events []feedback.Event, n int) ([]feedback.Event, error) {
	if n <= 0 {
		return nil, fmt.Errorf("top items: want a positive number of items, got %d", n)
	}
	count, first := map[string]int{}, map[string]int{}
	for i, e := range events {
		if count[e.ItemID] == 0 {
			first[e.ItemID] = i
		}
		count[e.ItemID]++
	}
	items := make([]string, 0, len(count))
	for it := range count {
		items = append(items, it)
	}
	slices.SortFunc(items, func(a, b string) int {
		if c := count[b] - count[a]; c != 0 {
			return c
		}
		return first[a] - first[b]
	})
	keep := make(map[string]bool, n)
	for _, it := range items[:min(n, len(items))] {
		keep[it] = true
	}
	out := make([]feedback.Event, 0, len(events))
	for _, e := range events {
		if keep[e.ItemID] {
			out = append(out, e)
		}
	}
	return out, nil
}
