package kafkatest

import (
	"bytes"
	"fmt"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/pipeline/synth"
)

// Events returns n JSONL lines of synthetic feedback in which every
// malformedEvery-th line (0: none) is malformed in one of several ways, each
// line unique. bad maps each malformed line to the error class the worker
// must give it.
func Events(n, malformedEvery int, users int, seed int64) (lines [][]byte, bad map[string]feedback.ErrorClass) {
	g := synth.New(synth.Config{Users: users, Items: 500, Seed: seed})
	bad = map[string]feedback.ErrorClass{}
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	for i := range n {
		_, v := g.Next(now.Add(time.Duration(i) * time.Second))
		if malformedEvery > 0 && i%malformedEvery == malformedEvery-1 {
			k := i / malformedEvery
			var line string
			var class feedback.ErrorClass
			switch k % 6 {
			case 0:
				line, class = fmt.Sprintf(`not json %d`, i), feedback.ClassInvalidJSON
			case 1:
				line, class = fmt.Sprintf(`{"item_id":"i1","type":"click","ts":"2026-11-28T10:00:00Z","n":%d}`, i), feedback.ClassMissingField
			case 2:
				line, class = fmt.Sprintf(`{"user_id":"u%d","item_id":"i1","type":"purchase","ts":"2026-11-28T10:00:00Z"}`, i), feedback.ClassUnknownType
			case 3:
				line, class = fmt.Sprintf(`{"user_id":"u%d","item_id":"i1","type":"rating","value":7,"ts":"2026-11-28T10:00:00Z"}`, i), feedback.ClassOutOfRange
			case 4:
				line, class = fmt.Sprintf(`{"user_id":"u%d","item_id":"i1","type":"click","ts":"noon"}`, i), feedback.ClassBadTime
			default:
				line, class = fmt.Sprintf(`{"user_id":"u%d","item_id":42,"type":"click","ts":"2026-11-28T10:00:00Z"}`, i), feedback.ClassWrongType
			}
			bad[line] = class
			lines = append(lines, []byte(line))
			continue
		}
		lines = append(lines, v)
	}
	return lines, bad
}

// JSONL joins lines into a file body.
func JSONL(lines [][]byte) []byte {
	return append(bytes.Join(lines, []byte("\n")), '\n')
}
