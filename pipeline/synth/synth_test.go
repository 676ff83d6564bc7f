package synth

import (
	"bytes"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

func TestGeneratorSeededAndRealistic(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	a := New(Config{Users: 100, Items: 300, MalformedFraction: 0.05, Seed: 3})
	b := New(Config{Users: 100, Items: 300, MalformedFraction: 0.05, Seed: 3})
	c := New(Config{Users: 100, Items: 300, MalformedFraction: 0.05, Seed: 4})
	types := map[feedback.Type]int{}
	items := map[string]int{}
	bad, differ := 0, false
	const n = 20000
	for range n {
		ka, va := a.Next(now)
		kb, vb := b.Next(now)
		_, vc := c.Next(now)
		if !bytes.Equal(ka, kb) || !bytes.Equal(va, vb) {
			t.Fatal("same seed, different streams")
		}
		differ = differ || !bytes.Equal(va, vc)
		e, err := feedback.Decode(va, feedback.DefaultLimits)
		if err != nil {
			bad++
			continue
		}
		if string(ka) != e.UserID {
			t.Fatalf("key %q for user %q", ka, e.UserID)
		}
		types[e.Type]++
		items[e.ItemID]++
	}
	if !differ {
		t.Fatal("different seeds, same stream")
	}
	if bad < n*3/100 || bad > n*7/100 {
		t.Fatalf("%d malformed of %d, want about 5%%", bad, n)
	}
	for _, typ := range []feedback.Type{feedback.Click, feedback.View, feedback.Rating} {
		if types[typ] < n/20 {
			t.Fatalf("too few %v events: %v", typ, types)
		}
	}
	// Popularity is skewed: the most popular item gets far more than average.
	top := 0
	for _, c := range items {
		top = max(top, c)
	}
	if avg := n / len(items); top < 5*avg {
		t.Fatalf("popularity not skewed: top %d, average %d", top, avg)
	}
}
