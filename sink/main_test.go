package sink_test

import (
	"testing"

	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
)

// TestMain fails the package's tests if a goroutine outlives them.
func TestMain(m *testing.M) { kafkatest.Main(m) }
