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
	MaxBytes    int
	MaxIDLength int
	RatingMin   float64
	RatingMax   float64
}

// DefaultLimits are the limits of the default configuration.
var DefaultLimits = Limits{MaxBytes: 64 << 10, MaxIDLength: 256, RatingMin: 0.5, RatingMax: 5}

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

// wire is the JSON form. Pointers tell absent from zero; json.RawMessage for
// value and position lets a wrong type be reported by field name.
type wire struct {
	EventID   *string         `json:"event_id"`
	UserID    *string         `json:"user_id"`
	SessionID *string         `json:"session_id"`
	ItemID    *string         `json:"item_id"`
	Type      *string         `json:"type"`
	Value     json.RawMessage `json:"value"`
	TS        *string         `json:"ts"`
	RecID     *string         `json:"rec_id"`
	Position  json.RawMessage `json:"position"`
}

// Decode parses and validates one event. Unknown fields are ignored so that
// producers can add fields without breaking older workers.
func Decode(b []byte, lim Limits) (Event, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return Event{}, &DecodeError{Class: ClassEmpty, Msg: "empty message"}
	}
	if lim.MaxBytes > 0 && len(b) > lim.MaxBytes {
		return Event{}, &DecodeError{Class: ClassTooLarge, Msg: fmt.Sprintf("%d bytes, limit %d", len(b), lim.MaxBytes)}
	}
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" {
				return Event{}, &DecodeError{Class: ClassInvalidJSON, Msg: fmt.Sprintf("event must be a JSON object, got %s", te.Value)}
			}
			return Event{}, &DecodeError{Class: ClassWrongType, Field: te.Field, Msg: fmt.Sprintf("must be %s, got %s", jsonKind(te.Type.Kind().String()), te.Value)}
		}
		return Event{}, &DecodeError{Class: ClassInvalidJSON, Msg: err.Error()}
	}
	var e Event
	var err error
	if e.UserID, err = id("user_id", w.UserID, true, lim); err != nil {
		return Event{}, err
	}
	if e.ItemID, err = id("item_id", w.ItemID, true, lim); err != nil {
		return Event{}, err
	}
	if e.EventID, err = id("event_id", w.EventID, false, lim); err != nil {
		return Event{}, err
	}
	if e.SessionID, err = id("session_id", w.SessionID, false, lim); err != nil {
		return Event{}, err
	}
	if e.RecID, err = id("rec_id", w.RecID, false, lim); err != nil {
		return Event{}, err
	}
	if w.Type == nil {
		return Event{}, &DecodeError{Class: ClassMissingField, Field: "type", Msg: "required"}
	}
	t, ok := ParseType(*w.Type)
	if !ok {
		return Event{}, &DecodeError{Class: ClassUnknownType, Field: "type", Msg: fmt.Sprintf("%q is not click, view or rating", truncate(*w.Type))}
	}
	e.Type = t
	if w.TS == nil {
		return Event{}, &DecodeError{Class: ClassMissingField, Field: "ts", Msg: "required"}
	}
	ts, perr := time.Parse(time.RFC3339Nano, *w.TS)
	if perr != nil {
		return Event{}, &DecodeError{Class: ClassBadTime, Field: "ts", Msg: fmt.Sprintf("%q is not an RFC 3339 time", truncate(*w.TS))}
	}
	if ts.Year() < 1970 || ts.Year() > 9999 {
		return Event{}, &DecodeError{Class: ClassBadTime, Field: "ts", Msg: fmt.Sprintf("%q is outside years 1970-9999", truncate(*w.TS))}
	}
	e.TS = ts
	if e.Value, e.HasValue, err = number("value", w.Value); err != nil {
		return Event{}, err
	}
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
	pos, hasPos, err := number("position", w.Position)
	if err != nil {
		return Event{}, err
	}
	if hasPos {
		if pos != math.Trunc(pos) || pos < 0 || pos > math.MaxInt32 {
			return Event{}, &DecodeError{Class: ClassOutOfRange, Field: "position", Msg: fmt.Sprintf("%g is not a non-negative integer", pos)}
		}
		e.Position, e.HasPos = int32(pos), true
	}
	return e, nil
}

func id(field string, s *string, required bool, lim Limits) (string, error) {
	if s == nil || *s == "" {
		if required {
			return "", &DecodeError{Class: ClassMissingField, Field: field, Msg: "required"}
		}
		return "", nil
	}
	if lim.MaxIDLength > 0 && len(*s) > lim.MaxIDLength {
		return "", &DecodeError{Class: ClassBadID, Field: field, Msg: fmt.Sprintf("%d bytes, limit %d", len(*s), lim.MaxIDLength)}
	}
	if !utf8.ValidString(*s) || strings.ContainsFunc(*s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", &DecodeError{Class: ClassBadID, Field: field, Msg: "contains control characters or invalid UTF-8"}
	}
	return *s, nil
}

func number(field string, raw json.RawMessage) (float64, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, false, &DecodeError{Class: ClassWrongType, Field: field, Msg: fmt.Sprintf("must be a number, got %s", truncate(string(raw)))}
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false, &DecodeError{Class: ClassOutOfRange, Field: field, Msg: "not finite"}
	}
	return f, true, nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string", "ptr":
		return "a string"
	case "float64", "int32", "int":
		return "a number"
	}
	return goKind
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
