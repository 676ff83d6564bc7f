package model

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

func trainedDQN(t testing.TB, cfg DQNConfig, events int) *DQN {
	t.Helper()
	d := newDQN(t, cfg)
	var evs []feedback.Located
	for i := range events {
		evs = append(evs, feedback.Located{Event: feedback.Event{UserID: fmt.Sprint("u", i%13), SessionID: "s",
			ItemID: fmt.Sprint("i", (i*7)%97), Type: feedback.Click, TS: time.Unix(int64(i), 0)}})
	}
	for lo := 0; lo < len(evs); lo += 100 {
		b := feedback.BatchOf(evs[lo:min(lo+100, len(evs))]...)
		if _, err := d.Learn(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		b.Release()
	}
	return d
}

// A snapshot restores the architecture, weights, optimiser state, item
// tables, vocabulary and co-occurrence table: the restored model scores
// every item of every state as the original does.
func TestSnapshotRoundTrip(t *testing.T) {
	cfg := DefaultDQN()
	cfg.Rows = 32
	d := trainedDQN(t, cfg, 800)
	bounds := ArchBounds{MinWidth: 8, MaxWidth: 256, MinDepth: 1, MaxDepth: 3}
	if err := d.Apply(Action{Kind: Widen, Layer: 0, K: 16}, bounds); err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(Action{Kind: AddLayer, Layer: 0}, bounds); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	dedupe := []uint64{1 << 63, 7, 3}
	meta, err := d.WriteSnapshot(&buf, SnapshotMeta{Version: "test", Offsets: map[int32]int64{0: 42, 3: 7}, Dedupe: dedupe})
	if err != nil {
		t.Fatal(err)
	}
	s, err := ReadSnapshot(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if s.Meta.Checksum != meta.Checksum || s.Meta.Offsets[3] != 7 || !slices.Equal(s.Meta.Widths, []int{80, 80}) || s.Meta.Items != 97 {
		t.Fatalf("metadata %+v", s.Meta)
	}
	if !slices.Equal(s.Meta.Dedupe, dedupe) {
		t.Fatalf("dedupe set %v, want %v", s.Meta.Dedupe, dedupe)
	}
	r := restoredDQN(t, cfg, s)
	if r.users.clock != d.users.clock || r.users.clock.Now() == 0 {
		t.Fatalf("restored event clock %+v, want %+v", r.users.clock, d.users.clock)
	}
	if r.Checksum() != d.Checksum() || !slices.Equal(r.Widths(), d.Widths()) || r.steps != d.steps {
		t.Fatalf("restored widths %v checksum %x steps %d; original %v %x %d", r.Widths(), r.Checksum(), r.steps, d.Widths(), d.Checksum(), d.steps)
	}
	for i, l := range d.net.layers() {
		if !slices.Equal(r.opts[2*i].m, d.opts[2*i].m) || !slices.Equal(r.opts[2*i].v, d.opts[2*i].v) || r.opts[2*i].t != d.opts[2*i].t ||
			!slices.Equal(r.target.layers()[i].W, d.target.layers()[i].W) || len(l.W) != len(r.net.layers()[i].W) {
			t.Fatalf("layer %d: optimiser state or target network not restored", i)
		}
	}
	for u := range 13 {
		st, _ := d.users.Lookup(fmt.Sprint("u", u))
		d.scoreAll(st)
		want := slices.Clone(d.scores)
		r.scoreAll(st) // the same session state, the restored model
		if !slices.Equal(want, r.scores) {
			t.Fatalf("user %d: restored scores differ", u)
		}
	}
	// The restored model goes on learning.
	learnClick(t, r, "new", "i1")
}

// learnClick has d learn one click of user on item: a model that was
// restored, merged or changed goes on learning.
func learnClick(t *testing.T, d *DQN, user, item string) {
	t.Helper()
	b := feedback.BatchOf(feedback.Located{Event: feedback.Event{UserID: user, ItemID: item, Type: feedback.Click, TS: time.Unix(999, 0)}})
	defer b.Release()
	if _, err := d.Learn(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// Flipped bytes, truncation and another format version are rejected as
// corrupt, never loaded: a flip either breaks the stream or the checksum,
// or falls in padding and leaves the content as it was.
func TestSnapshotRejectsCorruption(t *testing.T) {
	cfg := DefaultDQN()
	cfg.Rows = 32
	d := trainedDQN(t, cfg, 300)
	var buf bytes.Buffer
	meta, err := d.WriteSnapshot(&buf, SnapshotMeta{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	rejected := 0
	for pos := 0; pos < len(raw); pos += 97 {
		bad := slices.Clone(raw)
		bad[pos] ^= 0x5a
		s, err := ReadSnapshot(bytes.NewReader(bad))
		switch {
		case err != nil && !errors.Is(err, ErrCorruptSnapshot):
			t.Fatalf("flip at %d: error %v does not wrap ErrCorruptSnapshot", pos, err)
		case err != nil:
			rejected++
		case s.Meta.Checksum != meta.Checksum: // ReadSnapshot verified the content against it
			t.Fatalf("flip at %d loaded other content", pos)
		}
	}
	if rejected == 0 {
		t.Fatal("no flipped byte was rejected")
	}
	for _, n := range []int{0, 8, len(raw) / 3, len(raw) - 9} {
		if _, err := ReadSnapshot(bytes.NewReader(raw[:n])); !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
	other := bytes.Replace(raw, []byte(fmt.Sprintf(`"format":%d`, SnapshotFormat)), []byte(`"format":9`), 1)
	if _, err := ReadSnapshot(bytes.NewReader(other)); !errors.Is(err, ErrCorruptSnapshot) || !bytes.Contains([]byte(err.Error()), []byte("format 9")) {
		t.Fatalf("format 9: %v", err)
	}
	s, err := ReadSnapshot(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	wide := DefaultDQN()
	wide.Dim = 16
	w, err := NewDQN(wide)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Restore(s); err == nil {
		t.Fatal("a dim-32 snapshot loaded into a dim-16 DQN")
	}
	t.Logf("%d of %d flipped bytes rejected; the others fell in padding", rejected, (len(raw)+96)/97)
}

// A model restored from a snapshot continues exactly as the original: fed
// the same batches, both end with the same weights, bit for bit, and serve
// the same lists (exploration draws from the restored generator).
func TestSnapshotContinuesBitForBit(t *testing.T) {
	for _, tied := range []bool{true, false} {
		t.Run(fmt.Sprintf("tied=%v", tied), func(t *testing.T) { snapshotContinuesBitForBit(t, tied, nil) })
	}
	// Items expiring as the stream goes (expire.go), in dense and tiered
	// tables: the snapshot carries when each item was last seen.
	t.Run("max_items", func(t *testing.T) {
		snapshotContinuesBitForBit(t, true, func(c *DQNConfig) { c.MaxItems = 60 })
	})
	t.Run("max_items_tiers", func(t *testing.T) {
		snapshotContinuesBitForBit(t, true, func(c *DQNConfig) { c.MaxItems, c.Tiers, c.TierAt = 60, []int{16}, []float64{5} })
	})
	// Lists at the widths a learned policy picks per session (slim.go).
	t.Run("nested", func(t *testing.T) {
		snapshotContinuesBitForBit(t, true, func(c *DQNConfig) {
			c.Nested, c.WidthPolicy, c.WidthProbeEvery, c.IdleGap = []int{16, 32}, WidthLearned, 1, 100*time.Second
		})
	})
}

func snapshotContinuesBitForBit(t *testing.T, tied bool, mod func(*DQNConfig)) {
	cfg := DefaultDQN()
	cfg.Tied = tied
	cfg.Rows = 32
	if mod != nil {
		mod(&cfg)
	}
	var evs []feedback.Located
	for i := range 1500 {
		evs = append(evs, feedback.Located{Event: feedback.Event{UserID: fmt.Sprint("u", i%23), SessionID: fmt.Sprint("s", i/200),
			ItemID: fmt.Sprint("i", (i*7)%131), Type: feedback.Click, TS: time.Unix(int64(i), 0)}, Offset: int64(i)})
	}
	learn := func(d *DQN, from, to int) []Recommendation {
		var out []Recommendation
		for lo := from; lo < to; lo += 100 {
			b := feedback.BatchOf(evs[lo:min(lo+100, to)]...)
			lists, err := d.Learn(context.Background(), b)
			b.Release()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, lists...)
		}
		return out
	}
	d := newDQN(t, cfg)
	learn(d, 0, 900)
	var buf bytes.Buffer
	if _, err := d.WriteSnapshot(&buf, SnapshotMeta{}); err != nil {
		t.Fatal(err)
	}
	want := learn(d, 900, 1500)
	s, err := ReadSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	r := restoredDQN(t, cfg, s)
	got := learn(r, 900, 1500)
	if r.Checksum() != d.Checksum() {
		t.Fatalf("after the same 600 events: restored %x, original %x", r.Checksum(), d.Checksum())
	}
	if len(got) != len(want) {
		t.Fatalf("the restored model served %d lists, the original %d", len(got), len(want))
	}
	for i := range got {
		got[i].TS, want[i].TS = time.Time{}, time.Time{} // the wall-clock time of serving
		if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
			t.Fatalf("list %d: restored %+v\noriginal %+v", i, got[i], want[i])
		}
	}
}

// Merging a replica's snapshot adds what it learned itself to the online
// network and the co-occurrence counts, averages the target network and
// the items both know, adds the items only the replica knows, and refuses
// a replica of another architecture.
func TestMergeAddsUpReplicas(t *testing.T) {
	for _, tied := range []bool{true, false} {
		t.Run(fmt.Sprintf("tied=%v", tied), func(t *testing.T) { mergeAddsUpReplicas(t, tied) })
	}
}

func mergeAddsUpReplicas(t *testing.T, tied bool) {
	cfg := DefaultDQN()
	cfg.Tied = tied
	cfg.Rows = 32
	train := func(offset int) *DQN {
		d := newDQN(t, cfg)
		var evs []feedback.Located
		for i := range 400 {
			evs = append(evs, feedback.Located{Event: feedback.Event{UserID: fmt.Sprint("u", i%11), ItemID: fmt.Sprint("i", offset+(i*7)%50), Type: feedback.Click, TS: time.Unix(int64(i), 0)}})
		}
		b := feedback.BatchOf(evs...)
		defer b.Release()
		if _, err := d.Learn(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		return d
	}
	a, b := train(0), train(25) // items i0..i49 and i25..i74
	s := snapshotOf(t, b, "")
	start := newDQN(t, cfg) // the network both started from
	w0, tw0 := slices.Clone(a.net.hidden[0].W), slices.Clone(a.target.hidden[0].W)
	shared, _ := a.items.Lookup("i30")
	e0 := slices.Clone(a.eout[int(shared)*cfg.Dim : int(shared+1)*cfg.Dim])
	in0 := slices.Clone(a.ein[int(shared)*cfg.Dim : int(shared+1)*cfg.Dim])
	fresh0 := a.fresh[shared]
	countsBefore := map[string]float64{}
	for x, id := range a.items.ids {
		countsBefore[id] = a.co.count[x]
	}
	if err := a.Merge(s, 0.25); err != nil {
		t.Fatal(err)
	}
	for j, v := range a.net.hidden[0].W {
		if want := w0[j] + (b.net.hidden[0].W[j] - start.net.hidden[0].W[j]); v != want {
			t.Fatalf("W[%d] = %v after merging, want own %v + the replica's steps %v", j, v, w0[j], b.net.hidden[0].W[j]-start.net.hidden[0].W[j])
		}
	}
	for j, v := range a.target.hidden[0].W {
		if want := 0.75*tw0[j] + 0.25*b.target.hidden[0].W[j]; v != want {
			t.Fatalf("target W[%d] = %v after merging, want %v", j, v, want)
		}
	}
	// A shared item is weighed by the interactions each replica learned
	// since its last snapshot.
	bx, _ := b.items.Lookup("i30")
	fa, fb := fresh0, s.rows["items.fresh"].f32[bx]
	if fa == 0 || fb == 0 {
		t.Fatalf("interactions with i30 not counted: %v, %v", fa, fb)
	}
	wb := fb / (fa + fb)
	for j := range cfg.Dim {
		if got, want := a.eout[int(shared)*cfg.Dim+j], (1-wb)*e0[j]+wb*b.eout[int(bx)*cfg.Dim+j]; got != want {
			t.Fatalf("shared item's embedding[%d] = %v, want %v", j, got, want)
		}
		if got, want := a.ein[int(shared)*cfg.Dim+j], (1-wb)*in0[j]+wb*b.ein[int(bx)*cfg.Dim+j]; got != want {
			t.Fatalf("shared item's input embedding[%d] = %v, want %v (averaged once)", j, got, want)
		}
	}
	// Co-occurrence counts add up; merging again changes nothing.
	for k, id := range s.rows["items.ids"].str {
		x, _ := a.items.Lookup(id)
		if a.co.count[x] != float64(s.rows["cooc.count"].f32[k])+countsBefore[id] {
			t.Fatalf("%s: count %v after merging, want %v + %v", id, a.co.count[x], countsBefore[id], s.rows["cooc.count"].f32[k])
		}
	}
	pairs, w1 := a.co.pairs, slices.Clone(a.net.hidden[0].W)
	counts := slices.Clone(a.co.count)
	if err := a.Merge(s, 0); err != nil || a.co.pairs != pairs || !slices.Equal(a.co.count, counts) || !slices.Equal(a.net.hidden[0].W, w1) {
		t.Fatalf("merging the same snapshot again changed the model: pairs %d -> %d (%v)", pairs, a.co.pairs, err)
	}
	only, ok := a.items.Lookup("i70")
	bo, _ := b.items.Lookup("i70")
	if !ok || !slices.Equal(a.eout[int(only)*cfg.Dim:int(only+1)*cfg.Dim], b.eout[int(bo)*cfg.Dim:int(bo+1)*cfg.Dim]) || a.items.Len() != 75 {
		t.Fatalf("the replica's own items were not added: %d items", a.items.Len())
	}
	if err := b.Apply(Action{Kind: Widen, Layer: 0, K: 8}, ArchBounds{MinWidth: 8, MaxWidth: 256, MinDepth: 1, MaxDepth: 3}); err != nil {
		t.Fatal(err)
	}
	wide := snapshotOf(t, b, "")
	if err := a.Merge(wide, 0.5); err == nil {
		t.Fatal("merged a replica of another architecture")
	}
	// The merged model goes on learning and serving.
	learnClick(t, a, "u1", "i70")
}

// TestAdoptTakesTheDecidersNetworks checks that a replica adopting the
// decider's snapshot takes its architecture and networks, keeps its own
// items, and can then average with it and go on learning.
func TestAdoptTakesTheDecidersNetworks(t *testing.T) {
	cfg := DefaultDQN()
	cfg.Rows = 32
	decider, follower := trainedDQN(t, cfg, 300), trainedDQN(t, cfg, 200)
	if err := decider.Apply(Action{Kind: AddLayer, Layer: 0}, ArchBounds{MinWidth: 8, MaxWidth: 256, MinDepth: 1, MaxDepth: 3}); err != nil {
		t.Fatal(err)
	}
	s := snapshotOf(t, decider, "")
	if err := follower.Merge(s, 0.5); err == nil {
		t.Fatal("merged across an architecture change")
	}
	items, ein := follower.items.Len(), slices.Clone(follower.ein)
	if err := follower.Adopt(s); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(follower.Widths(), decider.Widths()) {
		t.Fatalf("widths %v after adopting, want the decider's %v", follower.Widths(), decider.Widths())
	}
	for i, l := range follower.net.layers() {
		dl := decider.net.layers()[i]
		if !slices.Equal(l.W, dl.W) || !slices.Equal(follower.opts[2*i].v, decider.opts[2*i].v) {
			t.Fatalf("layer %d: weights or Adam moments differ from the decider's", i)
		}
	}
	if follower.items.Len() != items || !slices.Equal(follower.ein, ein) {
		t.Fatal("adopting changed the replica's item tables")
	}
	if err := follower.Merge(s, 0.5); err != nil {
		t.Fatalf("merge after adopting: %v", err)
	}
	learnClick(t, follower, "u1", "i3")
}

// TestObserveRebuildsSessionsWithoutLearning checks that observed events
// leave a user where learning them would, and the weights untouched.
func TestObserveRebuildsSessionsWithoutLearning(t *testing.T) {
	cfg := DefaultDQN()
	cfg.Rows = 32
	learner, observer := trainedDQN(t, cfg, 200), trainedDQN(t, cfg, 200)
	var before [][]float32
	for _, w := range observer.netTensors() {
		before = append(before, slices.Clone(w))
	}
	known, ein := observer.items.Len(), slices.Clone(observer.ein)
	var evs []feedback.Located
	for i := range 30 {
		evs = append(evs, feedback.Located{Event: feedback.Event{UserID: "rebuilt", SessionID: "s9", ItemID: fmt.Sprint("o", (i*3)%40), Type: feedback.View, TS: time.Unix(int64(5000+i), 0)},
			Partition: 4, Offset: int64(100 + i)})
	}
	b := feedback.BatchOf(evs...)
	defer b.Release()
	if _, err := learner.Learn(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	observer.Observe(b)
	lu, _ := learner.users.Lookup("rebuilt")
	ou, ok := observer.users.Lookup("rebuilt")
	if !ok {
		t.Fatal("observed user unknown")
	}
	ids := func(d *DQN, xs []int32) (out []string) {
		for _, x := range xs {
			out = append(out, d.items.ids[x])
		}
		return out
	}
	if !slices.Equal(ids(learner, lu.Recent), ids(observer, ou.Recent)) || len(lu.Consumed) != len(ou.Consumed) ||
		ou.Session != "s9" || ou.Partition != 4 || ou.Offset != 129 {
		t.Fatalf("observed state %v %d %q %d@%d, learned %v %d", ids(observer, ou.Recent), len(ou.Consumed), ou.Session, ou.Partition, ou.Offset,
			ids(learner, lu.Recent), len(lu.Consumed))
	}
	for i, w := range observer.netTensors() {
		if !slices.Equal(w, before[i]) {
			t.Fatal("observing changed the network")
		}
	}
	if !slices.Equal(observer.ein[:known*cfg.Dim], ein) {
		t.Fatal("observing changed the item tables")
	}
	observer.Observe(b) // events the state reflects are skipped
	if again, _ := observer.users.Lookup("rebuilt"); !slices.Equal(ids(observer, again.Recent), ids(learner, lu.Recent)) {
		t.Fatalf("observing the same events twice changed the state: %v", ids(observer, again.Recent))
	}
	// Items met only through Observe have no interaction count yet: learning
	// next to them must stay finite.
	var next []feedback.Located
	for i := range 200 {
		next = append(next, feedback.Located{Event: feedback.Event{UserID: "rebuilt", SessionID: "s9", ItemID: fmt.Sprint("new", i%7), Type: feedback.Click, TS: time.Unix(int64(6000+i), 0)},
			Partition: 4, Offset: int64(200 + i)})
	}
	nb := feedback.BatchOf(next...)
	defer nb.Release()
	if _, err := observer.Learn(context.Background(), nb); err != nil {
		t.Fatalf("learning after observing: %v", err)
	}
}

// TestRankIsTheProbesRank checks that Rank ranks as the prequential probe
// does, and learns nothing.
func TestRankIsTheProbesRank(t *testing.T) {
	cfg := DefaultDQN()
	cfg.Rows = 32
	d := trainedDQN(t, cfg, 300)
	sum := d.Checksum()
	e := feedback.Event{UserID: "u3", ItemID: "i17", Type: feedback.Click, TS: time.Unix(9999, 0)}
	want, ok := d.Rank(e.UserID, e.ItemID)
	if !ok || d.Checksum() != sum {
		t.Fatalf("Rank: ok %v, weights changed %v", ok, d.Checksum() != sum)
	}
	b := feedback.BatchOf(feedback.Located{Event: e})
	defer b.Release()
	got := -1
	if _, err := d.LearnProbed(context.Background(), b, func(_ int, ok bool, rank func() int) {
		if ok {
			got = rank()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("Rank says %d, the probe %d", want, got)
	}
	if _, ok := d.Rank("u3", "i17"); ok {
		t.Fatal("ranked an item the user has consumed")
	}
	if _, ok := d.Rank("u3", "never-seen"); ok {
		t.Fatal("ranked an unknown item")
	}
}

// A snapshot of tied item tables (one embedding table) is refused by a
// model with two, and the other way round, naming the key; neither model
// changes.
func TestTiedTablesMustMatch(t *testing.T) {
	for _, tied := range []bool{true, false} {
		cfg := DefaultDQN()
		cfg.Rows, cfg.Tied = 32, tied
		s := snapshotOf(t, trainedDQN(t, cfg, 300), "")
		if _, has := s.rows["items.ein"]; has == tied {
			t.Fatalf("tied %v: snapshot has items.ein: %v", tied, has)
		}
		other := cfg
		other.Tied = !tied
		o := trainedDQN(t, other, 300)
		sum := o.Checksum()
		want := fmt.Sprintf("recommender.dqn.tied is %v", !tied)
		if err := o.Restore(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("tied %v: restore into tied %v: %v, want %q", tied, !tied, err, want)
		}
		if err := o.Merge(s, 0.5); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("tied %v: merge into tied %v: %v, want %q", tied, !tied, err, want)
		}
		if o.Checksum() != sum {
			t.Fatalf("tied %v: a refused snapshot changed the model", tied)
		}
	}
}
