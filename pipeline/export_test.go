package pipeline

// What only the tests reach: defined here, in a test file of the package,
// so that the external tests (package pipeline_test) can call them and the
// package's API does not carry them.

import (
	"github.com/adaptrec/adaptrec/model"
)

// Restored is the metadata of the snapshot the worker started from (zero
// if none).
func (w *Worker) Restored() model.SnapshotMeta { return w.restored }
