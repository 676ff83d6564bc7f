// Package feedback owns the feedback event: its JSON form on the feedback
// topic, the validation every event passes before it reaches a model, and the
// Arrow schema of a batch of events, which is the contract between the
// pipeline (which builds records) and the models (which read them).
package feedback

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Type is the kind of feedback an event carries.
type Type uint8

// The event types of the feedback topic.
const (
	Click Type = iota + 1
	View
	Rating
)

// String is the type as the event's JSON spells it.
func (t Type) String() string {
	switch t {
	case Click:
		return "click"
	case View:
		return "view"
	case Rating:
		return "rating"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseType maps "click", "view" and "rating" to their Type.
func ParseType(s string) (Type, bool) {
	switch s {
	case "click":
		return Click, true
	case "view":
		return View, true
	case "rating":
		return Rating, true
	}
	return 0, false
}

// Event is one validated feedback event.
type Event struct {
	EventID   string
	UserID    string
	SessionID string // empty: the pipeline derives one from the idle gap
	ItemID    string
	Type      Type
	Value     float64 // rating, or dwell seconds of a view; see HasValue
	HasValue  bool
	TS        time.Time
	RecID     string
	Position  int32 // see HasPosition
	HasPos    bool
}

// Limits bounds what Decode accepts.
type Limits struct {
	MaxBytes int
	// MaxIDBytes bounds every id, in bytes of UTF-8 (0: no bound).
	MaxIDBytes int
	RatingMin  float64
	RatingMax  float64
	// MaxFuture is how far an event's ts may lie past the time it is
	// checked against: its message's broker timestamp (0: no bound).
	MaxFuture time.Duration
	// MinTime is the earliest ts accepted; the zero time leaves only the
	// fixed floor of 1970-01-01T00:00:00Z.
	MinTime time.Time
}

// DefaultLimits are the limits of the default configuration.
var DefaultLimits = Limits{MaxBytes: 64 << 10, MaxIDBytes: 256, RatingMin: 0.5, RatingMax: 5, MaxFuture: time.Hour}

// ErrorClass names why an event was rejected; it travels in the DLQ headers
// and is stable, so operators can count and alert on it.
type ErrorClass string

// The error classes of rejected events.
const (
	ClassEmpty        ErrorClass = "empty"
	ClassTooLarge     ErrorClass = "too_large"
	ClassInvalidJSON  ErrorClass = "invalid_json"
	ClassMissingField ErrorClass = "missing_field"
	ClassWrongType    ErrorClass = "wrong_type"
	ClassUnknownType  ErrorClass = "unknown_type"
	ClassOutOfRange   ErrorClass = "out_of_range"
	ClassBadTime      ErrorClass = "bad_time"
	ClassBadID        ErrorClass = "bad_id"
)

// DecodeError says why an event was rejected and which field is at fault.
type DecodeError struct {
	Class ErrorClass
	Field string // empty when the event as a whole is at fault
	Msg   string
}

// Error implements error.
func (e *DecodeError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.Class, e.Msg)
	}
	return fmt.Sprintf("%s: field %q: %s", e.Class, e.Field, e.Msg)
}

// ClassOf returns the error class of err, or "" if err is not a DecodeError.
func ClassOf(err error) ErrorClass {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Class
	}
	return ""
}

// Decode parses and validates one event, checking its time against the
// wall clock; DecodeAt is what the worker uses.
func Decode(b []byte, lim Limits) (Event, error) {
	return DecodeAt(b, time.Time{}, lim)
}

// DecodeAt parses and validates one event carried by a message whose broker
// timestamp is at: a ts more than lim.MaxFuture past at is rejected as
// bad_time. An at not after 1970 (a message without a timestamp: the zero
// time, or Kafka's -1) is replaced by the wall clock. Unknown fields are ignored so that producers can add fields
// without breaking older workers.
func DecodeAt(b []byte, at time.Time, lim Limits) (Event, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return Event{}, &DecodeError{Class: ClassEmpty, Msg: "empty message"}
	}
	if lim.MaxBytes > 0 && len(b) > lim.MaxBytes {
		return Event{}, &DecodeError{Class: ClassTooLarge, Msg: fmt.Sprintf("%d bytes, limit %d", len(b), lim.MaxBytes)}
	}
	var r rawEvent
	if err := scanEvent(b, &r); err != nil {
		return Event{}, err
	}
	if at.Unix() <= 0 { // no timestamp: zero, or Kafka's -1 ms
		at = time.Now()
	}
	return validate(&r, at, lim)
}

func validate(r *rawEvent, at time.Time, lim Limits) (Event, error) {
	var e Event
	for _, f := range []struct {
		dst      *string
		field    int
		required bool
	}{
		{&e.UserID, fUserID, true}, {&e.ItemID, fItemID, true}, {&e.EventID, fEventID, false},
		{&e.SessionID, fSessionID, false}, {&e.RecID, fRecID, false},
	} {
		if err := id(r, f.field, f.required, lim); err != nil {
			return Event{}, err
		}
		*f.dst = r.fields[f.field]
	}
	if !r.present[fType] {
		return Event{}, &DecodeError{Class: ClassMissingField, Field: "type", Msg: "required"}
	}
	t, ok := ParseType(r.fields[fType])
	if !ok {
		return Event{}, &DecodeError{Class: ClassUnknownType, Field: "type", Msg: fmt.Sprintf("%q is not click, view or rating", truncate(r.fields[fType]))}
	}
	e.Type = t
	if !r.present[fTS] {
		return Event{}, &DecodeError{Class: ClassMissingField, Field: "ts", Msg: "required"}
	}
	ts, perr := time.Parse(time.RFC3339Nano, r.fields[fTS])
	if perr != nil {
		return Event{}, &DecodeError{Class: ClassBadTime, Field: "ts", Msg: fmt.Sprintf("%q is not an RFC 3339 time", truncate(r.fields[fTS]))}
	}
	if err := checkTime(ts, at, lim); err != nil {
		return Event{}, err
	}
	e.TS = ts
	e.Value, e.HasValue = r.numbers[nValue], r.hasNum[nValue]
	switch e.Type {
	case Rating:
		if !e.HasValue {
			return Event{}, &DecodeError{Class: ClassMissingField, Field: "value", Msg: "required for a rating"}
		}
		if e.Value < lim.RatingMin || e.Value > lim.RatingMax {
			return Event{}, &DecodeError{Class: ClassOutOfRange, Field: "value", Msg: fmt.Sprintf("rating %g outside [%g, %g]", e.Value, lim.RatingMin, lim.RatingMax)}
		}
	case View:
		if e.HasValue && e.Value < 0 {
			return Event{}, &DecodeError{Class: ClassOutOfRange, Field: "value", Msg: fmt.Sprintf("dwell seconds %g is negative", e.Value)}
		}
	}
	if pos := r.numbers[nPosition]; r.hasNum[nPosition] {
		if pos != math.Trunc(pos) || pos < 0 || pos > math.MaxInt32 {
			return Event{}, &DecodeError{Class: ClassOutOfRange, Field: "position", Msg: fmt.Sprintf("%g is not a non-negative integer", pos)}
		}
		e.Position, e.HasPos = int32(pos), true
	}
	return e, nil
}

// checkTime bounds an event time: within years 1970-9999, not before
// lim.MinTime, and at most lim.MaxFuture past the broker timestamp at.
func checkTime(ts, at time.Time, lim Limits) error {
	bad := func(format string, args ...any) error {
		return &DecodeError{Class: ClassBadTime, Field: "ts", Msg: fmt.Sprintf(format, args...)}
	}
	text := ts.Format(time.RFC3339Nano)
	if ts.Year() < 1970 || ts.Year() > 9999 {
		return bad("%s is outside years 1970-9999", text)
	}
	if ts.Before(lim.MinTime) {
		return bad("%s is before validate.min_time %s", text, lim.MinTime.Format(time.RFC3339))
	}
	if lim.MaxFuture > 0 && ts.Sub(at) > lim.MaxFuture {
		return bad("%s is more than validate.max_future (%v) past the message timestamp %s", text, lim.MaxFuture, at.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// id checks the id field f of r: valid UTF-8 as sent (the scanner marks
// strings whose invalid bytes or lone surrogates it replaced), without
// control characters, at most lim.MaxIDBytes bytes.
func id(r *rawEvent, f int, required bool, lim Limits) error {
	field, s := stringFields[f], r.fields[f]
	if !r.present[f] || s == "" {
		if required {
			return &DecodeError{Class: ClassMissingField, Field: field, Msg: "required"}
		}
		return nil
	}
	if lim.MaxIDBytes > 0 && len(s) > lim.MaxIDBytes {
		return &DecodeError{Class: ClassBadID, Field: field, Msg: fmt.Sprintf("%d bytes, limit %d (validate.max_id_bytes)", len(s), lim.MaxIDBytes)}
	}
	if r.replaced[f] || !utf8.ValidString(s) {
		return &DecodeError{Class: ClassBadID, Field: field, Msg: "invalid UTF-8 (or an unpaired surrogate escape)"}
	}
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		c, _ := utf8.DecodeRuneInString(s[i:])
		return &DecodeError{Class: ClassBadID, Field: field, Msg: fmt.Sprintf("control character %U at byte %d", c, i)}
	}
	return nil
}

func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// Encode writes e in the wire form Decode reads.
func Encode(e Event) []byte {
	m := map[string]any{
		"user_id": e.UserID, "item_id": e.ItemID, "type": e.Type.String(),
		"ts": e.TS.UTC().Format(time.RFC3339Nano),
	}
	if e.EventID != "" {
		m["event_id"] = e.EventID
	}
	if e.SessionID != "" {
		m["session_id"] = e.SessionID
	}
	if e.HasValue {
		m["value"] = e.Value
	}
	if e.RecID != "" {
		m["rec_id"] = e.RecID
	}
	if e.HasPos {
		m["position"] = e.Position
	}
	b, _ := json.Marshal(m) // cannot fail: only strings and numbers
	return b
}
