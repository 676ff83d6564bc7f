package feedback

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"user_id":"u","item_id":"i","type":"rating","value":4,"ts":"2026-11-28T10:00:00Z"}`))
	f.Add([]byte(`{"user_id":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b, DefaultLimits)
		if err != nil {
			if ClassOf(err) == "" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if e.UserID == "" || e.ItemID == "" || e.Type == 0 {
			t.Fatalf("accepted an event without required fields: %+v", e)
		}
	})
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
