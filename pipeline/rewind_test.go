package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
)

func TestParseOffsetTarget(t *testing.T) {
	for _, c := range []struct {
		in, want, err string
	}{
		{in: "earliest", want: "earliest"},
		{in: "latest", want: "latest"},
		{in: "1200", want: "offset 1200"},
		{in: "0", want: "offset 0"},
		{in: "3:800,0:1200", want: "offsets 0:1200,3:800"},
		{in: "0:0", want: "offsets 0:0"},
		{in: "middle", err: `"middle" is not earliest, latest, an offset or PARTITION:OFFSET`},
		{in: "", err: `"" is not earliest`},
		{in: "-5", err: "offset -5 is negative"},
		{in: "0:-1", err: "offset -1 of partition 0 is negative"},
		{in: "0:x", err: `offset "x" of partition 0 is not a number`},
		{in: "x:5", err: `partition "x" is not a partition number`},
		{in: "-1:5", err: `partition "-1" is not a partition number`},
		{in: "1:5,,2:3", err: `"" is not PARTITION:OFFSET`},
		{in: "1:5,1:6", err: "partition 1 is named twice"},
	} {
		got, err := pipeline.ParseOffsetTarget(c.in)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want one saying %q", c.in, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.in, err)
		case c.err == "" && got.String() != c.want:
			t.Errorf("%q parsed as %s, want %s", c.in, got, c.want)
		}
	}
}

// Numeric offsets: one for every partition, or offsets of the partitions
// named (the others keep their committed offsets); an unknown partition
// or an offset past a partition's end is refused, naming it, and changes
// nothing.
func TestReplayToNumericOffsets(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg, client, ends := producedFeedback(t, target, 600, 60)
			ctx := context.Background()
			least := ends[0]
			for _, e := range ends {
				least = min(least, e)
			}
			if least < 10 {
				t.Fatalf("a partition holds %d events: too few for the test (%v)", least, ends)
			}
			opts := pipeline.ReplayOptions{Store: snapStore(t, cfg)}
			replay := func(to string) (pipeline.Rewound, error) {
				tt, err := pipeline.ParseOffsetTarget(to)
				if err != nil {
					t.Fatal(err)
				}
				return pipeline.ReplayTo(ctx, client, cfg.Kafka.Group, cfg.Topics.Feedback, tt, opts)
			}
			committed := func() map[int]int64 {
				c, err := pipeline.CommittedOffsets(ctx, client, cfg.Kafka.Group, cfg.Topics.Feedback)
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			if _, err := replay("7"); err != nil {
				t.Fatal(err)
			}
			for p, off := range committed() {
				if off != 7 {
					t.Fatalf("--to-offset 7: partition %d at %d", p, off)
				}
			}
			r, err := replay(fmt.Sprintf("2:%d,4:3", ends[2]))
			if err != nil {
				t.Fatal(err)
			}
			want := map[int]int64{0: 7, 1: 7, 2: ends[2], 3: 7, 4: 3, 5: 7}
			if got := committed(); fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprint(r.Offsets) != fmt.Sprint(want) {
				t.Fatalf("2:END,4:3 after 7: committed %v, reported %v, want %v", got, r.Offsets, want)
			}
			if r.Restore != "" || len(r.Retired) != 0 {
				t.Fatalf("a group without snapshots: restore %q, retired %v", r.Restore, r.Retired)
			}
			for _, bad := range []struct{ to, says string }{
				{"9:0", "partition 9: "},
				{fmt.Sprintf("3:%d", ends[3]+1), fmt.Sprintf("partition 3: offset %d is beyond the end", ends[3]+1)},
				{fmt.Sprint(slices.Max(valuesOf(ends)) + 1), "is beyond the end"},
			} {
				_, err := replay(bad.to)
				if err == nil || !strings.Contains(err.Error(), bad.says) {
					t.Errorf("--to-offset %s: %v, want an error saying %q", bad.to, err, bad.says)
				}
			}
			if got := committed(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("refused replays changed the offsets: %v, want %v", got, want)
			}
		})
	}
}

func valuesOf(m map[int]int64) []int64 {
	out := make([]int64, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// A rewind to a point before what the group's newest snapshot learned
// restores the newest snapshot that stops at or before it: the group is
// rewound to where that snapshot stopped, the snapshot is the one the next
// worker restores, and the snapshots that learned past the point are
// retired, so that worker learns every event once and reaches the
// original run's weights bit for bit. A rewind before every snapshot is
// refused, changing nothing; with FreshModel every snapshot is retired and
// the next worker starts from an empty model and learns every event once.
func TestReplayBeforeTheNewestSnapshot(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg, lines, want := snapshottedRun(t, target)
			ctx := context.Background()
			client := kafkatest.Client(cfg.Kafka.Brokers)
			snaps := validSnapshots(t, cfg)
			mid := -1
			for i, s := range snaps {
				if n := sumOffsets(s.meta.Offsets); n > 300 && n < 1200 {
					mid = i
				}
			}
			if mid < 0 || mid == len(snaps)-1 {
				t.Fatalf("no snapshot part way through among %d", len(snaps))
			}
			// Just past the middle snapshot: the next one learned further.
			ends, _ := pipeline.EndOffsets(ctx, client, cfg.Topics.Feedback)
			at := map[int32]int64{}
			for p, end := range ends {
				at[int32(p)] = min(snaps[mid].meta.Offsets[int32(p)]+1, end)
			}
			opts := pipeline.ReplayOptions{Store: snapStore(t, cfg)}
			r, err := pipeline.ReplayTo(ctx, client, cfg.Kafka.Group, cfg.Topics.Feedback, pipeline.ReplayTarget{At: at}, opts)
			if err != nil {
				t.Fatal(err)
			}
			var later []string
			for _, s := range snaps[mid+1:] {
				later = append(later, s.id)
			}
			if r.Restore != snaps[mid].id || r.Republished == "" || fmt.Sprint(r.Retired) != fmt.Sprint(later) {
				t.Errorf("restore %q (republished as %q), retired %v; want %s, republished, retired %v", r.Restore, r.Republished, r.Retired, snaps[mid].id, later)
			}
			committed, _ := pipeline.CommittedOffsets(ctx, client, cfg.Kafka.Group, cfg.Topics.Feedback)
			for p, off := range committed {
				if off != snaps[mid].meta.Offsets[int32(p)] || r.Offsets[p] != off {
					t.Errorf("rewound to %v (reported %v), want where snapshot %s stopped: %v", committed, r.Offsets, snaps[mid].id, snaps[mid].meta.Offsets)
					break
				}
			}
			again := cfg
			again.Batch.Size = 37
			second, ws := runReplicas(t, again, "worker")
			if got := ws[0].Restored(); !got.Created.Equal(snaps[mid].meta.Created) || got.Steps != snaps[mid].meta.Steps {
				t.Errorf("the next worker restored the snapshot created %v at step %d, want %s (created %v, step %d)",
					got.Created, got.Steps, snaps[mid].id, snaps[mid].meta.Created, snaps[mid].meta.Steps)
			}
			if got := second[0].(*model.DQN).Checksum(); got != want {
				t.Fatalf("after the rewind: weights %x, the original run reached %x", got, want)
			}

			refuseThenFresh(t, cfg, opts, len(lines))
		})
	}
}

// refuseThenFresh rewinds cfg's group to its earliest offsets, before
// every snapshot: refused, nothing changes; then with FreshModel: every
// snapshot is retired and the next worker starts from an empty model and
// counts each of the events once.
func refuseThenFresh(t *testing.T, cfg configs.Config, opts pipeline.ReplayOptions, events int) {
	t.Helper()
	ctx := context.Background()
	client := kafkatest.Client(cfg.Kafka.Brokers)
	// Before every snapshot: refused, nothing changes.
	before, _ := pipeline.CommittedOffsets(ctx, client, cfg.Kafka.Group, cfg.Topics.Feedback)
	kept := len(validSnapshots(t, cfg))
	_, err := pipeline.ReplayTo(ctx, client, cfg.Kafka.Group, cfg.Topics.Feedback, pipeline.ReplayTarget{Earliest: true}, opts)
	if !errors.Is(err, pipeline.ErrSnapshotAhead) || !strings.Contains(err.Error(), "--fresh-model") {
		t.Fatalf("rewind before every snapshot: %v, want ErrSnapshotAhead naming --fresh-model", err)
	}
	after, _ := pipeline.CommittedOffsets(ctx, client, cfg.Kafka.Group, cfg.Topics.Feedback)
	if fmt.Sprint(after) != fmt.Sprint(before) || len(validSnapshots(t, cfg)) != kept {
		t.Fatalf("the refused rewind changed offsets %v -> %v or snapshots %d -> %d", before, after, kept, len(validSnapshots(t, cfg)))
	}

	opts.FreshModel = true
	r, err := pipeline.ReplayTo(ctx, client, cfg.Kafka.Group, cfg.Topics.Feedback, pipeline.ReplayTarget{Earliest: true}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Retired) != kept || r.Restore != "" || len(validSnapshots(t, cfg)) != 0 {
		t.Errorf("fresh model: retired %d of %d snapshots, restore %q, %d left", len(r.Retired), kept, r.Restore, len(validSnapshots(t, cfg)))
	}
	fresh, ws := runReplicas(t, cfg, "worker")
	if got := ws[0].Restored(); !got.Created.IsZero() {
		t.Errorf("with a fresh model the next worker restored the snapshot created %v", got.Created)
	}
	if got, _ := fresh[0].(*model.DQN).CoocTotals(); got != float64(events) {
		t.Fatalf("from an empty model over %d events the worker counts %v interactions", events, got)
	}
}

// What replicas learned past the rewind point does not come back: two
// generations of workers (new names, as a Deployment's pods) learn half
// the events each; a rewind into the first generation's snapshots (to
// offsets, or with --snapshot) retires the second's too, so a third
// worker, which restores the republished snapshot and merges the other
// replicas' newest, counts every event once.
func TestReplayRetiresOtherReplicasPastThePoint(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		for _, how := range []string{"to-offset", "snapshot"} {
			t.Run(target.Name+"/"+how, func(t *testing.T) {
				replayRetiresOtherReplicas(t, target, how == "snapshot")
			})
		}
	}
}

func replayRetiresOtherReplicas(t *testing.T, target kafkatest.Target, bySnapshot bool) {
	cfg := snapshottingDQN(t, target)
	lines, _ := kafkatest.Events(1500, 0, 150, 23)
	produce(t, cfg, lines[:750])
	runReplicas(t, cfg, "gen1")
	produce(t, cfg, lines[750:])
	runReplicas(t, cfg, "gen2")
	ctx := context.Background()
	client := kafkatest.Client(cfg.Kafka.Brokers)
	var mid *validSnapshot
	for _, s := range validSnapshots(t, cfg) {
		if n := sumOffsets(s.meta.Offsets); s.meta.Replica == "gen1" && n > 200 && n < 600 {
			mid = &s
		}
	}
	if mid == nil {
		t.Fatal("no snapshot of the first generation part way through")
	}
	ends, _ := pipeline.EndOffsets(ctx, client, cfg.Topics.Feedback)
	at := map[int32]int64{}
	for p, end := range ends {
		at[int32(p)] = min(mid.meta.Offsets[int32(p)]+1, end)
	}
	opts := pipeline.ReplayOptions{Store: snapStore(t, cfg)}
	var r pipeline.Rewound
	var err error
	if bySnapshot {
		r, err = pipeline.ReplaySnapshot(ctx, client, cfg.Topics.Feedback, mid.id, opts.Store)
	} else {
		r, err = pipeline.ReplayTo(ctx, client, cfg.Kafka.Group, cfg.Topics.Feedback, pipeline.ReplayTarget{At: at}, opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	if r.Restore != mid.id {
		t.Errorf("restore %q, want %s", r.Restore, mid.id)
	}
	third, ws := runReplicas(t, cfg, "gen3")
	if got := ws[0].Restored(); !got.Created.Equal(mid.meta.Created) {
		t.Errorf("the third generation restored the snapshot created %v, want %s (created %v)", got.Created, mid.id, mid.meta.Created)
	}
	if got, _ := third[0].(*model.DQN).CoocTotals(); got != float64(len(lines)) {
		t.Fatalf("after the rewind the third generation counts %v interactions over %d events", got, len(lines))
	}
}

type validSnapshot struct {
	id   string
	meta model.SnapshotMeta
}

// validSnapshots lists cfg's group's complete snapshots that decode,
// oldest first.
func validSnapshots(t *testing.T, cfg configs.Config) []validSnapshot {
	t.Helper()
	var out []validSnapshot
	for _, s := range listSnapshots(t, cfg) {
		if !s.Complete {
			continue
		}
		snap, err := model.ReadSnapshot(bytes.NewReader(s.Blob))
		if err != nil {
			continue
		}
		out = append(out, validSnapshot{s.ID, snap.Meta})
	}
	return out
}

func sumOffsets(offsets map[int32]int64) (n int64) {
	for _, o := range offsets {
		n += o
	}
	return n
}
