package feedback

import (
	"encoding/json"
	"strings"
	"testing"
)

// referenceScan is the encoding/json decoding the hand-written scanner
// replaces; FuzzDecodeMatchesEncodingJSON holds them to the same results.
// Like the scanner, encoding/json reports the first field of the wrong
// type even when a later duplicate of the key has the right one.
func referenceScan(b []byte) (rawEvent, error) {
	var w struct {
		EventID   *string  `json:"event_id"`
		UserID    *string  `json:"user_id"`
		SessionID *string  `json:"session_id"`
		ItemID    *string  `json:"item_id"`
		Type      *string  `json:"type"`
		TS        *string  `json:"ts"`
		RecID     *string  `json:"rec_id"`
		Value     *float64 `json:"value"`
		Position  *float64 `json:"position"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return rawEvent{}, err
	}
	var r rawEvent
	for f, p := range []*string{w.EventID, w.UserID, w.SessionID, w.ItemID, w.Type, w.TS, w.RecID} {
		if p != nil {
			r.fields[f], r.present[f] = *p, true
		}
	}
	for n, p := range []*float64{w.Value, w.Position} {
		if p != nil {
			r.numbers[n], r.hasNum[n] = *p, true
		}
	}
	return r, nil
}

// foldedKey reports whether b has a key that encoding/json would match to a
// field case-insensitively; the scanner matches exactly, by design.
func foldedKey(b []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return false
	}
	for k := range m {
		for _, f := range append(stringFields[:], numberFields[:]...) {
			if k != f && strings.EqualFold(k, f) {
				return true
			}
		}
		if strings.ContainsRune(k, 'K') || strings.ContainsRune(k, 'ſ') {
			return true // Kelvin sign and long s fold to ASCII letters
		}
	}
	return false
}

func checkScan(t *testing.T, b []byte) {
	var got rawEvent
	gotErr := scanEvent(b, &got)
	want, wantErr := referenceScan(b)
	if foldedKey(b) {
		return
	}
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%q: scanner error %v, encoding/json error %v", b, gotErr, wantErr)
	}
	got.replaced = [nFields]bool{} // encoding/json does not say
	if gotErr == nil && got != want {
		t.Fatalf("%q: scanner %+v, encoding/json %+v", b, got, want)
	}
}

func TestScanMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		`{"user_id":"u","item_id":"i","type":"click","ts":"2026-11-28T10:00:00Z"}`,
		` { "user_id" : "u\u00e9\ud83d\ude00\n" , "value" : -1.5e3 , "position" : 0 } `,
		`{"user_id":"a","user_id":"b","value":1,"value":null}`,
		`{"x":{"y":[1,2,{"z":null}],"w":"\"}"},"user_id":"u"}`,
		`{"user_id":"\ud800","item_id":"\udc00x","ts":"\ud800\u0041"}`,
		"{\"user_id\":\"\xff\xfe\"}",
		`{"value":1e999}`, `{"x":1e999}`, `{"value":"1"}`, `{"value":"","value":0}`, `{"value":1e999,"value":1}`, `{"value":1,"value":null}`, `{"user_id":1}`, `{"user_id":["u"]}`,
		`{"user_id":1,}`, `{"user_id":tru}`, `{"value":01}`, `{"value":1.}`, `{"value":-}`,
		`null`, `nul`, `[]`, `"s"`, `1`, `{}`, `{} x`, `{"a":1}{`, `{"a" 1}`, `{"a":1 "b":2}`,
		"{\"user_id\":\"a\tb\"}", `{"user_id":"\x"}`, `{"user_id":"\u12"}`,
	} {
		checkScan(t, []byte(s))
	}
}

func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	f.Add([]byte(`{"event_id":"e","user_id":"u","item_id":"i","type":"rating","value":4.5,"ts":"2026-11-28T10:00:00Z","position":3}`))
	f.Add([]byte(`{"user_id":"\u00e9","x":[{"y":null},true,false,1e5]}`))
	f.Add([]byte(`[1,{"a":"b"}]`))
	f.Fuzz(checkScan)
}
