package pipeline

import (
	"bytes"
	"io"
	"log/slog"
	"testing"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/model"
)

// The worker writes the version it was given into its snapshots, and
// "devel" when it was given none.
func TestSnapshotCarriesTheWorkersVersion(t *testing.T) {
	d, err := model.NewDQN(model.DefaultDQN())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []struct{ set, want string }{{"", "devel"}, {"v1.2.3", "v1.2.3"}} {
		w := NewWorker(configs.Default(), log, d, nil, Outputs{})
		if c.set != "" {
			w.SetVersion(c.set)
		}
		blob, err := w.encodeSnapshot(d, false)
		if err != nil {
			t.Fatal(err)
		}
		s, err := model.ReadSnapshot(bytes.NewReader(blob))
		if err != nil {
			t.Fatal(err)
		}
		if s.Meta.Version != c.want {
			t.Errorf("SetVersion(%q): the snapshot says version %q, want %q", c.set, s.Meta.Version, c.want)
		}
	}
}
