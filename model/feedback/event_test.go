package feedback

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

func TestDecodeGood(t *testing.T) {
	ts := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want Event
	}{
		{"full rating", `{"event_id":"e-1","user_id":"u42","session_id":"s7","item_id":"m318","type":"rating","value":4.5,"ts":"2026-11-28T10:00:00Z","rec_id":"r-99","position":3}`,
			Event{EventID: "e-1", UserID: "u42", SessionID: "s7", ItemID: "m318", Type: Rating, Value: 4.5, HasValue: true, TS: ts, RecID: "r-99", Position: 3, HasPos: true}},
		{"minimal click", `{"user_id":"u","item_id":"i","type":"click","ts":"2026-11-28T10:00:00Z"}`,
			Event{UserID: "u", ItemID: "i", Type: Click, TS: ts}},
		{"view with dwell and offset time", `{"user_id":"u","item_id":"i","type":"view","value":12.5,"ts":"2026-11-28T11:00:00+01:00"}`,
			Event{UserID: "u", ItemID: "i", Type: View, Value: 12.5, HasValue: true, TS: ts}},
		{"view without dwell, null position", `{"user_id":"u","item_id":"i","type":"view","ts":"2026-11-28T10:00:00Z","position":null}`,
			Event{UserID: "u", ItemID: "i", Type: View, TS: ts}},
		{"rating at bounds", `{"user_id":"u","item_id":"i","type":"rating","value":0.5,"ts":"2026-11-28T10:00:00Z"}`,
			Event{UserID: "u", ItemID: "i", Type: Rating, Value: 0.5, HasValue: true, TS: ts}},
		{"unknown fields ignored", `{"user_id":"u","item_id":"i","type":"click","ts":"2026-11-28T10:00:00Z","extra":{"a":[1,2]}}`,
			Event{UserID: "u", ItemID: "i", Type: Click, TS: ts}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.in), DefaultLimits)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !got.TS.Equal(tt.want.TS) {
				t.Fatalf("ts = %v, want %v", got.TS, tt.want.TS)
			}
			// Encode is Decode's inverse.
			again, err := Decode(Encode(got), DefaultLimits)
			if err != nil || !again.TS.Equal(got.TS) {
				t.Fatalf("round trip: %+v, %v", again, err)
			}
			got.TS, tt.want.TS, again.TS = time.Time{}, time.Time{}, time.Time{}
			if got != tt.want {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
			if again != got {
				t.Fatalf("round trip: %+v, want %+v", again, got)
			}
		})
	}
}

func TestDecodeBad(t *testing.T) {
	const ok = `"user_id":"u","item_id":"i","ts":"2026-11-28T10:00:00Z"`
	tests := []struct {
		name  string
		in    string
		class ErrorClass
		field string
	}{
		{"empty", ``, ClassEmpty, ""},
		{"whitespace", " \n\t", ClassEmpty, ""},
		{"huge", `{"user_id":"` + strings.Repeat("x", 70000) + `"}`, ClassTooLarge, ""},
		{"not json", `user u clicked i`, ClassInvalidJSON, ""},
		{"truncated json", `{"user_id":"u","item_id":`, ClassInvalidJSON, ""},
		{"json array", `[1,2,3]`, ClassInvalidJSON, ""},
		{"json string", `"click"`, ClassInvalidJSON, ""},
		{"missing user", `{"item_id":"i","type":"click","ts":"2026-11-28T10:00:00Z"}`, ClassMissingField, "user_id"},
		{"empty user", `{"user_id":"","item_id":"i","type":"click","ts":"2026-11-28T10:00:00Z"}`, ClassMissingField, "user_id"},
		{"missing item", `{"user_id":"u","type":"click","ts":"2026-11-28T10:00:00Z"}`, ClassMissingField, "item_id"},
		{"missing type", `{` + ok + `}`, ClassMissingField, "type"},
		{"missing ts", `{"user_id":"u","item_id":"i","type":"click"}`, ClassMissingField, "ts"},
		{"null", `null`, ClassMissingField, "user_id"},
		{"user is a number", `{"user_id":42,"item_id":"i","type":"click","ts":"2026-11-28T10:00:00Z"}`, ClassWrongType, "user_id"},
		{"type is a number", `{` + ok + `,"type":1}`, ClassWrongType, "type"},
		{"value is a string", `{` + ok + `,"type":"rating","value":"five"}`, ClassWrongType, "value"},
		{"position is a string", `{` + ok + `,"type":"click","position":"3"}`, ClassWrongType, "position"},
		{"ts is a number", `{"user_id":"u","item_id":"i","type":"click","ts":1700000000}`, ClassWrongType, "ts"},
		{"unknown type", `{` + ok + `,"type":"purchase"}`, ClassUnknownType, "type"},
		{"type wrong case", `{` + ok + `,"type":"Click"}`, ClassUnknownType, "type"},
		{"rating without value", `{` + ok + `,"type":"rating"}`, ClassMissingField, "value"},
		{"rating too high", `{` + ok + `,"type":"rating","value":5.5}`, ClassOutOfRange, "value"},
		{"rating too low", `{` + ok + `,"type":"rating","value":0}`, ClassOutOfRange, "value"},
		{"negative dwell", `{` + ok + `,"type":"view","value":-1}`, ClassOutOfRange, "value"},
		{"fractional position", `{` + ok + `,"type":"click","position":1.5}`, ClassOutOfRange, "position"},
		{"negative position", `{` + ok + `,"type":"click","position":-1}`, ClassOutOfRange, "position"},
		{"bad time", `{"user_id":"u","item_id":"i","type":"click","ts":"yesterday"}`, ClassBadTime, "ts"},
		{"time without zone", `{"user_id":"u","item_id":"i","type":"click","ts":"2026-11-28T10:00:00"}`, ClassBadTime, "ts"},
		{"time before 1970", `{"user_id":"u","item_id":"i","type":"click","ts":"1969-12-31T00:00:00Z"}`, ClassBadTime, "ts"},
		{"long id", `{"user_id":"` + strings.Repeat("u", 300) + `","item_id":"i","type":"click","ts":"2026-11-28T10:00:00Z"}`, ClassBadID, "user_id"},
		{"control char id", `{"user_id":"u\u0000","item_id":"i","type":"click","ts":"2026-11-28T10:00:00Z"}`, ClassBadID, "user_id"},
		{"C1 control char id", `{"user_id":"u","item_id":"i\u009b","type":"click","ts":"2026-11-28T10:00:00Z"}`, ClassBadID, "item_id"},
		{"invalid UTF-8 user", "{\"user_id\":\"u\xff\",\"item_id\":\"i\",\"type\":\"click\",\"ts\":\"2026-11-28T10:00:00Z\"}", ClassBadID, "user_id"},
		{"invalid UTF-8 item", "{\"user_id\":\"u\",\"item_id\":\"\xe2\x82\",\"type\":\"click\",\"ts\":\"2026-11-28T10:00:00Z\"}", ClassBadID, "item_id"},
		{"invalid UTF-8 session", "{\"user_id\":\"u\",\"item_id\":\"i\",\"session_id\":\"\xc0\xaf\",\"type\":\"click\",\"ts\":\"2026-11-28T10:00:00Z\"}", ClassBadID, "session_id"},
		{"lone surrogate escape", `{"user_id":"u","item_id":"i\udc00","type":"click","ts":"2026-11-28T10:00:00Z"}`, ClassBadID, "item_id"},
		{"id too long in bytes", `{"user_id":"u","item_id":"` + strings.Repeat("\u00e9", 129) + `","type":"click","ts":"2026-11-28T10:00:00Z"}`, ClassBadID, "item_id"},
		{"year 3000", `{"user_id":"u","item_id":"i","type":"click","ts":"3000-01-01T00:00:00Z"}`, ClassBadTime, "ts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.in), DefaultLimits)
			if err == nil {
				t.Fatal("Decode accepted a bad event")
			}
			de, isDE := err.(*DecodeError)
			if !isDE {
				t.Fatalf("error %T %v is not a *DecodeError", err, err)
			}
			if de.Class != tt.class || de.Field != tt.field {
				t.Fatalf("got class %q field %q (%v), want class %q field %q", de.Class, de.Field, err, tt.class, tt.field)
			}
			if ClassOf(err) != tt.class {
				t.Fatalf("ClassOf = %q", ClassOf(err))
			}
		})
	}
}

// Invalid UTF-8 used to become U+FFFD, so that two different ids collided;
// an id that is really U+FFFD, sent as valid UTF-8 or as an escape, is fine.
func TestDecodeKeepsIDsDistinct(t *testing.T) {
	const rest = `","item_id":"i","type":"click","ts":"2026-11-28T10:00:00Z"}`
	for _, in := range []string{"u\xff", "u\xfe", "u\xed\xa0\x80", `u\ud800`, `u\ud800\u0041`} {
		if _, err := Decode([]byte(`{"user_id":"`+in+rest), DefaultLimits); ClassOf(err) != ClassBadID {
			t.Errorf("%q: got %v, want bad_id", in, err)
		}
	}
	for _, in := range []string{`u\uFFFD`, "u\xef\xbf\xbd", `u\ud83d\ude00`} {
		if _, err := Decode([]byte(`{"user_id":"`+in+rest), DefaultLimits); err != nil {
			t.Errorf("%q: %v", in, err)
		}
	}
}

// The time bounds: max_future against the message's timestamp (not the
// wall clock), min_time as configured.
func TestDecodeTimeBounds(t *testing.T) {
	broker := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	lim := DefaultLimits
	lim.MinTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	msg := func(ts time.Time) []byte {
		return []byte(`{"user_id":"u","item_id":"i","type":"click","ts":"` + ts.Format(time.RFC3339Nano) + `"}`)
	}
	tests := []struct {
		name string
		ts   time.Time
		ok   bool
	}{
		{"at the broker time", broker, true},
		{"max_future ahead", broker.Add(time.Hour), true},
		{"past max_future", broker.Add(time.Hour + time.Second), false},
		{"year 3000", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"at min_time", lim.MinTime, true},
		{"before min_time", lim.MinTime.Add(-time.Nanosecond), false},
		{"long ago but after min_time", time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC), true},
	}
	for _, tt := range tests {
		_, err := DecodeAt(msg(tt.ts), broker, lim)
		if tt.ok && err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		if !tt.ok && ClassOf(err) != ClassBadTime {
			t.Errorf("%s: got %v, want bad_time", tt.name, err)
		}
	}
	// A message without a timestamp is checked against the wall clock.
	for _, none := range []time.Time{{}, time.UnixMilli(-1)} {
		if _, err := DecodeAt(msg(time.Now()), none, lim); err != nil {
			t.Errorf("an event of now in a message without a timestamp (%v): %v", none, err)
		}
		if _, err := DecodeAt(msg(time.Now().Add(2*time.Hour)), none, lim); ClassOf(err) != ClassBadTime {
			t.Errorf("an event two hours ahead of the wall clock in a message without a timestamp (%v): %v, want bad_time", none, err)
		}
	}
	unbounded := lim
	unbounded.MaxFuture, unbounded.MinTime = 0, time.Time{}
	for _, ts := range []time.Time{broker.Add(1000 * time.Hour), time.Date(1971, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if _, err := DecodeAt(msg(ts), broker, unbounded); err != nil {
			t.Errorf("%v without bounds: %v", ts, err)
		}
	}
}

// The fixture file is the same kind of input produce and the integration
// tests send; each line is CLASS<TAB>PAYLOAD, an empty class meaning valid.
func TestDecodeFixtureFile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", "decode_cases.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) < 5 {
		t.Fatalf("fixture has %d lines", len(lines))
	}
	for i, line := range lines {
		class, payload, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("line %d: want CLASS<TAB>PAYLOAD", i+1)
		}
		_, err := Decode([]byte(payload), DefaultLimits)
		if got := ClassOf(err); string(got) != class {
			t.Errorf("line %d: class %q (%v), want %q", i+1, got, err, class)
		}
	}
}

// FuzzDecode holds the decoder to its contract on any input: it never
// panics, every rejection has an error class, the byte scanner agrees with
// encoding/json, and every accepted event meets every validation
// invariant. The seeds are the fixture file's cases.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"user_id":"u","item_id":"i","type":"rating","value":4,"ts":"2026-11-28T10:00:00Z"}`))
	f.Add([]byte(`{"user_id":1}`))
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", "decode_cases.tsv"))
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if _, payload, ok := bytes.Cut(line, []byte("\t")); ok {
			f.Add(payload)
		}
	}
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	lim := DefaultLimits
	lim.MinTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		checkScan(t, b)
		e, err := DecodeAt(b, at, lim)
		if err != nil {
			if ClassOf(err) == "" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		checkAccepted(t, b, e, at, lim)
	})
}

// checkAccepted checks the invariants of an event Decode accepted from b.
func checkAccepted(t *testing.T, b []byte, e Event, at time.Time, lim Limits) {
	t.Helper()
	if e.UserID == "" || e.ItemID == "" {
		t.Fatalf("%q: accepted without user or item: %+v", b, e)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		t.Fatalf("%q: accepted what encoding/json rejects: %v", b, err)
	}
	for name, v := range map[string]string{"user_id": e.UserID, "item_id": e.ItemID, "event_id": e.EventID, "session_id": e.SessionID, "rec_id": e.RecID} {
		if v == "" {
			continue
		}
		if !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) || len(v) > lim.MaxIDBytes {
			t.Fatalf("%q: accepted %s %q", b, name, v)
		}
		// No replacement: every U+FFFD in the id was one in the input.
		lit := members[name]
		if !utf8.Valid(lit) || strings.Count(v, "\uFFFD") != literalFFFD(lit) {
			t.Fatalf("%q: accepted %s %q, mangled from %q", b, name, v, lit)
		}
	}
	switch e.Type {
	case Click:
	case View:
		if e.HasValue && e.Value < 0 {
			t.Fatalf("%q: negative dwell accepted", b)
		}
	case Rating:
		if !e.HasValue || e.Value < lim.RatingMin || e.Value > lim.RatingMax {
			t.Fatalf("%q: rating %v accepted", b, e.Value)
		}
	default:
		t.Fatalf("%q: type %v accepted", b, e.Type)
	}
	if e.TS.Before(lim.MinTime) || e.TS.Sub(at) > lim.MaxFuture || e.TS.Year() > 9999 {
		t.Fatalf("%q: ts %v accepted", b, e.TS)
	}
	if e.HasPos && e.Position < 0 {
		t.Fatalf("%q: position %d accepted", b, e.Position)
	}
	again, err := DecodeAt(Encode(e), at, lim)
	if err != nil || !again.TS.Equal(e.TS) {
		t.Fatalf("%q: re-encoded event rejected: %v", b, err)
	}
	again.TS, e.TS = time.Time{}, time.Time{}
	if again != e {
		t.Fatalf("%q: round trip %+v, want %+v", b, again, e)
	}
}

// literalFFFD counts the U+FFFD characters a JSON string literal spells
// out, as bytes or as a \u escape.
func literalFFFD(lit []byte) int {
	n := 0
	for i := 1; i < len(lit)-1; {
		switch {
		case lit[i] == '\\' && i+1 < len(lit) && lit[i+1] == 'u':
			if i+6 <= len(lit) && strings.EqualFold(string(lit[i+2:i+6]), "fffd") {
				n++
			}
			i += 6
		case lit[i] == '\\':
			i += 2
		case bytes.HasPrefix(lit[i:], []byte("\uFFFD")):
			n++
			i += 3
		default:
			i++
		}
	}
	return n
}

func BenchmarkDecode(b *testing.B) {
	msg := []byte(`{"event_id":"e-1","user_id":"u42","session_id":"s7","item_id":"m318","type":"rating","value":4.5,"ts":"2026-11-28T10:00:00Z","rec_id":"r-99","position":3}`)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := Decode(msg, DefaultLimits); err != nil {
			b.Fatal(err)
		}
	}
}
